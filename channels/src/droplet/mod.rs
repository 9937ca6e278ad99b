//! The droplet channel: payloads to a directory on an always-on SSH server, over SFTP (issue 5).
//!
//! The connection is the user's own `ssh` (agent, keys, `~/.ssh/config`, known_hosts; host keys are always
//! checked strictly). Files move through SFTP requests that carry paths as data, so no name is ever seen by
//! a shell. Every stored payload is named `handoff-<id>-<safe name>`, where `<id>` derives from the parcel's
//! idempotency key: a retry finds its earlier upload instead of making a second copy, and `prune` can tell
//! handoff's files from everything else in the directory. Uploads go to `.handoff-<id>-<name>.part` and are
//! renamed when complete, so a reader never sees a half file under the final name.
//!
//! On Unix the transport is the `openssh` crate (a multiplexed master) with `openssh-sftp-client`, through
//! the SFTP session the drive's `sftp` remotes share ([`crate::ssh`]); on
//! other systems, and on Unix when `HANDOFF_DROPLET_TRANSPORT=sftp`, it drives the system `sftp` binary in
//! batch mode ([`cli`]).

mod cli;
pub mod init;
mod transport;

pub use crate::ssh::errors as ssh_errors;

use crate::names::safe_file_name;
use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime};
use transport::{Remote, Transport};

/// `[droplet]` in handoff's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropletConfig {
    /// `user@host` or an alias from `~/.ssh/config`.
    pub host: String,
    /// Directory on the server.
    pub dir: String,
    /// Largest file the router sends to the droplet unasked (bytes, or a string such as `"256MiB"`);
    /// larger files go to the next channel that takes them (drive), though `--via droplet` still sends
    /// them. Default 256 MiB. Replaces `[route] droplet_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<crate::registration::SizeValue>,
    /// Among file channels of the same latency, the higher priority is tried first (default
    /// [`PRIORITY`]: the droplet, fast and short-lived, before drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts, pointers).
pub const NAME: &str = "droplet";
/// Default `[droplet] max_size`: 256 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 256 << 20;
/// The droplet's own priority among file stores: before drive.
pub const PRIORITY: i32 = 10;

impl crate::registration::ChannelSection for DropletConfig {
    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::File];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(DropletChannel::new(self, ctx.clone())?))
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }

    type InitFlags = init::DropletInitFlags;

    fn init_probe(&self, _home: &std::path::Path) -> Option<crate::init::InitProbe> {
        Some(init::probe(self))
    }
}

/// Start of every payload name handoff stores; `prune` removes nothing else.
pub const NAME_PREFIX: &str = "handoff-";
/// Hex digits of the key-derived id in a stored name.
const ID_LEN: usize = 24;
/// URI scheme of droplet pointers.
pub const URI_SCHEME: &str = "droplet:";

/// One entry of a remote directory listing.
#[derive(Debug, Clone)]
pub(crate) struct RemoteEntry {
    /// File name (one component).
    pub name: String,
    /// Regular file (not a directory, link or device).
    pub is_file: bool,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, when the server says.
    pub modified: Option<SystemTime>,
}

/// What `handoff droplet prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Names removed.
    pub removed: Vec<String>,
    /// Bytes those held.
    pub bytes_freed: u64,
    /// handoff payloads still younger than the cutoff.
    pub kept: usize,
    /// Entries that are not handoff's and were left alone.
    pub foreign: usize,
}

/// Payloads on an SSH server's directory.
pub struct DropletChannel {
    host: String,
    dir: String,
    ctx: Context,
    /// Largest file routed here unasked, in bytes (`[droplet] max_size`).
    max_size: u64,
}

/// Normalises the configured directory: `~/x` → `x` (SFTP paths are relative to the login directory),
/// no trailing slash.
fn normalise_dir(dir: &str) -> String {
    let d = dir.trim();
    let d = d.strip_prefix("~/").unwrap_or(if d == "~" { "." } else { d });
    let trimmed = d.trim_end_matches('/');
    if trimmed.is_empty() && d.starts_with('/') { "/".into() } else { trimmed.to_string() }
}

