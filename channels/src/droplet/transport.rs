//! The operations the droplet channel needs from a remote directory, and the choice of implementation:
//! the `openssh` crate on Unix, the system `sftp` binary elsewhere (or on Unix with
//! `HANDOFF_DROPLET_TRANSPORT=sftp`).

use super::RemoteEntry;
use super::cli::CliRemote;
#[cfg(unix)]
use crate::ssh::sftp::{HostKeys, SftpSession, Target};
use crate::{ChannelError, ProgressBar};
use std::path::Path;

/// The ssh configuration the droplet's master connection reads: the user's own files exactly as ssh would
/// read them (the user's first, then the system's), and only after them, for what neither sets, AES-GCM
/// ahead of ssh's default cipher list. With AES instructions it costs both ends far less CPU than the
/// default chacha20-poly1305, which is what bounds a loopback or LAN transfer on a small machine. A
/// `Ciphers` line of the user's wins (ssh keeps the first value it reads).
#[cfg(unix)]
const SSH_CONFIG: &str = "# handoff: the droplet connection; the user's and the system's ssh configuration first\n\
    Include ~/.ssh/config\n\
    Include /etc/ssh/ssh_config\n\
    Host *\n\
    \x20   Ciphers ^aes128-gcm@openssh.com,aes256-gcm@openssh.com\n";

/// Environment variable choosing the transport (`native` or `sftp`).
pub const TRANSPORT_ENV: &str = "HANDOFF_DROPLET_TRANSPORT";

/// What the channel does on the server. Paths are remote paths (already joined with the directory).
pub(crate) trait Remote {
    /// Size of the file at `path`, `None` when it does not exist.
    async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError>;
    /// Makes sure `dir` exists (creating missing components) and is a directory.
    async fn ensure_dir(&self, dir: &str) -> Result<(), ChannelError>;
    /// Streams the local file `src` to `dest` (created or truncated); returns bytes sent and their sha256.
    async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError>;
    /// Renames `from` to `to`, replacing `to`.
    async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError>;
    /// Removes a file; a missing file is not an error.
    async fn remove(&self, path: &str) -> Result<(), ChannelError>;
    /// Streams `src` into the local file `dest`; returns bytes received and their sha256.
    async fn download(
        &self,
        src: &str,
        size: u64,
        dest: &Path,
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError>;
    /// Lists `dir`.
    async fn list(&self, dir: &str) -> Result<Vec<RemoteEntry>, ChannelError>;
    /// Ends the session.
    async fn close(self);
}

/// The transport in use for one connection.
pub(crate) enum Transport {
    /// openssh + openssh-sftp-client.
    #[cfg(unix)]
    Native(Box<SftpSession>),
    /// The system `sftp` binary in batch mode.
    Cli(CliRemote),
}

/// The droplet's operations on the shared SFTP session.
#[cfg(unix)]
impl Remote for Box<SftpSession> {
    async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError> {
        SftpSession::size_of(self, path).await
    }
    async fn ensure_dir(&self, dir: &str) -> Result<(), ChannelError> {
        SftpSession::ensure_dir(self, dir, "fix [droplet] dir in the config").await
    }
    async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        SftpSession::upload(self, src, dest, bar).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError> {
        SftpSession::rename(self, from, to).await
    }
    async fn remove(&self, path: &str) -> Result<(), ChannelError> {
        SftpSession::remove(self, path).await
    }
    async fn download(
        &self,
        src: &str,
        size: u64,
        dest: &Path,
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError> {
        SftpSession::download(self, src, size, dest, bar).await
    }
    async fn list(&self, dir: &str) -> Result<Vec<RemoteEntry>, ChannelError> {
        let entries = SftpSession::list(self, dir).await?;
        Ok(entries
            .into_iter()
            .map(|e| RemoteEntry { name: e.name, is_file: e.is_file, size: e.size, modified: e.modified })
            .collect())
    }
    async fn close(self) {
        SftpSession::close(*self).await
    }
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            #[cfg(unix)]
            Transport::Native($r) => $e,
            Transport::Cli($r) => $e,
        }
    };
}

impl Transport {
    /// Connects to `host` with the transport this platform (and `HANDOFF_DROPLET_TRANSPORT`) selects.
    pub async fn connect(host: &str) -> Result<Self, ChannelError> {
        let choice = std::env::var(TRANSPORT_ENV).unwrap_or_default();
        match choice.as_str() {
            "sftp" => Ok(Transport::Cli(CliRemote::connect(host).await?)),
            #[cfg(unix)]
            "" | "native" => {
                let target = Target {
                    label: format!("droplet host {host}"),
                    destination: host.to_string(),
                    port: None,
                    user: None,
                    key_file: None,
                    host_keys: HostKeys::Strict,
                    ssh_config: Some(SSH_CONFIG.to_string()),
                };
                Ok(Transport::Native(Box::new(SftpSession::connect(&target).await?)))
            }
            #[cfg(not(unix))]
            "" => Ok(Transport::Cli(CliRemote::connect(host).await?)),
            other => Err(ChannelError::permanent(format!(
                "{TRANSPORT_ENV}={other:?} is not a droplet transport here; use `sftp`{}",
                if cfg!(unix) { " or `native`" } else { "" }
            ))),
        }
    }
}

impl Remote for Transport {
    async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError> {
        each!(self, r => r.size_of(path).await)
    }
    async fn ensure_dir(&self, dir: &str) -> Result<(), ChannelError> {
        each!(self, r => r.ensure_dir(dir).await)
    }
    async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        each!(self, r => r.upload(src, dest, bar).await)
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError> {
        each!(self, r => r.rename(from, to).await)
    }
    async fn remove(&self, path: &str) -> Result<(), ChannelError> {
        each!(self, r => r.remove(path).await)
    }
    async fn download(
        &self,
        src: &str,
        size: u64,
        dest: &Path,
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError> {
        each!(self, r => r.download(src, size, dest, bar).await)
    }
    async fn list(&self, dir: &str) -> Result<Vec<RemoteEntry>, ChannelError> {
        each!(self, r => r.list(dir).await)
    }
    async fn close(self) {
        each!(self, r => r.close().await)
    }
}
