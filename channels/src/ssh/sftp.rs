//! An SFTP session over the system `ssh` (a multiplexed master, so the user's agent, keys, `~/.ssh/config`
//! and known_hosts apply exactly as for `ssh` itself), and the transfers both the droplet and the drive's
//! `sftp` remotes use. No remote shell command is ever run: every operation is an SFTP request carrying the
//! path as data.
//!
//! Throughput comes from pipelining: SFTP answers each request separately, so one request at a time waits a
//! round trip per 20-255 KiB. Uploads keep up to [`WRITE_IN_FLIGHT`] bytes of write requests outstanding,
//! each handed to the client without copying (its buffered writes serialise the data byte by byte, which
//! cost more CPU than the rest of the upload), and hash on the way. Downloads are in [`super::download`].

// Each of the two users needs only part of this (the droplet lists, the drive accepts new host keys).
#![cfg_attr(not(all(feature = "droplet", feature = "drive")), allow(dead_code))]

use super::errors;
use super::reader::ReadAhead;
use crate::{ChannelError, ProgressBar};
use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openssh::{Child, ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use openssh_sftp_client::error::{Error as SftpError, SftpErrorKind};
use openssh_sftp_client::file::File;
use openssh_sftp_client::{Sftp, SftpOptions};
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncSeek;

/// Chunk read from the local file per step (also the progress granularity of uploads).
const CHUNK: usize = 256 * 1024;
/// Bytes of write requests outstanding at most during an upload (the client copies them into its buffer).
pub const WRITE_IN_FLIGHT: usize = 8 << 20;
/// Read requests outstanding at most, whatever their size.
pub(super) const MAX_READS: usize = 512;

/// How the server's host key is checked. Never off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeys {
    /// The key must already be in known_hosts (`StrictHostKeyChecking=yes`).
    Strict,
    /// A host never seen is added on first contact; a changed key is refused (`accept-new`).
    AcceptNew,
    /// The key must be in this known_hosts file (strict).
    File(PathBuf),
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// How errors name the peer: `droplet host h`, `sftp remote box (me@h:2222)`.
    pub label: String,
    /// `user@host`, an alias from `~/.ssh/config`, or `ssh://user@host:port`.
    pub destination: String,
    /// Port, when not in `destination` or the ssh config.
    pub port: Option<u16>,
    /// Login name, when not in `destination` or the ssh config.
    pub user: Option<String>,
    /// Private key file (`ssh -i`).
    pub key_file: Option<PathBuf>,
    /// Host-key checking.
    pub host_keys: HostKeys,
    /// An ssh configuration to use instead of the user's `~/.ssh/config` and the system's (`ssh -F`), for
    /// peers whose connection settings come from elsewhere (an rclone.conf).
    pub ssh_config: Option<String>,
}

impl Target {
    /// The `ssh` command line that reaches the same peer, quoted in errors whose fix is to run it once.
    pub fn ssh_command(&self) -> String {
        let mut c = "ssh".to_string();
        if let Some(p) = self.port {
            c.push_str(&format!(" -p {p}"));
        }
        if let Some(k) = &self.key_file {
            c.push_str(&format!(" -i {}", k.display()));
        }
        if let HostKeys::File(f) = &self.host_keys {
            c.push_str(&format!(" -o UserKnownHostsFile={}", f.display()));
        }
        match &self.user {
            Some(u) => c.push_str(&format!(" {u}@{}", self.destination)),
            None => c.push_str(&format!(" {}", self.destination)),
        }
        c
    }
}

/// A private ssh configuration file, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn write(text: &str) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!("handoff-ssh-{}.conf", uuid::Uuid::new_v4().simple()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(text.as_bytes())?;
        Ok(Self(path))
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One entry of a remote directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// File name (one component).
    pub name: String,
    /// Regular file (not a directory, link or device).
    pub is_file: bool,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, when the server says.
    pub modified: Option<SystemTime>,
}

/// An SFTP session.
pub struct SftpSession {
    label: String,
    target: Target,
    sftp: Sftp,
    /// The remote `sftp` subsystem process (reaped on close).
    child: std::sync::Mutex<Option<Child<Arc<Session>>>>,
    /// The multiplexed ssh master; dropping the last reference shuts it down.
    session: Arc<Session>,
}

