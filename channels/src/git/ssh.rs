//! git's ssh transport through the system `ssh` program, registered with libgit2 as a custom transport
//! for `ssh://`, `ssh+git://`, `git+ssh://` and scp-like remotes (`host:path`, `user@host:path`).
//!
//! It runs what git itself runs, `ssh [-p PORT] [USER@]HOST "git-upload-pack '/path'"` (or
//! `git-receive-pack`), and speaks git's protocol over the program's stdin and stdout. The user's whole
//! ssh setup therefore applies exactly as for `git` and `ssh`: `~/.ssh/config` with `Include`, `Match`,
//! `ProxyJump` and aliases, the agent, keys, `known_hosts` (a changed or unknown host key is refused;
//! `BatchMode` means ssh never asks). libgit2 is built without libssh2, so neither libssh2 nor OpenSSL is
//! compiled into handoff. On Windows the program is Windows' own OpenSSH client (see `crate::ssh::program`).
//!
//! As git does, `GIT_SSH_COMMAND`, then `core.sshCommand`, then `GIT_SSH` name another program; the
//! batch-mode options are only added when that program is OpenSSH's `ssh`. Host names and users that start
//! with `-` are refused (they would be read as options), and the path travels single-quoted, as git
//! quotes it, so a remote shell takes it verbatim.
//!
//! When ssh (or the remote command) fails, what it printed is kept for the calling thread
//! ([`take_failure`]) so the git channel can name the cause and the fix with the right error kind.

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use git2::{ErrorClass, ErrorCode};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Registers the transport for ssh remotes with libgit2, once per process.
///
/// Must run before any libgit2 network operation of this process (the git channel calls it from its
/// one-time initialisation, next to the HTTP transport's registration).
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // libgit2 looks scp-like remotes up under "ssh://", so that registration covers them too.
        for scheme in ["ssh", "ssh+git", "git+ssh"] {
            // SAFETY: as for the HTTP transport (see `http::register`): this runs inside `Once`, before any
            // libgit2 work of the git channel, and nothing else in handoff uses libgit2, so no transport is
            // being created concurrently. The factory is `Send + Sync + 'static` and never unregistered.
            let r = unsafe {
                git2::transport::register(scheme, |remote| Transport::smart(remote, false, SshTransport::new()))
            };
            if let Err(e) = r {
                tracing::warn!(scheme, error = %e.message(), "registering the git ssh transport failed");
            }
        }
    });
}

/// What ssh printed when it (or the remote git command) failed, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshFailure {
    /// ssh's exit code (255: ssh itself failed: connection, authentication, host key).
    pub code: Option<i32>,
    /// ssh's (and the remote command's) standard error, at most [`STDERR_KEPT`] bytes.
    pub stderr: String,
    /// The host as written in the remote (an alias from the user's ssh config, or a name).
    pub host: String,
}

thread_local! {
    /// The last failure of an ssh connection made on this thread (libgit2 runs transports on the thread
    /// that called it), for the channel's error message.
    static FAILURE: RefCell<Option<SshFailure>> = const { RefCell::new(None) };
}

/// The failure of the last ssh connection made on this thread, if it failed (cleared by reading it).
pub(crate) fn take_failure() -> Option<SshFailure> {
    FAILURE.with(|f| f.borrow_mut().take())
}

/// How much of ssh's standard error is kept.
const STDERR_KEPT: usize = 16 * 1024;

/// An ssh remote, split the way git splits it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SshRemote {
    /// Login name, when the URL names one (else ssh's config or the local user decides).
    pub user: Option<String>,
    /// Host name or alias (brackets of an IPv6 literal removed).
    pub host: String,
    /// Port, when the URL names one.
    pub port: Option<u16>,
    /// The repository path as the remote command gets it (`/srv/x.git`, `~/x.git`, `x.git`).
    pub path: String,
}

fn bad_url(why: String) -> git2::Error {
    git2::Error::new(ErrorCode::GenericError, ErrorClass::Ssh, why)
}

