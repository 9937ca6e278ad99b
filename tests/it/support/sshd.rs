//! A real OpenSSH server (`/usr/sbin/sshd`) for tests, on a free loopback port, with its own host key,
//! a generated client key in its `authorized_keys`, and everything in a temp dir. It runs as the current
//! user (as root it uses privilege separation, which needs `/run/sshd`).
//!
//! The client side is set up the way a user would have it: [`Sshd::setup_client`] writes `~/.ssh/config`
//! (a host alias), `~/.ssh/known_hosts` and the private key into the test `Env`'s HOME. Because `ssh` finds
//! `~` through the password database and not `$HOME`, the env also gets `nss_wrapper` (Debian's
//! `libnss-wrapper`) preloaded with a passwd entry whose home is the test HOME: every `ssh`, `sftp`, `scp`
//! and `git` started in that env then reads exactly the files a user's would.

use super::{Env, tool};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) sshd.
pub struct Sshd {
    /// The listener process, while running.
    pub child: Option<Child>,
    /// Loopback port (kept across restarts).
    pub port: u16,
    /// The user that logs in (the current user).
    pub user: String,
    /// Private key of the client (its public half is in `authorized_keys`).
    pub client_key: PathBuf,
    /// The host key currently in use.
    pub host_key: PathBuf,
    /// sshd's log file (`-E`).
    pub log: PathBuf,
    tmp: tempfile::TempDir,
    generation: u32,
    /// sshd's `MaxSessions`.
    max_sessions: u32,
}

fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen does not start ({e}): run `bash scripts/install-test-deps.sh` (installs openssh-client)")
        });
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Path of `libnss_wrapper.so`, or a panic naming the install command.
pub fn nss_wrapper_lib() -> PathBuf {
    let mut candidates =
        vec![PathBuf::from("/usr/lib/libnss_wrapper.so"), PathBuf::from("/usr/lib64/libnss_wrapper.so")];
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        for e in rd.flatten() {
            candidates.push(e.path().join("libnss_wrapper.so"));
        }
    }
    candidates.into_iter().find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "libnss_wrapper.so is missing: run `bash scripts/install-test-deps.sh` (installs Debian's libnss-wrapper)"
        )
    })
}

impl Sshd {
    /// Starts sshd on a free loopback port with fresh keys.
    pub fn start() -> Self {
        Self::start_with_max_sessions(200)
    }

