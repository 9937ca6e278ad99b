//! `handoff init`: writes a config from what the machine already has — the bus env file, the remotes in
//! rclone.conf, the hosts in `~/.ssh/config`, the git remote of an existing handoffs checkout. On a
//! terminal it asks (Enter keeps the suggestion); in scripts (`--yes`, or stdin not a terminal) it takes
//! the flags and what is unambiguous. Never overwrites a config without `--force`; the config is written
//! mode 600 and never holds a secret (the password stays in the env file).

use crate::cli::InitArgs;
use crate::config::{ConfigError, Dirs, Overrides, expand_home, read_env_file, short_hostname, validate_machine};
use crate::exit;
use handoff_channels::env_file::DEFAULT_BUS_ENV_FILE;
use handoff_channels::init::{ChannelInitChoice, InitPlace, InitPrompt, tilde, toml_list, toml_string};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// What `init` decided, section by section.
#[derive(Debug, Default, serde::Serialize)]
pub struct InitChoices {
    /// Machine name.
    pub machine: String,
    /// `[bus] env_file`, as written (`~/...` when under HOME).
    pub bus_env_file: Option<String>,
    /// `[bus] url`, when given by flag.
    pub bus_url: Option<String>,
    /// What each channel that says so chose, under its name (`"drive": {"remote": ...}`).
    #[serde(flatten)]
    pub chosen: serde_json::Map<String, serde_json::Value>,
    /// The other channels' sections and `[route] page`, as TOML.
    pub sections: Vec<String>,
    /// What was found but not used, and how to use it.
    pub notes: Vec<String>,
    /// Every section after `[bus]`, as TOML, in the order written: the channels' in registration order,
    /// then `[route]`.
    #[serde(skip)]
    pub written: Vec<String>,
}

impl InitChoices {
    /// Adds a channel's choice: its section to write (listed in the plan under its name, `null` when it
    /// chose none, or among `sections`) and its notes.
    fn add(&mut self, c: ChannelInitChoice) {
        let section = c.choice.section;
        if c.listed_in_plan {
            let plan = section.as_ref().and_then(|s| s.plan.clone()).unwrap_or(serde_json::Value::Null);
            self.chosen.insert(c.name.to_string(), plan);
        } else if let Some(s) = &section {
            self.sections.push(s.toml.clone());
        }
        self.written.extend(section.map(|s| s.toml));
        self.notes.extend(c.choice.notes);
    }
}

/// The config text for a plan.
pub fn render(p: &InitChoices) -> String {
    let mut t = String::from(
        "# handoff config written by `handoff init` — `handoff config example` prints every key, explained.\n# No secrets here: the bus password stays in the env file, drive credentials in rclone.conf.\n\n",
    );
    t.push_str(&format!("machine = {}\n", toml_string(&p.machine)));
    if p.bus_env_file.is_some() || p.bus_url.is_some() {
        t.push_str("\n[bus]\n");
        if let Some(u) = &p.bus_url {
            t.push_str(&format!("url = {}\n", toml_string(u)));
        }
        if let Some(e) = &p.bus_env_file {
            t.push_str(&format!("env_file = {}                # BUS_USER / BUS_PASS / BUS_URL\n", toml_string(e)));
        }
    }
    for section in &p.written {
        t.push('\n');
        t.push_str(section);
    }
    t
}

/// The terminal prompt, or (not on a terminal) the defaults.
struct Asker {
    interactive: bool,
}

impl InitPrompt for Asker {
    fn ask(&self, question: &str, default: Option<&str>) -> std::io::Result<Option<String>> {
        if !self.interactive {
            return Ok(default.map(str::to_string));
        }
        let mut err = std::io::stderr();
        write!(err, "{question}{}: ", default.map(|d| format!(" [{d}]")).unwrap_or_else(|| " [skip]".into()))?;
        err.flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let a = line.trim();
        Ok(match a {
            "" => default.map(str::to_string),
            "-" => None,
            a => Some(a.to_string()),
        })
    }