impl SshRemote {
    /// Parses `ssh://[user@]host[:port]/path` (also `ssh+git://`, `git+ssh://`) and `[user@]host:path`.
    pub(crate) fn parse(url: &str) -> Result<Self, git2::Error> {
        let scheme_rest = ["ssh://", "ssh+git://", "git+ssh://"].iter().find_map(|p| url.strip_prefix(p));
        let remote = match scheme_rest {
            Some(rest) => {
                let slash = rest.find('/').ok_or_else(|| bad_url(format!("{url}: no repository path")))?;
                let (authority, path) = rest.split_at(slash);
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(decode(u)), h),
                    None => (None, authority),
                };
                let (host, port) = split_port(hostport).ok_or_else(|| bad_url(format!("{url}: bad port")))?;
                let path = decode(path);
                // as git: `/~/x` and `/~user/x` are relative to a home directory
                let path = match path.strip_prefix('/') {
                    Some(p) if p.starts_with('~') => p.to_string(),
                    _ => path,
                };
                SshRemote { user, host, port, path }
            }
            None => {
                if url.contains("://") {
                    return Err(bad_url(format!("{url}: not an ssh URL")));
                }
                // scp-like: the first ':' outside brackets ends the host
                let (authority, path) = if let Some(open) = url.find('[') {
                    let close = url[open..].find("]:").ok_or_else(|| bad_url(format!("{url}: unclosed '['")))?;
                    (&url[..open + close + 1], &url[open + close + 2..])
                } else {
                    url.split_once(':').ok_or_else(|| bad_url(format!("{url}: not an ssh remote")))?
                };
                let (user, host) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u.to_string()), h),
                    None => (None, authority),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
                SshRemote { user, host, port: None, path: path.to_string() }
            }
        };
        remote.check(url)?;
        Ok(remote)
    }

    /// Refuses what would be read as an ssh option or is no host at all (git refuses the same).
    fn check(&self, url: &str) -> Result<(), git2::Error> {
        if self.host.is_empty() {
            return Err(bad_url(format!("{url}: no host")));
        }
        if self.host.starts_with('-') || self.user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(bad_url(format!(
                "{url}: a host or user starting with '-' would be read by ssh as an option; refused"
            )));
        }
        let control = |s: &str| s.chars().any(char::is_control);
        if control(&self.host) || self.user.as_deref().is_some_and(control) || control(&self.path) {
            return Err(bad_url("the ssh remote holds control characters; refused".into()));
        }
        if self.path.is_empty() {
            return Err(bad_url(format!("{url}: no repository path")));
        }
        Ok(())
    }

    /// `user@host` or `host`, as ssh takes it.
    pub(crate) fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The command the remote runs: `git-upload-pack '/path'`, quoted as git quotes it.
    pub(crate) fn remote_command(&self, service: &str) -> String {
        format!("{service} {}", sq_quote(&self.path))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host without brackets, port).
fn split_port(hostport: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some(p.parse().ok()?),
            _ => None,
        };
        return Some((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, "")) => Some((h.to_string(), None)),
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((hostport.to_string(), None)),
    }
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&super::http::percent_decode(s)).into_owned()
}

/// Single-quotes `s` for a POSIX shell as git's `sq_quote_buf` does (`'` and `!` leave the quotes).
fn sq_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '!' => out.push_str("'\\!'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The program that reaches the server, as git picks it: `GIT_SSH_COMMAND`, `core.sshCommand`,
/// `GIT_SSH`, else `ssh`. Returns the command (without the destination) and whether it is OpenSSH's ssh.
fn ssh_program(repo: Option<&std::path::Path>) -> (Command, bool) {
    let configured = std::env::var("GIT_SSH_COMMAND").ok().filter(|c| !c.trim().is_empty()).or_else(|| {
        repo.and_then(|p| git2::Repository::open(p).ok())
            .and_then(|r| r.config().ok())
            .or_else(|| git2::Config::open_default().ok())
            .and_then(|c| c.get_string("core.sshCommand").ok())
            .filter(|c| !c.trim().is_empty())
    });
    if let Some(line) = configured {
        let first = line.split_whitespace().next().unwrap_or("ssh").to_string();
        let is_ssh = is_openssh(&first);
        // as git: the command line goes through the shell, with the arguments appended
        #[cfg(unix)]
        let cmd = {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{line} \"$@\"")).arg(&line);
            c
        };
        // no POSIX shell to hand: the words of the command line, split on white space
        #[cfg(not(unix))]
        let cmd = {
            let mut words = line.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or("ssh"));
            c.args(words);
            c
        };
        return (cmd, is_ssh);
    }
    if let Some(program) = std::env::var_os("GIT_SSH").filter(|p| !p.is_empty()) {
        let is_ssh = is_openssh(&program.to_string_lossy());
        return (Command::new(program), is_ssh);
    }
    (Command::new(crate::ssh::program("ssh")), true)
}