/// A further SFTP channel of an [`SftpSession`] (see [`SftpSession::open_channel`]).
pub(super) struct SftpChannel {
    /// The channel's SFTP client.
    pub sftp: Sftp,
    child: Child<Arc<Session>>,
}

impl SftpChannel {
    /// Closes the channel (the session stays).
    pub async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Maps an openssh error from connecting to `t`.
fn from_openssh(t: &Target, e: openssh::Error) -> ChannelError {
    let label = &t.label;
    match e {
        openssh::Error::Connect(io) if io.kind() == std::io::ErrorKind::NotFound => {
            ChannelError::permanent(format!("{label}: the `ssh` program was not found; install the OpenSSH client"))
        }
        openssh::Error::Connect(io) => errors::classify_as(label, &t.ssh_command(), &io.to_string()),
        openssh::Error::Master(io) => ChannelError::permanent(format!(
            "{label}: cannot create the ssh control socket directory ({io}); check $XDG_STATE_HOME"
        )),
        other => ChannelError::transient(format!("{label}: the ssh connection failed ({other})")),
    }
}

/// Maps an SFTP error during `what` on `path`.
pub(super) fn from_sftp(label: &str, what: &str, path: &str, e: SftpError) -> ChannelError {
    match e {
        SftpError::SftpError(kind, msg) => {
            let cause = match kind {
                SftpErrorKind::NoSuchFile => "no such file or directory".to_string(),
                SftpErrorKind::PermDenied => "permission denied".to_string(),
                _ => format!("{kind:?}: {msg}"),
            };
            ChannelError::permanent(format!("{label}: {what} {path:?} failed: {cause}"))
        }
        SftpError::UnsupportedSftpProtocol { .. } | SftpError::SftpServerFailure(_) => {
            ChannelError::permanent(format!("{label}: the server does not offer a usable SFTP subsystem ({e})"))
        }
        other => ChannelError::transient(format!(
            "{label}: the connection dropped during {what} {path:?} ({other}); it will be retried"
        )),
    }
}

fn is_missing(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(SftpErrorKind::NoSuchFile, _))
}

/// Client options: requests are flushed to ssh in batches of up to `MAX_READS`, and answers are read from
/// ssh in large buffers (the default 1 KiB costs several system calls per answer).
fn options() -> SftpOptions {
    SftpOptions::new()
        .max_pending_requests(NonZeroU16::new(MAX_READS as u16).expect("non-zero"))
        .responses_buffer_size(NonZeroUsize::new(256 << 10).expect("non-zero"))
}

impl SftpSession {
    /// Connects to `t` and starts the SFTP subsystem.
    pub async fn connect(t: &Target) -> Result<Self, ChannelError> {
        let mut b = SessionBuilder::default();
        let check = match &t.host_keys {
            HostKeys::Strict => KnownHosts::Strict,
            HostKeys::AcceptNew => KnownHosts::Add,
            HostKeys::File(f) => {
                b.user_known_hosts_file(f);
                KnownHosts::Strict
            }
        };
        b.known_hosts_check(check)
            .connect_timeout(Duration::from_secs(15))
            .server_alive_interval(Duration::from_secs(10))
            // A master left behind by a crash goes away by itself once idle.
            .control_persist(ControlPersist::IdleFor(NonZeroUsize::new(60).expect("non-zero")));
        if let Some(p) = t.port {
            b.port(p);
        }
        if let Some(u) = &t.user {
            b.user(u.clone());
        }
        if let Some(k) = &t.key_file {
            b.keyfile(k);
        }
        // ssh reads its configuration once, when the master starts: the file is only needed until then.
        let config = match &t.ssh_config {
            Some(text) => Some(ConfigFile::write(text).map_err(|e| {
                ChannelError::permanent(format!("{}: cannot write an ssh configuration file ({e})", t.label))
            })?),
            None => None,
        };
        if let Some(c) = &config {
            b.config_file(&c.0);
        }
        let connected = b.connect_mux(&t.destination).await;
        drop(config);
        let session = Arc::new(connected.map_err(|e| from_openssh(t, e))?);
        let (sftp, child) = start_sftp(&session, t).await?;
        Ok(Self { label: t.label.clone(), target: t.clone(), sftp, child: std::sync::Mutex::new(Some(child)), session })
    }