    /// Like [`Sshd::start`], allowing at most `n` sessions (channels) per connection.
    pub fn start_with_max_sessions(n: u32) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let client_key = root.join("client_ed25519");
        keygen(&client_key, "handoff-test-client");
        let host_key = root.join("host_ed25519_0");
        keygen(&host_key, "handoff-test-host");
        std::fs::copy(root.join("client_ed25519.pub"), root.join("authorized_keys")).unwrap();
        let mut s = Sshd {
            child: None,
            port: super::free_port(),
            user: id("-un"),
            client_key,
            host_key,
            log: root.join("sshd.log"),
            tmp,
            generation: 0,
            max_sessions: n,
        };
        s.spawn();
        s
    }

    /// The temp dir holding the server's files; tests may create their server-side directories here.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Every session on this server has `HANDOFF_CANARY` set to this prefix (sshd's `SetEnv`): hostile names
    /// that try `$(touch ${HANDOFF_CANARY}x)` would create `<prefix>x`, so a test can prove nothing ran.
    pub fn canary_prefix(&self) -> String {
        format!("{}/canary-", self.path().display())
    }

    /// Whether sshd's log shows any session that ran a command or a shell (as opposed to the SFTP
    /// subsystem): `Some(line)` with the first such line.
    pub fn command_session_logged(&self) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| l.contains("Starting session: command") || l.contains("Starting session: shell"))
            .map(str::to_string)
    }

    /// A fresh directory on the "server" (inside the temp dir), created.
    pub fn server_dir(&self, name: &str) -> PathBuf {
        let d = self.path().join("srv").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_config(&self) -> PathBuf {
        let root = self.path();
        let cfg = root.join("sshd_config");
        let text = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
             StrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nSubsystem sftp internal-sftp\n\
             LogLevel VERBOSE\nMaxStartups 200\nMaxSessions {max_sessions}\nUseDNS no\nSetEnv HANDOFF_CANARY={canary}\n",
            port = self.port,
            hk = self.host_key.display(),
            pid = root.join("sshd.pid").display(),
            ak = root.join("authorized_keys").display(),
            user = self.user,
            canary = self.canary_prefix(),
            max_sessions = self.max_sessions,
        );
        std::fs::write(&cfg, text).unwrap();
        cfg
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "sshd already running");
        if id("-u") == "0" {
            // Privilege separation's fixed empty directory; sshd refuses to start as root without it.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let cfg = self.write_config();
        let sshd = tool("sshd");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{} does not start ({e}): run `bash scripts/install-test-deps.sh`", sshd.display())
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Blocks until the server sends its SSH banner.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sshd exited at start ({st}); its log:\n{}", self.log_text());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("sshd on port {} never became ready; its log:\n{}", self.port, self.log_text());
    }

    /// sshd's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Process ids of the listener's descendants (one per connection), from `/proc`.
    fn descendants(&self, root: u32) -> Vec<u32> {
        let mut parents: Vec<(u32, u32)> = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The fields after the `(comm)` field: state, ppid, ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
        let mut out = Vec::new();
        let mut frontier = vec![root];
        while let Some(p) = frontier.pop() {
            for &(c, pp) in &parents {
                if pp == p && !out.contains(&c) {
                    out.push(c);
                    frontier.push(c);
                }
            }
        }
        out
    }

    /// Stops the listener; connections already open keep going (as with `systemctl stop ssh`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the listener and every connection it serves: a server that drops off the network.
    pub fn kill_all(&mut self) {
        if let Some(c) = &self.child {
            for pid in self.descendants(c.id()) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        self.stop();
    }

    /// Kills only the open connections (the listener keeps accepting new ones): a dropped link.
    pub fn drop_connections(&self) {
        if let Some(c) = &self.child {
            for pid in self.descendants(c.id()) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }

    /// Starts again on the same port with the same host key.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts again on the same port with a NEW host key, so clients see a changed host key.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.generation += 1;
        let hk = self.path().join(format!("host_ed25519_{}", self.generation));
        keygen(&hk, "handoff-test-host-changed");
        self.host_key = hk;
        self.spawn();
    }

    /// Whether the listener is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The `known_hosts` line for the current host key: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.host_key.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", self.host_key.display())))
            .unwrap();
        let mut parts = pubkey.split_whitespace();
        let (kt, kb) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {kt} {kb}", self.port)
    }

    /// Sets `env` up as a user whose ssh reaches this server as `alias`: writes `~/.ssh/config`
    /// (`Host alias` → HostName/Port/User/IdentityFile), `~/.ssh/known_hosts` with the current host key and
    /// the private key `~/.ssh/id_handoff_test`, and preloads `nss_wrapper` so `ssh` sees that HOME.
    pub fn setup_client(&self, env: &mut Env, alias: &str) {
        use std::os::unix::fs::PermissionsExt;
        let home = env.home();
        let dot = home.join(".ssh");
        std::fs::create_dir_all(&dot).unwrap();
        std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = dot.join("id_handoff_test");
        std::fs::copy(&self.client_key, &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut config = std::fs::read_to_string(dot.join("config")).unwrap_or_default();
        config.push_str(&format!(
            "Host {alias}\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile ~/.ssh/id_handoff_test\n    IdentitiesOnly yes\n",
            self.port, self.user
        ));
        std::fs::write(dot.join("config"), config).unwrap();
        std::fs::set_permissions(dot.join("config"), std::fs::Permissions::from_mode(0o600)).unwrap();
        self.write_known_hosts(env);

        // nss_wrapper: this user's passwd entry, with the test HOME as home directory.
        let passwd = env.path().join("nss_passwd");
        let group = env.path().join("nss_group");
        let (uid, gid, gname) = (id("-u"), id("-g"), id("-gn"));
        std::fs::write(&passwd, format!("{}:x:{uid}:{gid}:handoff test user:{}:/bin/sh\n", self.user, home.display()))
            .unwrap();
        std::fs::write(&group, format!("{gname}:x:{gid}:\n")).unwrap();
        if !env.vars.iter().any(|(k, _)| k == "LD_PRELOAD") {
            env.var("LD_PRELOAD", nss_wrapper_lib().display().to_string());
            env.var("NSS_WRAPPER_PASSWD", passwd.display().to_string());
            env.var("NSS_WRAPPER_GROUP", group.display().to_string());
        }
        // No agent from the machine running the tests: keys come from ~/.ssh only.
        env.var("SSH_AUTH_SOCK", "");
    }

    /// Lets the client key of `other` log in here too (one user reaching two servers with one key, as
    /// through a jump host).
    pub fn accept_client_key_of(&self, other: &Sshd) {
        let key = std::fs::read_to_string(other.client_key.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", other.client_key.display())))
            .unwrap();
        let path = self.path().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&path).unwrap();
        keys.push_str(&key);
        std::fs::write(path, keys).unwrap();
    }

    /// (Re)writes `~/.ssh/known_hosts` in `env` with this server's current host key.
    pub fn write_known_hosts(&self, env: &Env) {
        let p = env.home().join(".ssh/known_hosts");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("{}\n", self.known_hosts_line())).unwrap();
    }

    /// An independent `ssh` client command in `env` (set up with [`Sshd::setup_client`]) for `alias`,
    /// non-interactive; append the remote command's arguments.
    pub fn ssh(&self, env: &Env, alias: &str) -> Command {
        let mut c = Command::new("ssh");
        env.apply(&mut c);
        c.args(["-o", "BatchMode=yes", alias]);
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
    }
}
