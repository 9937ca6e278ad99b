//! A real PostgreSQL server for tests: `initdb` + `pg_ctl` in a temp dir, listening on a free loopback
//! port, password authentication (scram-sha-256) for the user `handoff`. PostgreSQL refuses to run as
//! root, so under root (as in CI) its processes run as the unprivileged `nobody` user via `setpriv`.

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The database user tests connect as.
pub const PG_USER: &str = "handoff";
/// Its password (given to handoff through PGPASSWORD, never in a URL).
pub const PG_PASSWORD: &str = "pg-test-pass-0xc0ffee";

/// A running PostgreSQL cluster, stopped (immediately) on drop.
pub struct PgServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
    _dir: tempfile::TempDir,
}

/// The directory holding `initdb`, `pg_ctl`, `psql` (Debian keeps them under /usr/lib/postgresql/N/bin).
pub fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    if let Some(b) = found.pop() {
        return b;
    }
    if let Some(dir) = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists()))
    {
        return dir;
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) are missing: run `bash scripts/install-test-deps.sh` (installs Debian's postgresql)"
    );
}

fn nobody() -> (u32, u32) {
    let name = std::ffi::CString::new("nobody").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "tests run as root and need the user `nobody` to run PostgreSQL (it refuses root)");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

impl PgServer {
    /// Initialises and starts a fresh cluster with a database `bus`.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let run_as = if unsafe { libc::geteuid() } == 0 { Some(nobody()) } else { None };
        let data = dir.path().join("pgdata");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        if let Some((uid, gid)) = run_as {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::create_dir(&data).unwrap();
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let s = PgServer { port: free_port(), bin, data, run_as, _dir: dir };
        let o = s.pg(
            "initdb",
            &[
                "-D",
                &s.data_str(),
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--pwfile",
                pwfile.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "initdb failed: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::remove_file(&pwfile).unwrap();
        s.start_again();
        s.watchdog();
        let o = s.psql("postgres", "CREATE DATABASE bus");
        assert!(o.status.success(), "createdb failed: {}", String::from_utf8_lossy(&o.stderr));
        s
    }

    /// A detached shell that stops the cluster if this test process dies without dropping it (killed by
    /// a timeout, aborted), so no PostgreSQL outlives the test run.
    fn watchdog(&self) {
        let stop = match self.run_as {
            Some((uid, gid)) => {
                format!("setpriv --reuid={uid} --regid={gid} --clear-groups '{}'", self.bin.join("pg_ctl").display())
            }
            None => format!("'{}'", self.bin.join("pg_ctl").display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; [ -d '{data}' ] && {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            data = self.data_str(),
            root = self._dir.path().display(),
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    fn data_str(&self) -> String {
        self.data.to_str().unwrap().to_string()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Output {
        let mut c = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()])
                    .arg(self.bin.join(tool));
                c
            }
            None => Command::new(self.bin.join(tool)),
        };
        c.args(args).env_remove("PGPASSWORD").env("LC_ALL", "C").current_dir("/");
        c.stdin(std::process::Stdio::null());
        c.output().unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
    }

    /// (Re)starts the server on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        let opts =
            format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200", self.port, self.data_str());
        let log = self.data.join("server.log");
        let o = self.pg(
            "pg_ctl",
            &["-D", &self.data_str(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"],
        );
        assert!(
            o.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL never listened on {}", self.port);
    }

    /// Stops the server (fast shutdown: open connections are cut, as when a database host goes away).
    pub fn stop(&self) {
        let o = self.pg("pg_ctl", &["-D", &self.data_str(), "-m", "fast", "-w", "stop"]);
        assert!(o.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// `postgres://handoff@127.0.0.1:PORT/bus` (no password: that goes in PGPASSWORD).
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/bus", self.port)
    }

    /// Runs SQL with psql as `handoff` on database `db`; returns the output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PG_PASSWORD)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("psql runs")
    }

    /// Runs SQL on `bus` and returns stdout, panicking on failure.
    pub fn sql(&self, sql: &str) -> String {
        let o = self.psql("bus", sql);
        assert!(o.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The data directory (for logs on failure).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.pg("pg_ctl", &["-D", &self.data_str(), "-m", "immediate", "-w", "stop"]);
    }
}