/// Whether a program name is OpenSSH's client (`ssh`, `/usr/bin/ssh`, `ssh.exe`).
fn is_openssh(program: &str) -> bool {
    let name = program.rsplit(['/', '\\']).next().unwrap_or(program);
    let name = name.strip_suffix(".exe").unwrap_or(name);
    name.eq_ignore_ascii_case("ssh")
}

/// The full ssh command for one connection to `remote` running `service`.
pub(crate) fn command(remote: &SshRemote, service: &str, repo: Option<&std::path::Path>) -> Command {
    with_program(ssh_program(repo), remote, service)
}

/// The command for one connection, given the program (and whether it is OpenSSH's ssh).
fn with_program((mut cmd, is_ssh): (Command, bool), remote: &SshRemote, service: &str) -> Command {
    if is_ssh {
        // never a prompt (handoff runs from hooks, nobody answers); a dead host fails within 15 s, a link
        // that dies mid-transfer within about a minute (libgit2's own timeouts do not cover a pipe)
        cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15"]);
    }
    if let Some(port) = remote.port {
        cmd.arg("-p").arg(port.to_string());
    }
    cmd.arg(remote.destination()).arg(remote.remote_command(service));
    cmd
}

/// One connection of libgit2 to an ssh remote (stateful: the stream of the ref advertisement is the one
/// the negotiation and the pack use).
struct SshTransport {
    repo: Option<PathBuf>,
}

impl SshTransport {
    fn new() -> Self {
        Self { repo: super::http::repo_git_dir() }
    }
}

impl SmartSubtransport for SshTransport {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let service = match action {
            Service::UploadPackLs | Service::UploadPack => "git-upload-pack",
            Service::ReceivePackLs | Service::ReceivePack => "git-receive-pack",
        };
        if let Some(started) = super::preconnect::take(url, service) {
            tracing::debug!(service, "using the ssh connection started ahead");
            return Ok(Box::new(started));
        }
        Ok(Box::new(connect(url, service, self.repo.as_deref())?))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// Starts `ssh` to the remote at `url` running `service` (`git-upload-pack` or `git-receive-pack`), with
/// its standard error kept for the error message.
pub(crate) fn connect(url: &str, service: &str, repo: Option<&std::path::Path>) -> Result<SshStream, git2::Error> {
    let remote = SshRemote::parse(url)?;
    let mut cmd = command(&remote, service, repo);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    tracing::debug!(host = %remote.host, service, "starting ssh");
    let mut child = cmd.spawn().map_err(|e| {
        git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Ssh,
            format!(
                "the `ssh` program could not be started ({e}); install the OpenSSH client{}",
                if cfg!(windows) { " (Settings → Optional features → OpenSSH Client)" } else { "" }
            ),
        )
    })?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = child.stderr.take().map(|mut err| {
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        })
    });
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    Ok(SshStream { child: Some(child), stdin, stdout, stderr, reader, host: remote.host, done: false })
}

/// The running ssh: libgit2 writes to its stdin and reads its stdout.
pub(crate) struct SshStream {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    host: String,
    done: bool,
}

impl SshStream {
    /// Waits for ssh to exit (bounded: then it is killed), and for its standard error to be read.
    fn finish(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.done = true;
        drop(self.stdin.take());
        let status = self.child.as_mut().and_then(|c| wait_bounded(c, grace, Duration::from_micros(250)));
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// The end of ssh's output: a failure when ssh exited non-zero (its words kept for the channel).
    fn at_eof(&mut self) -> io::Result<usize> {
        let status = self.finish(Duration::from_secs(10));
        match status {
            Some(st) if st.success() => Ok(0),
            st => {
                let failure =
                    SshFailure { code: st.and_then(|s| s.code()), stderr: self.stderr_text(), host: self.host.clone() };
                let last = failure.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                FAILURE.with(|f| *f.borrow_mut() = Some(failure));
                Err(io::Error::other(format!(
                    "ssh to {} failed ({}){}",
                    self.host,
                    st.map(|s| s.to_string()).unwrap_or_else(|| "no exit status".into()),
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                )))
            }
        }
    }
}

impl Read for SshStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(out) = self.stdout.as_mut() else {
            return Ok(0);
        };
        let n = out.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.stdout = None;
            return self.at_eof();
        }
        Ok(n)
    }
}

