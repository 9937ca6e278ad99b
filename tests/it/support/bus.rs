//! The real `handoff bus serve` binary, started on a free loopback port with its own data dir.

use super::postgres::{PG_PASSWORD, PgServer};
use super::{Env, handoff_bin};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which store a test bus keeps its messages in: the same behaviour suite runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite store in a data dir.
    Sqlite,
    /// A PostgreSQL database on a server the harness starts.
    Postgres,
}

/// The password every test bus uses (never passed on a command line).
pub const PASSWORD: &str = "s3cret-test-pass";
/// The user of the original bus.
pub const USER: &str = "claude";

/// A running bus server.
pub struct BusServer {
    /// Its process.
    pub child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Data directory (survives restarts).
    pub data: PathBuf,
    /// Port it listens on (reused on restart).
    pub port: u16,
    /// The PostgreSQL server holding its messages (None: the embedded store in `data`).
    pub pg: Option<Arc<PgServer>>,
    _tmp: Option<tempfile::TempDir>,
}

impl BusServer {
    /// Starts a bus with a fresh data dir.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("bus-data");
        let mut s = Self::start_at(&data, 0);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a bus on a fresh store of the given kind (for PostgreSQL: a fresh server and database).
    pub fn start_on(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Sqlite => Self::start(),
            StoreKind::Postgres => Self::start_replica(&Arc::new(PgServer::start())),
        }
    }

    /// Starts one more `bus serve` replica on the database of `pg`.
    pub fn start_replica(pg: &Arc<PgServer>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("bus-data");
        let mut s = Self::spawn(&data, 0, Some(pg.clone()));
        s._tmp = Some(tmp);
        s
    }

    /// The kind of store this bus runs on.
    pub fn kind(&self) -> StoreKind {
        if self.pg.is_some() { StoreKind::Postgres } else { StoreKind::Sqlite }
    }

    /// Starts a bus on `data`, on `port` (0 = any free port).
    pub fn start_at(data: &Path, port: u16) -> Self {
        Self::spawn(data, port, None)
    }

    fn spawn(data: &Path, port: u16, pg: Option<Arc<PgServer>>) -> Self {
        Self::try_spawn(data, port, pg, &[], &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a bus with a fresh data dir on `port` (0: any), with extra `bus serve` arguments and
    /// environment variables (the Twilio webhook's flags and token).
    pub fn start_with(port: u16, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("bus-data");
        let mut s = Self::try_spawn(&data, port, None, args, vars).unwrap_or_else(|e| panic!("{e}"));
        s._tmp = Some(tmp);
        s
    }

    /// Starts `bus serve`; an error when it exits without announcing its address (e.g. the port is taken).
    fn try_spawn(
        data: &Path,
        port: u16,
        pg: Option<Arc<PgServer>>,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(handoff_bin());
        cmd.args(["bus", "serve", "--listen", &format!("127.0.0.1:{port}")]).args(args);
        cmd.env_remove("TWILIO_TOKEN").envs(vars.iter().copied());
        match &pg {
            Some(pg) => cmd.args(["--store", &pg.url()]).env("PGPASSWORD", PG_PASSWORD),
            None => cmd.arg("--data").arg(data).env_remove("PGPASSWORD"),
        };
        std::fs::create_dir_all(data.parent().unwrap_or(data)).unwrap();
        let mut child = cmd
            .env_remove("HANDOFF_BUS_STORE")
            .env("BUS_PASS", PASSWORD)
            .env("BUS_USER", USER)
            .env_remove("BUS_URL")
            .env("HOME", data.parent().unwrap_or(data))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bus serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string) else {
            let _ = child.kill();
            let status = child.wait().ok();
            return Err(format!("bus serve on port {port} did not announce its address: {line:?} (exit: {status:?})"));
        };
        let port = url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
        let s = BusServer { child: Some(child), url, data: data.to_path_buf(), port, pg, _tmp: None };
        s.wait_healthy();
        Ok(s)
    }

    /// Blocks until `/health` answers 200.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/health", self.url)).basic_auth(USER, Some(PASSWORD)).send()
                && r.status().is_success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bus at {} never became healthy", self.url);
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().ok().and_then(|s| s.code())
    }

    /// Starts again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        // Between the kill and the new bind another process may briefly hold the port (an outgoing
        // connection's local port comes from the same range): try again for a while before failing.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut again = loop {
            match Self::try_spawn(&self.data, self.port, self.pg.clone(), &[], &[]) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("restarting the bus: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.child = again.child.take();
        self.url = again.url.clone();
    }

    /// Writes the env file users keep (`BUS_USER`, `BUS_PASS`, `BUS_URL`) into `env` at its conventional
    /// place (`~/.secrets/claude-bus.env`, mode 0600) and returns its path.
    pub fn write_env_file(&self, env: &Env) -> PathBuf {
        env.write_secret_file(
            "home/.secrets/claude-bus.env",
            &format!("BUS_USER={USER}\nBUS_PASS={PASSWORD}\nBUS_URL={}\n", self.url),
        )
    }

    /// A blocking HTTP client call with the right credentials: GET.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
    }

    /// POST JSON with the right credentials.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .json(body)
            .send()
            .unwrap()
    }
}

impl Drop for BusServer {
    fn drop(&mut self) {
        self.kill();
    }
}
