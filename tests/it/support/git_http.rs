//! A real git smart-HTTP server on loopback: `git http-backend` (ships with git) behind
//! `tests/fixtures/git_http_server.py`, over TLS with a certificate from a CA generated per server (by the
//! `openssl` CLI), requiring HTTP basic auth.

use super::{free_port, repo_root};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The running server; stopped on drop.
pub struct GitHttpServer {
    tmp: tempfile::TempDir,
    child: Option<Child>,
    /// The loopback port (the same across restarts).
    pub port: u16,
    auth: String,
    /// `old=new` repository paths answered with a 301, or empty.
    moved: String,
    /// Plain http instead of https.
    plain: bool,
}

impl GitHttpServer {
    /// Starts a server that accepts `user` with `password` only.
    pub fn start(user: &str, password: &str) -> Self {
        Self::start_with_moved(user, password, "")
    }

    /// Like [`GitHttpServer::start`], over plain http (no TLS).
    pub fn start_plain(user: &str, password: &str) -> Self {
        let mut s = Self::start_with_moved(user, password, "");
        s.stop();
        s.plain = true;
        s.spawn();
        s
    }

    /// Like [`GitHttpServer::start`], answering every request under `/<old>/` with a 301 to `/<new>/`
    /// (`moved` is `old=new`, e.g. `old.git=handoffs.git`): a renamed repository.
    pub fn start_with_moved(user: &str, password: &str, moved: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("repos")).unwrap();
        crate::support::test_ca::issue(d, "server", "DNS:localhost");
        let mut s = Self {
            tmp,
            child: None,
            port: free_port(),
            auth: format!("{user}:{password}"),
            moved: moved.to_string(),
            plain: false,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.tmp.path();
        let python = repo_root().join(".test-tools/venv/bin/python");
        assert!(python.exists(), "python venv missing: run `bash scripts/install-test-deps.sh`");
        for _ in 0..50 {
            let mut child = Command::new(&python)
                .arg(repo_root().join("tests/fixtures/git_http_server.py"))
                .arg(self.port.to_string())
                .arg(d.join("repos"))
                .arg(d.join("server.pem"))
                .arg(d.join("server.key"))
                .env("GIT_HTTP_TEST_AUTH", &self.auth)
                .env("GIT_HTTP_TEST_MOVED", &self.moved)
                .env("GIT_HTTP_TEST_PLAIN", if self.plain { "1" } else { "" })
                .stdout(Stdio::piped())
                .stderr(std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            if line.starts_with("listening") {
                self.child = Some(child);
                return;
            }
            // the port was briefly taken (a restart right after a stop): try again
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the git HTTP server did not start: {}", self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.tmp.path().join("requests.log")
    }

    /// Every request so far, `<method> <path> <status>` a line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The CA certificate that signed the server's certificate (for `http.sslCAInfo`).
    pub fn ca(&self) -> PathBuf {
        self.tmp.path().join("ca.pem")
    }

    /// A new bare repository `name` served by this server (push enabled); its path.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join("repos").join(name);
        let out = Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&p).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new("git").arg("-C").arg(&p).args(["config", "http.receivepack", "true"]).output().unwrap();
        assert!(out.status.success());
        p
    }

    /// `https`, or `http` for a plain server.
    pub fn scheme(&self) -> &'static str {
        if self.plain { "http" } else { "https" }
    }

    /// The URL of repository `name` (no credentials in it).
    pub fn url(&self, name: &str) -> String {
        format!("{}://localhost:{}/{name}", self.scheme(), self.port)
    }

    /// Stops the server (connections refused from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
