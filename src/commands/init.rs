//! `handoff init`: writes a config from what the machine already has — the bus env file, the remotes in
//! rclone.conf, the hosts in `~/.ssh/config`, the git remote of an existing handoffs checkout. On a
//! terminal it asks (Enter keeps the suggestion); in scripts (`--yes`, or stdin not a terminal) it takes
//! the flags and what is unambiguous. Never overwrites a config without `--force`; the config is written
//! mode 600 and never holds a secret (the password stays in the env file).

use crate::cli::InitArgs;
use crate::config::{ConfigError, Dirs, Overrides, expand_home, read_env_file, short_hostname, validate_machine};
use crate::exit;
use handoff_channels::env_file::DEFAULT_BUS_ENV_FILE;
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
    /// `[drive]`.
    pub drive: Option<DriveChoice>,
    /// `[droplet]`.
    pub droplet: Option<DropletChoice>,
    /// `[git]`.
    pub git: Option<GitChoice>,
    /// The other channels' sections (email, slack, discord, imessage, folder) and `[route] page`, as TOML.
    pub sections: Vec<String>,
    /// What was found but not used, and how to use it.
    pub notes: Vec<String>,
}

/// `[drive]` as chosen.
#[derive(Debug, serde::Serialize)]
pub struct DriveChoice {
    /// Remote name in rclone.conf.
    pub remote: String,
    /// Folder under it.
    pub folder: String,
    /// rclone.conf, when given explicitly.
    pub rclone_config: Option<String>,
}

/// `[droplet]` as chosen.
#[derive(Debug, serde::Serialize)]
pub struct DropletChoice {
    /// ssh host or alias.
    pub host: String,
    /// Directory on it.
    pub dir: String,
}

/// `[git]` as chosen.
#[derive(Debug, serde::Serialize)]
pub struct GitChoice {
    /// Remote URL.
    pub remote: String,
    /// Local checkout.
    pub checkout: String,
}

fn tilde(p: &Path, home: &Path) -> String {
    match p.strip_prefix(home) {
        Ok(rest) if home.as_os_str().len() > 1 => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

/// Host aliases in an ssh config (no wildcards, no negations).
pub fn ssh_hosts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let mut parts = l.splitn(2, |c: char| c.is_whitespace() || c == '=');
        if !parts.next().is_some_and(|k| k.eq_ignore_ascii_case("host")) {
            continue;
        }
        for h in parts.next().unwrap_or("").split_whitespace() {
            if !h.contains(['*', '?', '!']) && !out.iter().any(|x| x == h) {
                out.push(h.to_string());
            }
        }
    }
    out
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The config text for a plan.
pub fn render(p: &InitChoices) -> String {
    let mut t = String::from(
        "# handoff config written by `handoff init` — `handoff config example` prints every key, explained.\n# No secrets here: the bus password stays in the env file, drive credentials in rclone.conf.\n\n",
    );
    t.push_str(&format!("machine = {}\n", q(&p.machine)));
    if p.bus_env_file.is_some() || p.bus_url.is_some() {
        t.push_str("\n[bus]\n");
        if let Some(u) = &p.bus_url {
            t.push_str(&format!("url = {}\n", q(u)));
        }
        if let Some(e) = &p.bus_env_file {
            t.push_str(&format!("env_file = {}                # BUS_USER / BUS_PASS / BUS_URL\n", q(e)));
        }
    }
    if let Some(g) = &p.git {
        t.push_str(&format!("\n[git]\nremote = {}\ncheckout = {}\n", q(&g.remote), q(&g.checkout)));
    }
    if let Some(d) = &p.drive {
        t.push_str(&format!("\n[drive]\nremote = {}\nfolder = {}\n", q(&d.remote), q(&d.folder)));
        if let Some(c) = &d.rclone_config {
            t.push_str(&format!("rclone_config = {}\n", q(c)));
        }
    }
    if let Some(d) = &p.droplet {
        t.push_str(&format!("\n[droplet]\nhost = {}\ndir = {}\n", q(&d.host), q(&d.dir)));
    }
    for section in &p.sections {
        t.push('\n');
        t.push_str(section);
    }
    t
}

/// A TOML array of quoted strings.
fn q_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", "))
}