    /// How errors name the peer.
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// The SFTP client of the session's first channel.
    pub(super) fn sftp(&self) -> &Sftp {
        &self.sftp
    }

    /// Opens another SFTP channel over the same ssh master: no new login, its own requests and answers.
    pub(super) async fn open_channel(&self) -> Result<SftpChannel, ChannelError> {
        let (sftp, child) = start_sftp(&self.session, &self.target).await?;
        Ok(SftpChannel { sftp, child })
    }

    pub(super) fn err(&self, what: &str, path: &str) -> impl FnOnce(SftpError) -> ChannelError + '_ {
        let (what, path) = (what.to_string(), path.to_string());
        move |e| from_sftp(&self.label, &what, &path, e)
    }

    /// Size of the file at `path`, `None` when it does not exist.
    pub async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError> {
        match self.sftp.fs().metadata(path).await {
            Ok(m) => Ok(Some(m.len().unwrap_or(0))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.err("checking", path)(e)),
        }
    }

    /// Makes sure `dir` exists (creating missing components, like `mkdir -p`) and is a directory; `fix` is
    /// said when it exists as something else.
    pub async fn ensure_dir(&self, dir: &str, fix: &str) -> Result<(), ChannelError> {
        let mut fs = self.sftp.fs();
        if let Ok(m) = fs.metadata(dir).await {
            return match m.file_type() {
                Some(t) if t.is_dir() => Ok(()),
                _ => Err(ChannelError::permanent(format!(
                    "{}: {dir:?} exists but is not a directory; {fix}",
                    self.label
                ))),
            };
        }
        let mut prefix = String::new();
        for (i, part) in dir.split('/').enumerate() {
            if i > 0 || dir.starts_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            if part.is_empty() || part == "." || fs.metadata(&prefix).await.is_ok() {
                continue;
            }
            if let Err(e) = fs.create_dir(&prefix).await {
                // Another sender may have created it meanwhile.
                if fs.metadata(&prefix).await.is_err() {
                    return Err(self.err("creating directory", &prefix)(e));
                }
            }
        }
        Ok(())
    }

    /// Streams the local file `src` to `dest` (created or truncated), synced on the server when it offers
    /// fsync; returns bytes sent and their sha256 (hex).
    pub async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        let mut input = ReadAhead::open(src, CHUNK)
            .map_err(|e| ChannelError::permanent(format!("cannot read {}: {e}", src.display())))?;
        let mut file = self
            .sftp
            .options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dest)
            .await
            .map_err(self.err("creating", dest))?;
        // Each piece is its own write request at its own offset, handed over without copying; up to
        // WRITE_IN_FLIGHT bytes wait for their answers at once.
        let mut writes = FuturesUnordered::new();
        let (mut offset, mut in_flight) = (0u64, 0usize);
        let mut step: Option<usize> = None;
        while let Some(chunk) = input.next().await {
            let mut rest =
                Bytes::from(chunk.map_err(|e| ChannelError::permanent(format!("reading {}: {e}", src.display())))?);
            let step = match step {
                Some(s) => s,
                None => {
                    // The first answer tells the most the server takes per request: the size of all others.
                    let n = write_at(file.clone(), 0, rest.clone(), true).await.map_err(self.err("writing", dest))?;
                    rest.advance(n);
                    offset = n as u64;
                    bar.advance(n as u64);
                    *step.insert(n.max(1))
                }
            };
            // Equal pieces of at most `step`: a 256 KiB chunk against OpenSSH's 255 KiB limit makes two
            // 128 KiB requests, not 255 KiB and 1 KiB.
            let size = rest.len().div_ceil(rest.len().div_ceil(step).max(1)).max(1);
            while !rest.is_empty() {
                let piece = rest.split_to(size.min(rest.len()));
                while in_flight + piece.len() > WRITE_IN_FLIGHT
                    && let Option::<Result<usize, SftpError>>::Some(done) = writes.next().await
                {
                    let done = done.map_err(self.err("writing", dest))?;
                    in_flight -= done;
                    bar.advance(done as u64);
                }
                in_flight += piece.len();
                let len = piece.len() as u64;
                writes.push(write_at(file.clone(), offset, piece, false));
                offset += len;
            }
        }
        while let Some(done) = writes.next().await {
            bar.advance(done.map_err(self.err("writing", dest))? as u64);
        }
        if self.sftp.support_fsync() {
            file.sync_all().await.map_err(self.err("syncing", dest))?;
        }
        file.close().await.map_err(self.err("closing", dest))?;
        input.finish().await.map_err(|e| ChannelError::permanent(format!("reading {}: {e}", src.display())))
    }

    /// Creates an empty file at `path` (or empties it).
    pub async fn write_empty(&self, path: &str) -> Result<(), ChannelError> {
        let file = self
            .sftp
            .options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
            .map_err(self.err("creating", path))?;
        file.close().await.map_err(self.err("closing", path))
    }

    /// Renames `from` to `to`, replacing `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError> {
        self.sftp.fs().rename(from, to).await.map_err(self.err("renaming", from))
    }

    /// Removes a file; a missing file is not an error.
    pub async fn remove(&self, path: &str) -> Result<(), ChannelError> {
        match self.sftp.fs().remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.err("removing", path)(e)),
        }
    }

    /// Lists `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<Entry>, ChannelError> {
        let mut fs = self.sftp.fs();
        let d = fs.open_dir(dir).await.map_err(self.err("listing", dir))?;
        let mut entries = Vec::new();
        let mut stream = Box::pin(d.read_dir());
        while let Some(item) = stream.next().await {
            let e = item.map_err(self.err("listing", dir))?;
            let meta = e.metadata();
            entries.push(Entry {
                name: e.filename().to_string_lossy().into_owned(),
                is_file: e.file_type().is_some_and(|t| t.is_file()),
                size: meta.len().unwrap_or(0),
                modified: meta.modified().map(|t| t.as_system_time()),
            });
        }
        Ok(entries)
    }

    /// Ends the session.
    pub async fn close(self) {
        let Self { sftp, child, session, .. } = self;
        let _ = sftp.close().await;
        let child = child.into_inner().ok().flatten();
        if let Some(child) = child {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        drop(session);
    }
}

