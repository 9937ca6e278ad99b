//! Configuration: handoff's TOML file (SPEC §6), the bus env file, environment variables, and the
//! resolution of all three into what the commands use.

use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handoff_channels::ChannelSections;

/// A configuration problem, with the file and the fix in its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn config_err(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(ConfigError(msg.into()))
}

/// The config file as written (SPEC §6). Every section is optional; an absent section = not configured.
/// The channels' sections come from the registration list in `channels/src/lib.rs`.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// This machine's name (default: the short hostname).
    pub machine: Option<String>,
    /// The bus.
    pub bus: Option<BusSection>,
    /// Every optional channel's section (`[git]`, `[drive]`, ...), as registered.
    pub channels: ChannelSections,
    /// Router thresholds.
    pub route: RouteConfig,
    /// End-to-end encryption of sends: `never` (the default; `send --encrypt` asks for it) or `always`.
    pub encrypt: EncryptMode,
    /// Time budgets of the session boundary (the start hook, `send`).
    pub budget: BudgetConfig,
}

/// The top-level keys that are not channel sections.
const CORE_KEYS: [&str; 5] = ["machine", "bus", "route", "encrypt", "budget"];

impl FileConfig {
    /// Notes about deprecated keys in this file, each with what to write instead.
    pub fn deprecations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(max) = self.route.droplet_max {
            out.push(format!(
                "[route] droplet_max is deprecated: write `max_size = \"{max}\"` under [droplet] instead (still read for now)"
            ));
        }
        out
    }
}

impl<'de> Deserialize<'de> for FileConfig {
    /// Reads the core keys and hands every other key to the registered channels; an unknown key is an
    /// error naming the expected ones (as `deny_unknown_fields` would).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FileConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("handoff's config (a TOML table)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FileConfig, A::Error> {
                use serde::de::Error;
                let mut cfg = FileConfig::default();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(A::Error::custom(format!("duplicate key `{key}`")));
                    }
                    match key.as_str() {
                        "machine" => cfg.machine = map.next_value()?,
                        "bus" => cfg.bus = map.next_value()?,
                        "route" => cfg.route = map.next_value()?,
                        "encrypt" => cfg.encrypt = map.next_value()?,
                        "budget" => cfg.budget = map.next_value()?,
                        other => {
                            if !cfg.channels.read_section(other, &mut map)? {
                                return Err(A::Error::unknown_field(other, top_level_keys()));
                            }
                        }
                    }
                }
                Ok(cfg)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Every top-level key: the core ones and the registered channels' sections.
fn top_level_keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| CORE_KEYS.iter().chain(ChannelSections::NAMES).copied().collect())
}

/// `encrypt = "always" | "never"`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptMode {
    /// Only with `send --encrypt`.
    #[default]
    Never,
    /// Every send (`send --no-encrypt` opts out once).
    Always,
}

/// `[bus]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// Bus URL (default: `BUS_URL` from the environment or the env file).
    pub url: Option<String>,
    /// The env file holding `BUS_USER` / `BUS_PASS` / `BUS_URL` (default `~/.secrets/claude-bus.env`).
    pub env_file: Option<PathBuf>,
    /// Per-request timeout, e.g. `"20s"`.
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<std::time::Duration>,
    /// Longest wait for a connection to open, e.g. `"2s"` (the default).
    #[serde(default, with = "humantime_serde_opt")]
    pub connect_timeout: Option<std::time::Duration>,
}

/// `[budget]`: how long the session boundary may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// The whole of `sync --format claude-hook` (flush, documents, bus): what does not fit is left to a
    /// background run or the next sync, and named in the context. Default 5 s.
    #[serde(default = "default_hook_budget", with = "humantime_serde_req")]
    pub hook: std::time::Duration,
    /// How long `send` tries before it leaves the rest in the outbox and exits 75. Default 15 s.
    #[serde(default = "default_send_deadline", with = "humantime_serde_req")]
    pub send: std::time::Duration,
}

fn default_hook_budget() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}
fn default_send_deadline() -> std::time::Duration {
    std::time::Duration::from_secs(15)
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self { hook: default_hook_budget(), send: default_send_deadline() }
    }
}

mod humantime_serde_req {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{e} (write it like \"5s\")")))
    }
}