/// The sections of the channels given by flags only (email, slack, discord, imessage, folder) and the
/// page order. A flag for a channel this build lacks is refused naming the feature.
fn channel_sections(a: &InitArgs, home: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let built = |name: &str| -> anyhow::Result<()> {
        if handoff_channels::ChannelSections::built(name) {
            Ok(())
        } else {
            Err(ConfigError(format!(
                "--{name}: this build of handoff has no {name} support (rebuild with --features {name})"
            ))
            .into())
        }
    };
    if let (Some(imap), Some(user)) = (&a.email_imap, &a.email_user) {
        built("email")?;
        let mut t = format!("[email]\nimap = {}\nuser = {}\ndrafts = {}\n", q(imap), q(user), q(&a.email_drafts));
        if !a.email_to.is_empty() {
            t.push_str(&format!("to = {}\n", q_list(&a.email_to)));
        }
        if !a.email_cc.is_empty() {
            t.push_str(&format!("cc = {}\n", q_list(&a.email_cc)));
        }
        t.push_str("# password: HANDOFF_IMAP_PASSWORD in the environment or the env file (never here)\n");
        out.push(t);
    }
    if a.slack {
        built("slack")?;
        out.push(
            "[slack]\n# the webhook URL: SLACK_WEBHOOK_URL in the environment or an env_file (never here)\n".into(),
        );
    }
    if a.discord {
        built("discord")?;
        out.push(
            "[discord]\n# the webhook URL: DISCORD_WEBHOOK_URL in the environment or an env_file (never here)\n".into(),
        );
    }
    if let Some(to) = &a.imessage_to {
        built("imessage")?;
        out.push(format!("[imessage]\nto = {}\n", q(to)));
    }
    if let Some(path) = &a.folder {
        built("folder")?;
        out.push(format!("[folder]\npath = {}\n", q(&tilde(&expand_home(path, home), home))));
    }
    if !a.page.is_empty() {
        out.push(format!("[route]\npage = {}\n", q_list(&a.page)));
    }
    Ok(out)
}

struct Asker {
    interactive: bool,
}

