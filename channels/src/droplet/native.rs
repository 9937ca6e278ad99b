//! The Unix transport: the system `ssh` as a multiplexed master (so the user's agent, keys, `~/.ssh/config`
//! and known_hosts apply exactly as for `ssh` itself), and SFTP over it. No remote shell command is ever
//! run: every operation is an SFTP request carrying the path as data.

use super::reader::HashingReader;
use super::ssh_errors;
use super::{Remote, RemoteEntry};
use crate::{ChannelError, ProgressBar};
use openssh::{Child, ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use openssh_sftp_client::error::{Error as SftpError, SftpErrorKind};
use openssh_sftp_client::file::TokioCompatFile;
use openssh_sftp_client::{Sftp, SftpOptions};
use sha2::{Digest, Sha256};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Chunk read from the local file per step (also the progress granularity).
const CHUNK: usize = 256 * 1024;

/// An SFTP session to the droplet host.
pub struct NativeRemote {
    host: String,
    sftp: Sftp,
    /// The remote `sftp` subsystem process (reaped on close).
    child: std::sync::Mutex<Option<Child<Arc<Session>>>>,
    /// The multiplexed ssh master; dropping the last reference shuts it down.
    session: Arc<Session>,
}

/// Maps an openssh error from connecting to `host`.
fn from_openssh(host: &str, e: openssh::Error) -> ChannelError {
    match e {
        openssh::Error::Connect(io) if io.kind() == std::io::ErrorKind::NotFound => ChannelError::permanent(format!(
            "droplet host {host}: the `ssh` program was not found; install the OpenSSH client"
        )),
        openssh::Error::Connect(io) => ssh_errors::classify(host, &io.to_string()),
        openssh::Error::Master(io) => ChannelError::permanent(format!(
            "droplet host {host}: cannot create the ssh control socket directory ({io}); check $XDG_STATE_HOME"
        )),
        other => ChannelError::transient(format!("droplet host {host}: the ssh connection failed ({other})")),
    }
}

/// Maps an SFTP error during `what` on `path`.
fn from_sftp(host: &str, what: &str, path: &str, e: SftpError) -> ChannelError {
    match e {
        SftpError::SftpError(kind, msg) => {
            let cause = match kind {
                SftpErrorKind::NoSuchFile => "no such file or directory".to_string(),
                SftpErrorKind::PermDenied => "permission denied".to_string(),
                _ => format!("{kind:?}: {msg}"),
            };
            ChannelError::permanent(format!("droplet host {host}: {what} {path:?} failed: {cause}"))
        }
        SftpError::RemoteChildSpawnError(e) => from_openssh(host, e),
        SftpError::UnsupportedSftpProtocol { .. } | SftpError::SftpServerFailure(_) => ChannelError::permanent(
            format!("droplet host {host}: the server does not offer a usable SFTP subsystem ({e})"),
        ),
        other => ChannelError::transient(format!(
            "droplet host {host}: the connection dropped during {what} {path:?} ({other}); it will be retried"
        )),
    }
}

fn is_missing(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(SftpErrorKind::NoSuchFile, _))
}

impl NativeRemote {
    /// Connects to `host` (`user@host`, an alias from `~/.ssh/config`, or `ssh://user@host:port`).
    pub async fn connect(host: &str) -> Result<Self, ChannelError> {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .connect_timeout(Duration::from_secs(15))
            .server_alive_interval(Duration::from_secs(10))
            // A master left behind by a crash goes away by itself once idle.
            .control_persist(ControlPersist::IdleFor(NonZeroUsize::new(60).expect("non-zero")));
        let session = Arc::new(b.connect_mux(host).await.map_err(|e| from_openssh(host, e))?);
        // The session stays ours rather than the SFTP client's, so closing never depends on the client's
        // background tasks having let go of it.
        let mut child = Session::to_subsystem(session.clone(), "sftp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| from_openssh(host, e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
            return Err(ChannelError::permanent(format!("droplet host {host}: the SFTP subsystem gave no pipes")));
        };
        let sftp =
            Sftp::new(stdin, stdout, SftpOptions::new()).await.map_err(|e| from_sftp(host, "starting", "sftp", e))?;
        Ok(Self { host: host.to_string(), sftp, child: std::sync::Mutex::new(Some(child)), session })
    }

    fn err(&self, what: &str, path: &str) -> impl FnOnce(SftpError) -> ChannelError + '_ {
        let (what, path) = (what.to_string(), path.to_string());
        move |e| from_sftp(&self.host, &what, &path, e)
    }
}