/// `[route]`: thresholds of the router.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Text longer than this becomes a document (at most 64 KiB, the bus's own limit).
    #[serde(default = "default_inline_max")]
    pub inline_max: ByteSize,
    /// Deprecated: the droplet's own `max_size` (`[droplet] max_size`) replaces it; still read, with a
    /// note, when the droplet section does not set one.
    #[serde(default)]
    pub droplet_max: Option<ByteSize>,
    /// Channels that page a human for `send --urgent`, tried in this order until one succeeds (default:
    /// every configured page channel, fastest first, then by each channel's `priority`).
    #[serde(default)]
    pub page: Option<Vec<String>>,
    /// `sync --fetch` downloads pointers while the bytes fetched in that sync stay within this (each item read
    /// no further than the size its pointer claims); a pointer that does not fit is listed with the
    /// `handoff fetch` command that gets it.
    #[serde(default = "default_fetch_max")]
    pub fetch_max: ByteSize,
}

fn default_inline_max() -> ByteSize {
    ByteSize::kib(48)
}
fn default_fetch_max() -> ByteSize {
    ByteSize::mib(256)
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self { inline_max: default_inline_max(), droplet_max: None, page: None, fetch_max: default_fetch_max() }
    }
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{e} (write it like \"20s\")")))
        })
        .transpose()
    }
}

/// Where handoff keeps its files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Config file location used when `--config` is not given.
    pub config_file: PathBuf,
    /// Data directory (embedded stores, outbox, local state).
    pub data: PathBuf,
    /// `$HOME`.
    pub home: PathBuf,
}

impl Dirs {
    /// The platform's directories (XDG on Linux).
    pub fn platform() -> anyhow::Result<Self> {
        let pd = directories::ProjectDirs::from("", "", "handoff")
            .ok_or_else(|| config_err("cannot find a home directory: set HOME"))?;
        let home =
            directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()).unwrap_or_else(|| PathBuf::from("."));
        let data =
            std::env::var_os("HANDOFF_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| pd.data_dir().to_path_buf());
        Ok(Self { config_file: pd.config_dir().join("config.toml"), data, home })
    }
}

/// Creates `dir` (and its parents) and makes `dir` itself private to the user (0700 on Unix): handoff's
/// data directories hold received messages, queued sends and local stores.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

pub use handoff_channels::paths::expand_home;

/// Loads the config file. `explicit` = from `--config`/`HANDOFF_CONFIG` (must exist). Returns the parsed
/// file (default when absent) and its path when one was read.
pub fn load_file(explicit: Option<&Path>, dirs: &Dirs) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (dirs.config_file.clone(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok((FileConfig::default(), None)),
        Err(e) => return Err(config_err(format!("cannot read the config file {}: {e}", path.display()))),
    };
    let cfg = parse(&text).map_err(|e| config_err(format!("{}: {e}", path.display())))?;
    Ok((cfg, Some(path)))
}

/// Parses config text; errors name the key and line.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let mut msg = e.message().trim().to_string();
        // value errors point at the value: name the key of that line too
        if let Some(l) = line {
            let key = text.lines().nth(l - 1).and_then(|t| t.split_once('=')).map(|(k, _)| k.trim().trim_matches('"'));
            if let Some(k) = key.filter(|k| !k.is_empty() && !msg.contains(*k)) {
                msg = format!("`{k}`: {msg}");
            }
        }
        match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        }
    })?;
    cfg.channels.check_built()?;
    // the deprecated `[route] droplet_max` still sets the droplet's own `max_size` when that is not set
    #[cfg(feature = "droplet")]
    let cfg = {
        let mut cfg = cfg;
        if let (Some(max), Some(droplet)) = (cfg.route.droplet_max, cfg.channels.droplet.as_mut())
            && droplet.max_size.is_none()
        {
            droplet.max_size = Some(handoff_channels::registration::SizeValue::Bytes(max.as_u64()));
        }
        cfg
    };
    if cfg.route.inline_max.as_u64() > handoff_channels::bus::MAX_BODY as u64 {
        return Err(format!("[route] inline_max = {} is larger than the bus's 64 KiB limit", cfg.route.inline_max));
    }
    Ok(cfg)
}

/// Reads the bus env file with [`handoff_channels::env_file::read`] (`KEY=VALUE` lines; a file others can
/// read is refused: mode bits on Unix, the ACL on Windows), failures as config errors.
pub fn read_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    handoff_channels::env_file::read(path, "the env file").map_err(|e| config_err(e.message))
}