impl Asker {
    /// Asks with a default; Enter keeps it, `-` clears it.
    fn ask(&self, question: &str, default: Option<&str>) -> anyhow::Result<Option<String>> {
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

    /// Picks one of `options` by number or name.
    fn pick(
        &self,
        what: &str,
        options: &[String],
        labels: &[String],
        given: Option<String>,
    ) -> anyhow::Result<Option<String>> {
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

fn git_origin(checkout: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(checkout)
        .args(["remote", "get-url", "origin"])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
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

    // git: the flag, else the origin of an existing checkout
    let checkout = expand_home(Path::new(&a.git_checkout), home);
    let found_origin = if a.git_remote.is_none() { git_origin(&checkout) } else { None };
    let git_remote = match &a.git_remote {
        Some(r) => Some(r.clone()),
        None => asker.ask("git remote of the handoff documents repo", found_origin.as_deref())?,
    };
    if let Some(r) = git_remote {
        p.git = Some(GitChoice { remote: r, checkout: tilde(&checkout, home) });
    }

    // drive: a remote from rclone.conf
    #[cfg(feature = "drive")]
    {
        use handoff_channels::drive::rclone_conf::RcloneConf;
        let conf = RcloneConf::load(a.rclone_config.as_deref()).map_err(|e| ConfigError(e.message))?;
        let names: Vec<String> = conf.remotes.iter().map(|r| r.name.clone()).collect();
        let listed: Vec<String> = conf.remotes.iter().map(|r| format!("{} ({})", r.name, r.kind())).collect();
        let chosen = asker.pick("rclone remotes for files (drive)", &names, &listed, a.drive_remote.clone())?;
        match chosen {
            Some(r) => {
                if conf.remote(&r).is_err() {
                    let place = conf
                        .path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "no rclone.conf found".into());
                    return Err(ConfigError(format!(
                        "--drive-remote {}: rclone has no remote by that name ({place}); remotes found: {}. Pass one of them to --drive-remote, or add it with `rclone config` first",
                        handoff_channels::untrusted::inline(&r),
                        if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
                    ))
                    .into());
                }
                p.drive = Some(DriveChoice {
                    remote: r,
                    folder: a.drive_folder.clone(),
                    rclone_config: a.rclone_config.as_ref().map(|c| tilde(&expand_home(c, home), home)),
                });
            }
            None if !names.is_empty() => p.notes.push(format!(
                "rclone remotes found: {}; pass --drive-remote NAME to send files through one",
                listed.join(", ")
            )),
            None => {}
        }
    }

    // droplet: a host from ~/.ssh/config
    let hosts = std::fs::read_to_string(home.join(".ssh/config")).map(|t| ssh_hosts(&t)).unwrap_or_default();
    match asker.pick("ssh hosts (droplet for transient files)", &hosts, &hosts, a.droplet_host.clone())? {
        Some(host) => p.droplet = Some(DropletChoice { host, dir: a.droplet_dir.clone() }),
        None if !hosts.is_empty() => p
            .notes
            .push(format!("ssh hosts found: {}; pass --droplet-host HOST to use one as the droplet", hosts.join(", "))),
        None => {}
    }
    p.sections = channel_sections(a, home)?;
    drop_channels_not_built(&mut p, a)?;
    Ok(p)
}

/// A section of a channel this build lacks is never written (the config would not load): asked for by a
/// flag, it is a clear error naming the feature; found on the machine, it is left out with a note.
fn drop_channels_not_built(p: &mut InitChoices, a: &InitArgs) -> anyhow::Result<()> {
    use handoff_channels::ChannelSections;
    let present = [
        ("git", "--git-remote", p.git.is_some(), a.git_remote.is_some()),
        ("drive", "--drive-remote", p.drive.is_some(), a.drive_remote.is_some()),
        ("droplet", "--droplet-host", p.droplet.is_some(), a.droplet_host.is_some()),
    ];
    for (name, flag, chosen, by_flag) in present {
        if !chosen || ChannelSections::built(name) {
            continue;
        }
        if by_flag {
            return Err(ConfigError(format!(
                "{flag}: this build of handoff has no {name} channel; rebuild it with `--features {name}` or leave {flag} out"
            ))
            .into());
        }
        match name {
            "git" => p.git = None,
            "drive" => p.drive = None,
            _ => p.droplet = None,
        }
        p.notes.push(format!("a {name} setup was found, but this build of handoff has no {name} channel: left out"));
    }
    Ok(())
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
    fn a_channel_this_build_lacks_is_an_error_by_flag_and_left_out_when_found() {
        let a = init_args(&["--git-remote", "file:///srv/h.git", "--droplet-host", "box"]);
        let mut p = InitChoices {
            git: Some(GitChoice { remote: "file:///srv/h.git".into(), checkout: "~/h".into() }),
            droplet: Some(DropletChoice { host: "box".into(), dir: "/d".into() }),
            ..Default::default()
        };
        let r = drop_channels_not_built(&mut p, &a);
        if cfg!(all(feature = "git", feature = "droplet")) {
            r.unwrap();
            assert!(p.git.is_some() && p.droplet.is_some());
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("this build of handoff has no") && e.contains("--features"), "{e}");
        }
        // found on the machine rather than asked for: left out with a note in a build without it
        let a = init_args(&[]);
        let mut p = InitChoices {
            git: Some(GitChoice { remote: "file:///srv/h.git".into(), checkout: "~/h".into() }),
            ..Default::default()
        };
        drop_channels_not_built(&mut p, &a).unwrap();
        assert_eq!(p.git.is_some(), cfg!(feature = "git"));
        assert_eq!(p.notes.is_empty(), cfg!(feature = "git"), "{:?}", p.notes);
    }

    #[test]
    fn ssh_hosts_skip_patterns() {
        let t = "Host droplet bus-box\n  HostName 1.2.3.4\nHost *\n  ForwardAgent no\nhost=gh !bad\nMatch all\n";
        assert_eq!(ssh_hosts(t), vec!["droplet", "bus-box", "gh"]);
    }

    #[test]
    fn rendered_config_parses_with_awkward_values() {
        let p = InitChoices {
            machine: "mac-studio".into(),
            bus_env_file: Some(DEFAULT_BUS_ENV_FILE.into()),
            git: Some(GitChoice { remote: "git@github.com:you/h\"x.git".into(), checkout: "~/claude handoffs".into() }),
            droplet: Some(DropletChoice { host: "root@droplet".into(), dir: "/opt/claude-bus-files".into() }),
            ..Default::default()
        };
        let cfg = crate::config::parse(&render(&p)).unwrap();
        assert_eq!(cfg.machine.as_deref(), Some("mac-studio"));
        assert!(cfg.channels.email.is_none() && cfg.route.page.is_none());
        assert!(
            cfg.bus.is_some()
                && cfg.channels.git.is_some()
                && cfg.channels.droplet.is_some()
                && cfg.channels.drive.is_none()
        );
    }
}