impl Write for SshStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.stdin.as_mut() {
            Some(w) => w.write(data).map_err(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    io::Error::other(format!(
                        "ssh to {} closed the connection: {}",
                        self.host,
                        self.stderr_text().trim()
                    ))
                } else {
                    e
                }
            }),
            None => Err(io::Error::other("git ssh transport: write after the connection ended")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl Drop for SshStream {
    fn drop(&mut self) {
        if !self.done {
            // libgit2 lets go of the stream once it has read the server's answer: the remote git exits as its
            // input ends and ssh a few milliseconds later. Nothing is waiting for that, so a thread reaps
            // ssh (and kills one that hangs); should handoff end first, ssh still ends on its own.
            self.done = true;
            drop(self.stdout.take());
            drop(self.stdin.take());
            let (child, reader) = (self.child.take(), self.reader.take());
            std::thread::spawn(move || {
                if let Some(mut c) = child {
                    // nobody waits for this one: looking every 10 ms keeps the thread off the CPU while the
                    // send records its delivery
                    wait_bounded(&mut c, Duration::from_secs(5), Duration::from_millis(10));
                }
                if let Some(r) = reader {
                    let _ = r.join();
                }
            });
        }
    }
}

/// Waits up to `grace` for `child` to exit, then kills it; looks every `nap` for the first 20 ms (ssh
/// usually exits within a millisecond or two of its input ending), then every 20 ms.
fn wait_bounded(child: &mut Child, grace: Duration, nap: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if start.elapsed() < grace => {
                std::thread::sleep(if start.elapsed() < Duration::from_millis(20) {
                    nap
                } else {
                    Duration::from_millis(20)
                });
            }
            _ => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(url: &str) -> SshRemote {
        SshRemote::parse(url).unwrap()
    }

    #[test]
    fn remotes_split_as_git_splits_them() {
        let r = p("ssh://git@example.com:2222/srv/h.git");
        assert_eq!(
            r,
            SshRemote {
                user: Some("git".into()),
                host: "example.com".into(),
                port: Some(2222),
                path: "/srv/h.git".into()
            }
        );
        assert_eq!(p("ssh://h/~/x.git").path, "~/x.git");
        assert_eq!(p("ssh://h/~bob/x.git").path, "~bob/x.git");
        assert_eq!(p("git+ssh://h/a%20b.git").path, "/a b.git");
        assert_eq!(p("ssh://[::1]:22/x").host, "::1");
        let r = p("gitsrv:/srv/repos/h.git");
        assert_eq!((r.user, r.host.as_str(), r.port, r.path.as_str()), (None, "gitsrv", None, "/srv/repos/h.git"));
        let r = p("git@github.com:you/h.git");
        assert_eq!((r.destination(), r.path.as_str()), ("git@github.com".into(), "you/h.git"));
        assert_eq!(p("[::1]:x.git").host, "::1");
    }

    #[test]
    fn hostile_remotes_are_refused_before_ssh_runs() {
        for url in [
            "ssh://-oProxyCommand=touch%20x/x.git",
            "-oProxyCommand=touch x:x.git",
            "ssh://-l@h/x",
            "ssh://h:notaport/x",
            "ssh://h",
            "ssh:///x",
            "h:",
            "h:x\ny",
        ] {
            assert!(SshRemote::parse(url).is_err(), "{url:?} must be refused");
        }
    }

    #[test]
    fn the_path_is_single_quoted_for_the_remote_shell() {
        let r = p("h:/srv/it's $(touch x)!.git");
        assert_eq!(r.remote_command("git-upload-pack"), r"git-upload-pack '/srv/it'\''s $(touch x)'\!'.git'");
        assert!(is_openssh("ssh") && is_openssh("/usr/bin/ssh") && is_openssh(r"C:\Windows\System32\OpenSSH\ssh.exe"));
        assert!(!is_openssh("plink") && !is_openssh("/usr/bin/sshpass"));
    }

    #[test]
    fn the_command_is_the_one_git_runs() {
        let args = |cmd: Command| cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let remote = p("ssh://me@h:2200/x.git");
        let cmd = with_program((Command::new("ssh"), true), &remote, "git-receive-pack");
        assert_eq!(
            args(cmd),
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "ServerAliveInterval=15",
                "-p",
                "2200",
                "me@h",
                "git-receive-pack '/x.git'"
            ]
        );
        // another program (plink, a wrapper) gets only what git gives it
        let cmd = with_program((Command::new("plink"), false), &p("h:x.git"), "git-upload-pack");
        assert_eq!(args(cmd), ["h", "git-upload-pack 'x.git'"]);
    }
}