/// How to reach the bus after resolving config, env file and environment.
#[derive(Clone)]
pub enum BusTarget {
    /// An HTTP bus.
    Http {
        /// Base URL.
        url: String,
        /// Basic-auth user.
        user: String,
        /// Basic-auth password (never printed).
        password: String,
        /// Per-request timeout.
        timeout: std::time::Duration,
        /// Longest wait for a connection to open.
        connect_timeout: std::time::Duration,
    },
    /// The embedded default: a local SQLite store.
    Local {
        /// Path of the store.
        path: PathBuf,
    },
}

impl std::fmt::Debug for BusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusTarget::Http { url, user, .. } => {
                write!(f, "Http {{ url: {}, user: {user} }}", handoff_channels::untrusted::redact_url(url))
            }
            BusTarget::Local { path } => write!(f, "Local {{ {} }}", path.display()),
        }
    }
}

/// Everything a command needs, resolved.
pub struct Settings {
    /// This machine's name.
    pub machine: String,
    /// The parsed config file.
    pub file: FileConfig,
    /// Which file it came from.
    pub file_path: Option<PathBuf>,
    /// Directories.
    pub dirs: Dirs,
    /// The bus.
    pub bus: BusTarget,
    /// Secret values loaded (bus password, ...), for the secret scanner and redaction.
    pub secrets: Vec<String>,
    /// Where the bus URL came from (`BUS_URL in the env file …`, `BUS_URL in the environment`, `[bus] url
    /// in …`); `None` on the embedded default.
    pub bus_from: Option<String>,
}

impl std::fmt::Debug for Settings {
    /// Everything but the secret values (only how many there are).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("machine", &self.machine)
            .field("file", &self.file)
            .field("file_path", &self.file_path)
            .field("dirs", &self.dirs)
            .field("bus", &self.bus)
            .field("secrets", &format_args!("<{} redacted>", self.secrets.len()))
            .finish()
    }
}

/// Options from the command line that affect settings.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--machine`.
    pub machine: Option<String>,
}

impl Settings {
    /// Resolves settings from the command line, the config file, the env file and the environment.
    pub fn load(o: &Overrides) -> anyhow::Result<Self> {
        let dirs = Dirs::platform()?;
        let (file, file_path) = load_file(o.config.as_deref(), &dirs)?;
        for note in file.deprecations() {
            eprintln!("handoff: note: {note}");
        }
        let machine = o.machine.clone().or_else(|| file.machine.clone()).unwrap_or_else(short_hostname);
        validate_machine(&machine)?;
        let section = file.bus.clone().unwrap_or_default();
        let env_file_path = match section.env_file.as_deref() {
            Some(p) => expand_home(p, &dirs.home),
            None => handoff_channels::env_file::default_bus_env_file(&dirs.home),
        };
        let env_file = if env_file_path.exists() {
            read_env_file(&env_file_path)?
        } else if section.env_file.is_some() {
            return Err(config_err(format!(
                "[bus] env_file {} does not exist; create it with BUS_USER, BUS_PASS and BUS_URL lines (mode 600)",
                env_file_path.display()
            )));
        } else {
            BTreeMap::new()
        };
        let lookup = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| env_file.get(k).cloned());
        let from_env = std::env::var("BUS_URL").ok().filter(|v| !v.is_empty()).is_some();
        let bus_from = if section.url.is_some() {
            Some(format!(
                "[bus] url in {}",
                file_path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "the config".into())
            ))
        } else if from_env {
            Some("BUS_URL in the environment".to_string())
        } else if env_file.contains_key("BUS_URL") {
            Some(format!("BUS_URL in the env file {}", env_file_path.display()))
        } else {
            None
        };
        let url = section.url.clone().or_else(|| lookup("BUS_URL"));
        let mut secrets = Vec::new();
        let bus = match url {
            Some(url) => {
                let password = lookup("BUS_PASS").ok_or_else(|| {
                    config_err(format!(
                        "the bus {} is configured but no password was found: set BUS_PASS or put it in {}",
                        handoff_channels::untrusted::redact_url(&url),
                        env_file_path.display()
                    ))
                })?;
                secrets.push(password.clone());
                BusTarget::Http {
                    url,
                    user: lookup("BUS_USER").unwrap_or_else(|| "claude".into()),
                    password,
                    timeout: section.timeout.unwrap_or(std::time::Duration::from_secs(20)),
                    connect_timeout: section.connect_timeout.unwrap_or(std::time::Duration::from_secs(2)),
                }
            }
            None => BusTarget::Local { path: dirs.data.join("bus.sqlite") },
        };
        let bus_from = bus_from.filter(|_| matches!(bus, BusTarget::Http { .. }));
        Ok(Self { machine, file, file_path, dirs, bus, secrets, bus_from })
    }

    /// True when running on the embedded default (no remote bus).
    pub fn embedded(&self) -> bool {
        matches!(self.bus, BusTarget::Local { .. })
    }
}