/// Starts the `sftp` subsystem on a new channel of `session`. The session stays ours rather than the SFTP
/// client's, so closing never depends on the client's background tasks having let go of it.
async fn start_sftp(session: &Arc<Session>, t: &Target) -> Result<(Sftp, Child<Arc<Session>>), ChannelError> {
    let mut child = Session::to_subsystem(session.clone(), "sftp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .await
        .map_err(|e| from_openssh(t, e))?;
    let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
        return Err(ChannelError::permanent(format!("{}: the SFTP subsystem gave no pipes", t.label)));
    };
    widen_pipe(&stdin);
    widen_pipe(&stdout);
    let sftp = Sftp::new(stdin, stdout, options()).await.map_err(|e| match e {
        SftpError::RemoteChildSpawnError(e) => from_openssh(t, e),
        e => from_sftp(&t.label, "starting", "sftp", e),
    })?;
    Ok((sftp, child))
}

/// Pipe capacity asked for between handoff and the ssh master: with Linux's default 64 KiB every 64 KiB of
/// data costs a wake-up on both sides, which limits throughput more than the link or the ciphers.
#[cfg(target_os = "linux")]
const PIPE_SIZE: libc::c_int = 1 << 20;

/// Enlarges a pipe to [`PIPE_SIZE`] where the system allows (best effort: a smaller pipe only costs speed).
#[cfg(target_os = "linux")]
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a file descriptor we own for the duration of the call; no memory is passed.
    let _ = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe<T>(_pipe: &T) {}

/// Writes `data` at `offset`, asking again for what the server did not take; with `once`, sends one request
/// only. Returns the bytes written.
async fn write_at(mut file: File, offset: u64, mut data: Bytes, once: bool) -> Result<usize, SftpError> {
    let mut done = 0;
    while !data.is_empty() {
        Pin::new(&mut file).start_seek(std::io::SeekFrom::Start(offset + done as u64))?;
        let n = file.write_zero_copy(std::slice::from_ref(&data)).await?;
        data.advance(n);
        done += n;
        if once || n == 0 {
            break;
        }
    }
    Ok(done)
}