/// True for names handoff itself stores (final or temporary): `handoff-<24 hex>-<name>` or
/// `.handoff-<24 hex>-<name>.part`.
pub fn is_handoff_name(name: &str) -> bool {
    let core = match name.strip_prefix('.') {
        Some(rest) => match rest.strip_suffix(".part") {
            Some(c) => c,
            None => return false,
        },
        None => name,
    };
    let Some(rest) = core.strip_prefix(NAME_PREFIX) else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() > ID_LEN + 1
        && bytes[..ID_LEN].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && bytes[ID_LEN] == b'-'
}

impl DropletChannel {
    /// A droplet channel for `cfg`; checks the config without connecting.
    pub fn new(cfg: &DropletConfig, ctx: Context) -> Result<Self, ChannelError> {
        let host = cfg.host.trim();
        if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ChannelError::permanent(format!(
                "[droplet] host {:?} is not a usable ssh destination: write user@host or a Host alias from ~/.ssh/config",
                cfg.host
            )));
        }
        let dir = normalise_dir(&cfg.dir);
        if dir.is_empty() || dir.chars().any(|c| c.is_control()) {
            return Err(ChannelError::permanent(format!(
                "[droplet] dir {:?} is not usable: set it to the server directory for payloads, e.g. /opt/claude-bus-files",
                cfg.dir
            )));
        }
        let max_size = match &cfg.max_size {
            Some(v) => v.bytes("[droplet] max_size")?,
            None => DEFAULT_MAX_SIZE,
        };
        Ok(Self { host: host.to_string(), dir, ctx, max_size })
    }

    /// The ssh destination.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The (normalised) directory on the server.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The name a parcel's file is stored under: `handoff-<id from key>-<safe name>`. The same key always
    /// gives the same name, different keys different names.
    pub fn stored_name(parcel: &Parcel) -> String {
        let id = crate::hashing::sha256_hex(parcel.key.as_bytes());
        let given = parcel.file.as_ref().map(|f| f.name.as_str()).unwrap_or("file");
        format!("{NAME_PREFIX}{}-{}", &id[..ID_LEN], safe_file_name(given))
    }

    fn remote_path(&self, name: &str) -> String {
        match self.dir.as_str() {
            "/" => format!("/{name}"),
            "." => name.to_string(),
            d => format!("{d}/{name}"),
        }
    }

    /// The pointer URI of a stored name: `droplet:<dir>/<name>`.
    pub fn uri_for(&self, name: &str) -> String {
        format!("{URI_SCHEME}{}", self.remote_path(name))
    }

    /// The stored name a pointer URI refers to, refusing anything outside the configured directory or not
    /// made by handoff.
    pub fn name_from_uri(&self, uri: &str) -> Result<String, ChannelError> {
        let refuse = |why: &str| {
            ChannelError::refused(format!(
                "refusing droplet pointer {}: {why}; handoff only fetches its own payloads from [droplet] dir {}",
                crate::untrusted::inline(uri),
                self.dir
            ))
        };
        let path = uri.strip_prefix(URI_SCHEME).ok_or_else(|| refuse("it is not a droplet: URI"))?;
        let (dir, name) = match path.rsplit_once('/') {
            Some(("", n)) => ("/", n),
            Some((d, n)) => (d, n),
            None => (".", path),
        };
        if normalise_dir(dir) != self.dir {
            return Err(refuse("it names another directory (is the sender's [droplet] dir different?)"));
        }
        if !is_handoff_name(name) || name.starts_with('.') || safe_file_name(name) != name {
            return Err(refuse("it does not name a payload handoff stored"));
        }
        Ok(name.to_string())
    }

    async fn connect(&self) -> Result<Transport, ChannelError> {
        Transport::connect(&self.host).await
    }

    /// Removes handoff's payloads (and leftover partial uploads) older than `older_than`; leaves everything
    /// else in the directory alone. With `dry_run`, only reports what it would remove.
    pub async fn prune(&self, older_than: Duration, dry_run: bool) -> Result<PruneReport, ChannelError> {
        let remote = self.connect().await?;
        let result = async {
            let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
            let mut report = PruneReport::default();
            for e in remote.list(&self.dir).await? {
                if e.name == "." || e.name == ".." {
                    continue;
                }
                if !e.is_file || !is_handoff_name(&e.name) {
                    report.foreign += 1;
                    continue;
                }
                match e.modified {
                    Some(t) if t < cutoff => {
                        if !dry_run {
                            remote.remove(&self.remote_path(&e.name)).await?;
                        }
                        report.bytes_freed += e.size;
                        report.removed.push(e.name);
                    }
                    _ => report.kept += 1,
                }
            }
            report.removed.sort();
            Ok(report)
        }
        .await;
        remote.close().await;
        result
    }

    async fn upload(&self, remote: &Transport, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let f = parcel.file.as_ref().ok_or_else(|| ChannelError::permanent("a droplet parcel needs a file"))?;
        let name = Self::stored_name(parcel);
        let (dest, tmp) = (self.remote_path(&name), self.remote_path(&format!(".{name}.part")));
        let receipt = |detail: &str, sha256: Option<String>| Receipt {
            channel: NAME.into(),
            uri: Some(self.uri_for(&name)),
            message_id: None,
            detail: Some(format!("{detail} {}:{}", self.host, self.dir)),
            sha256,
        };
        remote.ensure_dir(&self.dir).await?;
        if remote.size_of(&dest).await? == Some(f.size) {
            return Ok(receipt("already on", None));
        }
        let bar = self.ctx.progress.start(&format!("droplet {}", f.name), f.size);
        let sent = remote.upload(&f.path, &tmp, bar.as_ref()).await;
        bar.finish();
        let (size, sha) = sent?;
        if !f.matches(size, &sha) {
            let _ = remote.remove(&tmp).await;
            return Err(ChannelError::permanent(format!(
                "{} changed while it was being sent (now {size} bytes, sha256 {sha}); send it again",
                f.path.display()
            )));
        }
        match remote.size_of(&tmp).await? {
            Some(n) if n == size => {}
            other => {
                return Err(ChannelError::transient(format!(
                    "droplet host {}: the server holds {} of {size} bytes of {tmp:?} after the upload; it will be retried",
                    self.host,
                    other.map_or("none".to_string(), |n| n.to_string())
                )));
            }
        }
        remote.rename(&tmp, &dest).await?;
        Ok(receipt("uploaded to", Some(sha)))
    }
}