impl Remote for NativeRemote {
    async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError> {
        match self.sftp.fs().metadata(path).await {
            Ok(m) => Ok(Some(m.len().unwrap_or(0))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.err("checking", path)(e)),
        }
    }

    async fn ensure_dir(&self, dir: &str) -> Result<(), ChannelError> {
        let mut fs = self.sftp.fs();
        if let Ok(m) = fs.metadata(dir).await {
            return match m.file_type() {
                Some(t) if t.is_dir() => Ok(()),
                _ => Err(ChannelError::permanent(format!(
                    "droplet host {}: {dir:?} exists but is not a directory; fix [droplet] dir in the config",
                    self.host
                ))),
            };
        }
        // Create each missing component, like `mkdir -p`.
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

    async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        let mut input = HashingReader::open(src, CHUNK)
            .map_err(|e| ChannelError::permanent(format!("cannot read {}: {e}", src.display())))?;
        let file = self
            .sftp
            .options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dest)
            .await
            .map_err(self.err("creating", dest))?;
        let mut out = Box::pin(TokioCompatFile::new(file));
        while let Some(chunk) = input.next().await {
            let chunk = chunk.map_err(|e| ChannelError::permanent(format!("reading {}: {e}", src.display())))?;
            out.write_all(&chunk).await.map_err(|e| self.io_err("writing", dest, e))?;
            bar.advance(chunk.len() as u64);
            input.give_back(chunk);
        }
        out.flush().await.map_err(|e| self.io_err("writing", dest, e))?;
        if self.sftp.support_fsync() {
            out.as_mut().as_mut_file().sync_all().await.map_err(self.err("syncing", dest))?;
        }
        // The handle closes when the last reference goes (TokioCompatFile cannot be unpinned to close it).
        drop(out);
        input.finish().await.map_err(|e| ChannelError::permanent(format!("reading {}: {e}", src.display())))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError> {
        self.sftp.fs().rename(from, to).await.map_err(self.err("renaming", from))
    }

    async fn remove(&self, path: &str) -> Result<(), ChannelError> {
        match self.sftp.fs().remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.err("removing", path)(e)),
        }
    }

    async fn download(&self, src: &str, dest: &Path, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        let file = self.sftp.open(src).await.map_err(self.err("opening", src))?;
        let mut input = Box::pin(TokioCompatFile::new(file));
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| ChannelError::permanent(format!("cannot write {}: {e}", dest.display())))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = input.read(&mut buf).await.map_err(|e| self.io_err("reading", src, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).await?;
            total += n as u64;
            bar.advance(n as u64);
        }
        out.sync_all().await?;
        drop(input);
        Ok((total, hex::encode(hasher.finalize())))
    }

    async fn list(&self, dir: &str) -> Result<Vec<RemoteEntry>, ChannelError> {
        use futures::StreamExt;
        let mut fs = self.sftp.fs();
        let d = fs.open_dir(dir).await.map_err(self.err("listing", dir))?;
        let mut entries = Vec::new();
        let mut stream = Box::pin(d.read_dir());
        while let Some(item) = stream.next().await {
            let e = item.map_err(self.err("listing", dir))?;
            let meta = e.metadata();
            entries.push(RemoteEntry {
                name: e.filename().to_string_lossy().into_owned(),
                is_file: e.file_type().is_some_and(|t| t.is_file()),
                size: meta.len().unwrap_or(0),
                modified: meta.modified().map(|t| t.as_system_time()),
            });
        }
        Ok(entries)
    }

    async fn close(self) {
        let Self { sftp, child, session, .. } = self;
        let _ = sftp.close().await;
        let child = child.into_inner().ok().flatten();
        if let Some(child) = child {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        drop(session);
    }
}

impl NativeRemote {
    fn io_err(&self, what: &str, path: &str, e: std::io::Error) -> ChannelError {
        // An error the server reported travels inside the io::Error; it keeps its own meaning.
        if e.get_ref().is_some_and(|inner| inner.is::<SftpError>()) {
            let inner = e.into_inner().expect("checked").downcast::<SftpError>().expect("checked");
            return from_sftp(&self.host, what, path, *inner);
        }
        ChannelError::transient(format!(
            "droplet host {}: the connection dropped while {what} {path:?} ({e}); it will be retried",
            self.host
        ))
    }
}