    fn pick(
        &self,
        what: &str,
        options: &[String],
        labels: &[String],
        given: Option<String>,
    ) -> std::io::Result<Option<String>> {
        if given.is_some() || !self.interactive || options.is_empty() {
            return Ok(given);
        }
        eprintln!("{what}:");
        for (i, o) in labels.iter().enumerate() {
            eprintln!("  {}) {o}", i + 1);
        }
        let a = self.ask("  pick a number or a name (Enter skips)", None)?;
        Ok(a.map(|a| a.parse::<usize>().ok().and_then(|n| options.get(n.wrapping_sub(1)).cloned()).unwrap_or(a)))
    }
}

/// Decides every section from the flags, what the machine has, and (on a terminal) the answers.
fn plan(a: &InitArgs, home: &Path, asker: &Asker) -> anyhow::Result<InitChoices> {
    let mut p = InitChoices::default();
    let machine = match &a.name {
        Some(n) => n.clone(),
        None => asker.ask("name of this machine", Some(&short_hostname()))?.unwrap_or_else(short_hostname),
    };
    validate_machine(&machine)?;
    p.machine = machine;

    // bus: the env file users already keep
    if !a.no_bus {
        let default_env = handoff_channels::env_file::default_bus_env_file(home);
        let env_path =
            a.env_file.as_ref().map(|e| expand_home(e, home)).or_else(|| default_env.exists().then_some(default_env));
        match env_path {
            Some(e) if e.exists() => {
                let vars = read_env_file(&e)?;
                if vars.get("BUS_PASS").is_none_or(|v| v.is_empty()) {
                    return Err(ConfigError(format!("the env file {} has no BUS_PASS line; add BUS_PASS=... (and BUS_URL, BUS_USER)", e.display())).into());
                }
                if a.bus_url.is_none() && !vars.contains_key("BUS_URL") {
                    return Err(ConfigError(format!("the env file {} has no BUS_URL line: add BUS_URL=https://... or pass --bus-url", e.display())).into());
                }
                p.bus_env_file = Some(tilde(&e, home));
            }
            Some(e) => {
                return Err(ConfigError(format!("the env file {} does not exist; create it with BUS_USER, BUS_PASS and BUS_URL lines (mode 600), or pass --no-bus", e.display())).into());
            }
            None if a.bus_url.is_some() => {
                return Err(ConfigError(format!("--bus-url needs the password in an env file: create {DEFAULT_BUS_ENV_FILE} with BUS_USER, BUS_PASS and BUS_URL lines (mode 600), or pass --env-file")).into());
            }
            None => p.notes.push(format!("no bus env file ({DEFAULT_BUS_ENV_FILE}): the bus is the embedded local store; pass --env-file to use a real bus")),
        }
        p.bus_url = a.bus_url.clone();
    }

    // each built channel's own flags, and what the machine has (asked on a terminal)
    let place = InitPlace { home, prompt: asker };
    let chosen = a.channels.choose(&place).map_err(|e| -> anyhow::Error {
        // a flag naming what is not there is the config's problem (78); an answer that could not be read is not
        if e.is_transient() { anyhow::anyhow!(e.message) } else { ConfigError(e.message).into() }
    })?;
    for choice in chosen {
        p.add(choice);
    }
    if !a.page.is_empty() {
        let route = format!("[route]\npage = {}\n", toml_list(&a.page));
        p.sections.push(route.clone());
        p.written.push(route);
    }
    Ok(p)
}

/// The annotated example config (every key, explained), built into the binary: `handoff config example`.
pub const EXAMPLE: &str = include_str!("../../config/handoff.example.toml");

/// Runs `handoff config example`: prints [`EXAMPLE`].
pub fn example() -> i32 {
    crate::out!("{EXAMPLE}");
    exit::OK
}