#[async_trait]
impl Channel for DropletChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability { routed_max: Some(self.max_size), ..Capability::file_store(false, PRIORITY) }
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let remote = self.connect().await?;
        let result = self.upload(&remote, parcel).await;
        remote.close().await;
        result
    }

    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<crate::Fetched, ChannelError> {
        // The configured host is the only one ever contacted; the uri must name handoff's own payload in
        // the configured directory (checked before connecting).
        let name = self.name_from_uri(uri)?;
        let src = self.remote_path(&name);
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        let remote = self.connect().await?;
        let result = async {
            let Some(size) = remote.size_of(&src).await? else {
                return Err(ChannelError::permanent(format!(
                    "{uri} is no longer on droplet host {} (pruned, or removed by hand)",
                    self.host
                )));
            };
            crate::receive::check_size(&format!("droplet {name}"), size, max)?;
            let tmp = dir.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
            let bar = self.ctx.progress.start(&format!("droplet {name}"), size);
            let got = remote.download(&src, size, &tmp, bar.as_ref()).await;
            bar.finish();
            // The file may have grown since it was measured: what was read counts.
            let got = got.and_then(|(size, sha)| {
                crate::receive::check_size(&format!("droplet {name}"), size, max).map(|()| (size, sha))
            });
            match got {
                Ok((size, sha256)) => {
                    tokio::fs::rename(&tmp, dest).await?;
                    Ok(crate::Fetched { size, sha256 })
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    Err(e)
                }
            }
        }
        .await;
        remote.close().await;
        result
    }

    async fn health(&self) -> Result<Health, ChannelError> {
        let remote = self.connect().await?;
        let result = async {
            remote.ensure_dir(&self.dir).await?;
            // writable? an empty probe file uploaded and removed again (doctor: "directory writable")
            let id = uuid::Uuid::new_v4().simple().to_string();
            let local = self.ctx.data_dir.join(format!(".droplet-probe-{id}"));
            std::fs::create_dir_all(&self.ctx.data_dir)?;
            std::fs::write(&local, b"")?;
            let probe = self.remote_path(&format!(".handoff-doctor-{id}.part"));
            let bar = crate::ProgressSink::start(&crate::NoProgress, "probe", 0);
            let wrote = remote.upload(&local, &probe, bar.as_ref()).await;
            let _ = std::fs::remove_file(&local);
            wrote.map_err(|e| e.context(format!("droplet {}:{} is not writable", self.host, self.dir)))?;
            remote.remove(&probe).await?;
            let entries = remote.list(&self.dir).await?;
            let ours: Vec<_> = entries.iter().filter(|e| e.is_file && is_handoff_name(&e.name)).collect();
            let bytes: u64 = ours.iter().map(|e| e.size).sum();
            Ok(Health {
                check: format!("droplet {}:{} reachable over SFTP and writable", self.host, self.dir),
                detail: Some(format!("{} handoff payloads, {}", ours.len(), crate::pointer::human_size(bytes))),
            })
        }
        .await;
        remote.close().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parcel::FileRef;

    fn channel(dir: &str) -> DropletChannel {
        let cfg = DropletConfig { host: "me@example.org".into(), dir: dir.into(), max_size: None, priority: None };
        DropletChannel::new(&cfg, Context::quiet("m", std::env::temp_dir())).unwrap()
    }

    fn parcel(key: &str, name: &str) -> Parcel {
        Parcel {
            key: key.into(),
            from: "a".into(),
            to: "b".into(),
            kind: crate::ParcelKind::File,
            title: None,
            body: String::new(),
            tags: vec![],
            file: Some(FileRef { path: "/x".into(), name: name.into(), size: 1, sha256: "0".repeat(64) }),
        }
    }

    #[test]
    fn stored_names_are_plain_unique_per_key_and_recognisable() {
        let a = DropletChannel::stored_name(&parcel("k1", "$(touch /tmp/x); `id` ../../a b.png"));
        let b = DropletChannel::stored_name(&parcel("k2", "$(touch /tmp/x); `id` ../../a b.png"));
        assert_ne!(a, b);
        assert_eq!(a, DropletChannel::stored_name(&parcel("k1", "$(touch /tmp/x); `id` ../../a b.png")));
        assert!(a.starts_with("handoff-") && a.ends_with("-a_b.png"), "{a}");
        assert!(is_handoff_name(&a) && is_handoff_name(&format!(".{a}.part")));
        for other in ["notes.txt", "handoff-xyz-a", ".handoff-0123.part", "handoff-", &format!(".{a}")] {
            assert!(!is_handoff_name(other), "{other}");
        }
    }

    #[test]
    fn uris_round_trip_and_foreign_ones_are_refused() {
        let c = channel("/srv/drop/");
        assert_eq!(c.dir(), "/srv/drop");
        let name = DropletChannel::stored_name(&parcel("k", "a.pdf"));
        let uri = c.uri_for(&name);
        assert_eq!(uri, format!("droplet:/srv/drop/{name}"));
        assert_eq!(c.name_from_uri(&uri).unwrap(), name);
        for bad in [
            "droplet:/etc/passwd".to_string(),
            format!("droplet:/srv/other/{name}"),
            format!("droplet:/srv/drop/../drop/{name}"),
            "droplet:/srv/drop/notes.txt".to_string(),
            format!("drive:/srv/drop/{name}"),
        ] {
            let e = c.name_from_uri(&bad).unwrap_err();
            assert!(e.message.contains("refusing droplet pointer"), "{bad}: {e}");
        }
        assert_eq!(channel("~/drop").dir(), "drop");
        assert_eq!(channel("/").uri_for("handoff-x"), "droplet:/handoff-x");
    }

    #[test]
    fn bad_config_is_refused_with_a_fix() {
        for (host, dir) in [("", "/d"), ("-oProxyCommand=x", "/d"), ("a b", "/d"), ("h", "  ")] {
            let cfg = DropletConfig { host: host.into(), dir: dir.into(), max_size: None, priority: None };
            let e = DropletChannel::new(&cfg, Context::quiet("m", std::env::temp_dir())).err().expect("refused");
            assert!(e.message.contains("[droplet]"), "{e}");
        }
    }
}
