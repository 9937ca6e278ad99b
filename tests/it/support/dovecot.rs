//! A real IMAP server for the email channel's tests: Debian's `dovecot` (package `dovecot-imapd`) with
//! its own configuration in a temp dir — its own `base_dir`, a passwd-file user, a certificate
//! from a throwaway CA (`support::test_ca`) that the tests trust through `SSL_CERT_FILE`, IMAPS on a loopback
//! port, Maildir storage whose files the tests read directly. Run as `nobody` when the tests are root
//! (dovecot refuses mail access as root), as the current user otherwise.

use super::{free_port, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The mailbox user.
pub const USER: &str = "alice@example.com";
/// Its password.
pub const PASSWORD: &str = "imap-pass-7f3e9c";

/// A running dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    /// `imaps://127.0.0.1:<port>`.
    pub url: String,
    /// The port.
    pub port: u16,
    child: Option<std::process::Child>,
}

fn as_nobody() -> bool {
    unsafe { libc::geteuid() == 0 }
}

impl Dovecot {
    /// Makes the certificate, the config and the user, and starts dovecot.
    pub fn start() -> Self {
        let dovecot = tool("dovecot");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        super::test_ca::issue(d, "server", "IP:127.0.0.1,DNS:localhost");
        for sub in ["run", "state", "home", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n")).unwrap();
        let (uid, gid, user, group) = if as_nobody() {
            (65534, 65534, "nobody".to_string(), "nogroup".to_string())
        } else {
            let (u, g) = unsafe { (libc::geteuid(), libc::getegid()) };
            let name = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (u, g, name.clone(), name)
        };
        let port = free_port();
        let p = |s: &str| d.join(s).display().to_string();
        let conf = format!(
            r#"base_dir = {run}
state_dir = {state}
log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \Drafts
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#,
            run = p("run"),
            state = p("state"),
            log = p("log/dovecot.log"),
            cert = p("server.pem"),
            key = p("server.key"),
            passwd = p("passwd"),
            home = p("home"),
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        if as_nobody() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            let chown = Command::new("chown").args(["-R", "65534:65534"]).arg(d).status().unwrap();
            assert!(chown.success());
        }
        let mut s = Dovecot { dir, url: format!("imaps://127.0.0.1:{port}"), port, child: None };
        let _ = dovecot;
        s.spawn();
        s
    }

    /// Runs dovecot in the foreground (`-F`) as this test's child, so it dies with the test.
    fn spawn(&mut self) {
        let mut c = Command::new(tool("dovecot"));
        c.arg("-F").arg("-c").arg(self.dir.path().join("dovecot.conf"));
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("log/stderr")).unwrap());
        if as_nobody() {
            use std::os::unix::process::CommandExt;
            c.uid(65534).gid(65534);
        }
        let mut child = c.spawn().expect("dovecot starts (install it: apt-get install dovecot-imapd)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dovecot exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "dovecot never listened on {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// The CA the tests trust, for `SSL_CERT_FILE`.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// dovecot's log (and what it wrote to stderr).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("log/dovecot.log"), read("log/stderr"))
    }

    /// Stops dovecot (its master and every child); the port is closed afterwards.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGTERM: the master stops its children and exits
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts again on the same port with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The raw drafts in the Drafts folder (Maildir files), with each file's flags (`D` = \Draft).
    pub fn drafts(&self) -> Vec<(String, String)> {
        let dir = self.dir.path().join("home").join(USER).join("Maildir/.Drafts");
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(dir.join(sub)) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let flags = name.rsplit_once(":2,").map(|(_, f)| f.to_string()).unwrap_or_default();
                out.push((flags, std::fs::read_to_string(e.path()).unwrap()));
            }
        }
        out
    }

    /// The temp dir (config, mail, log).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}