/// Checks a machine name: it travels in bus fields and file names.
pub fn validate_machine(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != handoff_channels::bus::BROADCAST
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "machine name {name:?} is not usable: use 1-64 letters, digits, '-', '_' or '.', and not \"any\" (set --machine, HANDOFF_MACHINE or `machine` in the config)"
        )))
    }
}

/// The short hostname (up to the first dot), or `localhost`.
pub fn short_hostname() -> String {
    let h = gethostname::gethostname().to_string_lossy().into_owned();
    let short: String = h
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if short.is_empty() { "localhost".into() } else { short }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_line() {
        let e = parse("machine = \"a\"\n[route]\ninline_max = \"48KiB\"\ndroplet_mux = \"1MiB\"\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("droplet_mux"), "{e}");
        let e = parse("[route]\ninline_max = \"lots\"\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[route]\ninline_max = \"1MiB\"\n").unwrap_err();
        assert!(e.contains("64 KiB"), "{e}");
        let c = parse("[route]\ninline_max = \"10KiB\"\ndroplet_max = \"1GiB\"\n").unwrap();
        assert_eq!(c.route.inline_max.as_u64(), 10 * 1024);
        assert_eq!(c.route.droplet_max.map(|m| m.as_u64()), Some(1 << 30));
        assert!(c.deprecations()[0].contains("max_size"), "{:?}", c.deprecations());
        let e = parse("[slak]\n").unwrap_err();
        assert!(e.contains("slak") && e.contains("slack"), "an unknown section names the known ones: {e}");
        let e = parse("[folder]\npath = \"/x\"\n[folder]\npath = \"/y\"\n").unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn env_file_reads_the_original_format_and_refuses_loose_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bus.env");
        std::fs::write(&p, "# bus\nexport BUS_USER=claude\nBUS_PASS=\"p w\"\nBUS_URL='https://x'\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let m = read_env_file(&p).unwrap();
        assert_eq!(m["BUS_USER"], "claude");
        assert_eq!(m["BUS_PASS"], "p w");
        assert_eq!(m["BUS_URL"], "https://x");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_env_file(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_a_loaded_secret() {
        let s = Settings {
            machine: "m".into(),
            file: FileConfig::default(),
            file_path: None,
            dirs: Dirs { config_file: "c".into(), data: "d".into(), home: "h".into() },
            bus: BusTarget::Http {
                url: "http://127.0.0.1:1".into(),
                user: "claude".into(),
                password: "pa55-w0rd-xyz".into(),
                timeout: std::time::Duration::from_secs(1),
                connect_timeout: std::time::Duration::from_secs(1),
            },
            secrets: vec!["pa55-w0rd-xyz".into()],
            bus_from: Some("BUS_URL in the environment".into()),
        };
        let d = format!("{s:?} {s:#?}");
        assert!(!d.contains("pa55-w0rd-xyz") && d.contains("<1 redacted>"), "{d}");
    }

    #[test]
    fn machine_names_are_checked() {
        assert!(validate_machine("mac-studio").is_ok());
        assert!(validate_machine("any").is_err());
        assert!(validate_machine("a b").is_err());
        assert!(validate_machine("").is_err());
    }
}

#[cfg(all(
    test,
    feature = "git",
    feature = "drive",
    feature = "droplet",
    feature = "sms",
    feature = "email",
    feature = "slack",
    feature = "discord",
    feature = "imessage",
    feature = "folder"
))]
mod example_tests {
    #[test]
    fn the_annotated_example_config_parses_with_every_section() {
        let text = include_str!("../config/handoff.example.toml");
        let c = super::parse(text).unwrap_or_else(|e| panic!("config/handoff.example.toml: {e}"));
        assert_eq!(c.machine.as_deref(), Some("mac-studio"));
        for name in handoff_channels::ChannelSections::NAMES {
            assert!(c.channels.configured(name), "the example config has a [{name}] section");
        }
        assert!(c.bus.is_some());
        assert_eq!(c.route.page.as_deref(), Some(&["sms".to_string(), "imessage".into(), "slack".into()][..]));
        assert_eq!(c.route.droplet_max, None, "the example uses [droplet] max_size, not the deprecated key");
        let droplet = c.channels.droplet.as_ref().unwrap();
        assert_eq!(droplet.max_size.as_ref().map(|m| m.bytes("").unwrap()), Some(256 << 20));
    }
}