/// Runs `handoff init`.
pub async fn run(o: &Overrides, a: InitArgs, json: bool) -> anyhow::Result<i32> {
    let dirs = Dirs::platform()?;
    let path: PathBuf = a.out.clone().or_else(|| o.config.clone()).unwrap_or_else(|| dirs.config_file.clone());
    if path.exists() && !a.force {
        return Err(ConfigError(format!(
            "{} already exists; pass --force to replace it (the old one is kept as {}.bak)",
            path.display(),
            path.display()
        ))
        .into());
    }
    let asker = Asker { interactive: !a.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() };
    let p = plan(&a, &dirs.home, &asker)?;
    let text = render(&p);
    crate::config::parse(&text).map_err(|e| anyhow::anyhow!("internal error: init wrote an invalid config ({e})"))?;
    // checked before anything is written: a check that fails for good leaves the old config as it was
    let checks = if a.no_check {
        Vec::new()
    } else {
        super::init_check::check(&text, &dirs.home, &dirs.data, &p.machine).await?
    };
    if path.exists() {
        let bak = PathBuf::from(format!("{}.bak", path.display()));
        std::fs::copy(&path, &bak)?;
    }
    handoff_channels::fsutil::write_atomic_private(&path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    if json {
        crate::output::json("init", exit::OK, serde_json::json!({ "config": path, "plan": p, "checks": checks }));
    } else {
        crate::outln!("wrote {}:\n", path.display());
        crate::out!("{text}");
        for c in &checks {
            crate::outln!("\n{} {}: {}", if c.ok { "✓" } else { "?" }, c.check, c.detail);
        }
        for n in &p.notes {
            crate::outln!("\nnote: {n}");
        }
        crate::outln!("\nnext: `handoff doctor` checks every channel; `handoff hooks install` wires Claude Code");
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `InitArgs` of `handoff init <args>`.
    fn init_args(args: &[&str]) -> InitArgs {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([&["handoff", "init"], args].concat()).unwrap();
        match cli.command {
            crate::cli::Command::Day(crate::cli::DayCommand::Init(a)) => *a,
            _ => unreachable!("init parses as init"),
        }
    }

    #[test]
    fn init_has_the_flags_of_the_built_channels_only() {
        use clap::CommandFactory;
        use handoff_channels::ChannelSections;
        let cmd = crate::cli::Cli::command();
        let init = cmd.find_subcommand("init").expect("init is a command");
        let longs: Vec<&str> = init.get_arguments().filter_map(|a| a.get_long()).collect();
        for name in ChannelSections::NAMES {
            let own = |l: &&str| *l == *name || l.starts_with(&format!("{name}-"));
            if !ChannelSections::built(name) {
                assert!(!longs.iter().any(own), "a build without {name} shows no --{name}… flag: {longs:?}");
            }
        }
        // the flags every build has, around the channels' own
        for common in ["out", "force", "yes", "name", "env-file", "bus-url", "no-bus", "page", "no-check"] {
            assert!(longs.contains(&common), "--{common}: {longs:?}");
        }
        if cfg!(all(feature = "git", feature = "drive", feature = "droplet")) {
            for flag in ["git-remote", "git-checkout", "drive-remote", "drive-folder", "rclone-config", "droplet-host"]
            {
                assert!(longs.contains(&flag), "--{flag}: {longs:?}");
            }
        }
        // a build without any channel still parses init (and has nothing of theirs to choose)
        init_args(&["--yes", "--no-bus"]);
    }

    #[cfg(all(feature = "git", feature = "droplet"))]
    #[test]
    fn awkward_flag_values_are_written_as_one_toml_value_each() {
        let home = tempfile::tempdir().unwrap();
        let a = init_args(&[
            "--git-remote",
            "git@github.com:you/h\"x.git\n[evil]\nx = 1",
            "--git-checkout",
            "~/claude handoffs",
            "--droplet-host",
            "root@droplet\r\n[sms]",
            "--page",
            "slack\"]",
        ]);
        let p = plan(&a, home.path(), &Asker { interactive: false }).unwrap();
        let text = render(&p);
        let cfg = crate::config::parse(&text).unwrap();
        let git = cfg.channels.git.expect("[git] written");
        assert_eq!(git.remote, "git@github.com:you/h\"x.git\n[evil]\nx = 1");
        assert_eq!(git.checkout, Path::new("~/claude handoffs"));
        assert_eq!(cfg.channels.droplet.expect("[droplet] written").host, "root@droplet\r\n[sms]");
        assert_eq!(cfg.route.page, Some(vec!["slack\"]".to_string()]));
        assert!(cfg.channels.sms.is_none(), "{text}");
        // the plan lists each channel's choice under its name
        assert_eq!(p.chosen["git"]["checkout"], "~/claude handoffs");
        assert_eq!(p.chosen["droplet"]["dir"], "/opt/claude-bus-files");
        // a channel listed in the plan that chose nothing is listed as null, as before the flags moved
        if cfg!(feature = "drive") {
            assert_eq!(p.chosen.get("drive"), Some(&serde_json::Value::Null), "{:?}", p.chosen);
        }
    }
}
