//! The folder channel: files and documents written into a directory that several machines see — a NAS,
//! an SMB/NFS mount, a synced folder. Each machine names its own mount point of the same share in
//! `[folder] path`; pointers carry the path relative to it (`folder:2026-05-01/<key>-name`), so `fetch`
//! on another machine reads the same file under its own mount point. Writes are atomic: a temporary
//! name, fsync, rename, fsync of the directory, so a reader (or a crash) never sees a partial file
//! under the final name. The channel never creates the share's root: an unmounted share is an error,
//! not a folder quietly filling the local disk; nor does it write into the empty mount point of a share
//! it has seen mounted before (see [`marker`]).

pub mod marker;

use crate::local_files::{LocalFiles, store_parcel};
use crate::names::stays_inside;
use crate::{Capability, Channel, ChannelError, Fetched, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[folder]` in handoff's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// This machine's mount point of the shared directory (`/Volumes/nas/handoff`, `/mnt/nas/handoff`,
    /// `~/Dropbox/handoff`). Every machine names its own; what is stored under it is the same.
    pub path: PathBuf,
    /// Among document and file channels of the same latency, the higher priority is tried first (default [`PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts).
pub const NAME: &str = "folder";
/// This channel's own priority among channels of its latency.
pub const PRIORITY: i32 = -5;

/// The folder channel's flag of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct FolderInitFlags {
    /// This machine's mount point of a shared folder (NAS, SMB/NFS mount, synced folder).
    #[arg(long, value_name = "PATH")]
    pub folder: Option<PathBuf>,
}

impl crate::init::InitFlags for FolderInitFlags {
    /// `[folder] path`, written `~/...` when under home.
    fn choose(&self, place: &crate::init::InitPlace<'_>) -> Result<crate::init::InitChoice, ChannelError> {
        Ok(match &self.folder {
            Some(path) => crate::init::InitChoice::text(format!(
                "[{NAME}]\npath = {}\n",
                crate::init::toml_string(&place.written_path(path))
            )),
            None => crate::init::InitChoice::default(),
        })
    }
}

impl crate::registration::ChannelSection for FolderConfig {
    type InitFlags = FolderInitFlags;

    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Document, crate::ParcelKind::File];

    fn build(&self, ctx: &crate::Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(FolderChannel::from_config(self, &ctx.data_dir)?))
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

/// The URI scheme of items in the folder.
pub const SCHEME: &str = "folder:";

/// A shared directory.
pub struct FolderChannel {
    root: PathBuf,
    marker: marker::ShareMarker,
}

impl FolderChannel {
    /// Builds the channel; the path must be absolute (after `~` expansion). Nothing is touched yet;
    /// `data_dir` keeps this machine's record of the shares it saw marked.
    pub fn from_config(cfg: &FolderConfig, data_dir: &Path) -> Result<Self, ChannelError> {
        let root = crate::paths::expand_tilde(&cfg.path);
        if !root.is_absolute() {
            return Err(ChannelError::permanent(format!(
                "[folder] path = {} must be absolute (the share's mount point on this machine)",
                root.display()
            )));
        }
        Ok(Self { marker: marker::ShareMarker::new(&root, data_dir), root })
    }

    /// The share's root on this machine.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file an item uri names, refusing anything outside the folder (`..`, absolute paths, and
    /// symlinks that lead out).
    fn resolve(&self, uri: &str) -> Result<PathBuf, ChannelError> {
        let outside = || {
            ChannelError::refused(format!(
                "refusing {:?}: it points outside the shared folder {}",
                crate::untrusted::inline(uri),
                self.root.display()
            ))
        };
        let rel = uri.strip_prefix(SCHEME).ok_or_else(outside)?;
        if !stays_inside(rel) {
            return Err(outside());
        }
        let path = self.root.join(rel);
        let (Ok(real), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) else {
            return Err(ChannelError::permanent(format!(
                "{} is not in the shared folder {} (not synced here yet, or removed)",
                crate::untrusted::inline(uri),
                self.root.display()
            )));
        };
        if !real.starts_with(&root) {
            return Err(outside());
        }
        Ok(real)
    }
}

/// A temporary file untouched for this long was left by a writer that died (a copy in progress, here or
/// on another machine, keeps writing to its file).
const STALE_PART: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary files (`.<hex>.part`) in `dir` that a killed writer left behind, once they are
/// older than [`STALE_PART`]. They never carry a final name, so no reader ever takes one for an item.
async fn remove_stale_parts(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".part")) {
            continue;
        }
        let Ok(meta) = e.metadata().await else { continue };
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if meta.is_file() && age.is_some_and(|a| a > STALE_PART) {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

#[async_trait]
impl Channel for FolderChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability { priority: PRIORITY, ..crate::local_files::FOLDER_CAPABILITY }
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        self.marker.check(true)?;
        let rel = LocalFiles::relative_path(parcel);
        let dest = self.root.join(&rel);
        let dir = dest.parent().expect("dated dir").to_path_buf();
        remove_stale_parts(&dir).await;
        let receipt = |sha256| Receipt {
            channel: NAME.into(),
            uri: Some(format!("{SCHEME}{rel}")),
            message_id: None,
            detail: None,
            sha256,
        };
        // the same key again (a retry after a lost answer): the complete file is already there
        if tokio::fs::metadata(&dest).await.is_ok_and(|m| m.len() == parcel.size()) {
            return Ok(receipt(None));
        }
        Ok(receipt(store_parcel(parcel, &dest, "folder channel").await?))
    }

    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<Fetched, ChannelError> {
        self.marker.check(false)?;
        let src = self.resolve(uri)?;
        let shown = crate::untrusted::inline(uri);
        let meta = tokio::fs::metadata(&src).await?;
        if !meta.is_file() {
            return Err(ChannelError::refused(format!("refusing {shown}: it is not a plain file")));
        }
        crate::receive::check_size(&shown, meta.len(), max)?;
        let (size, sha256) = crate::local_files::copy_at_most(&src, dest, max).await?;
        Ok(Fetched { size, sha256 })
    }

    /// The folder is there and is a directory this user can write (checked with a hidden probe file that
    /// is removed at once).
    async fn health(&self) -> Result<Health, ChannelError> {
        self.marker.check(false)?;
        let probe = self.root.join(format!(".handoff-probe-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"").await.map_err(|e| {
            ChannelError::permanent(format!("the shared folder {} is not writable: {e}", self.root.display()))
        })?;
        tokio::fs::remove_file(&probe).await?;
        Ok(Health { check: format!("shared folder {} is writable", self.root.display()), detail: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParcelKind;

    #[tokio::test]
    async fn fetch_refuses_anything_outside_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("share");
        std::fs::create_dir_all(root.join("day")).unwrap();
        std::fs::write(d.path().join("secret"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("day/link")).unwrap();
        let ch =
            FolderChannel::from_config(&FolderConfig { path: root.clone(), priority: None }, &d.path().join("data"))
                .unwrap();
        let out = d.path().join("out");
        for uri in
            ["folder:../secret", "folder:/etc/passwd", "local:day/x", "folder:day/link", "folder:day/../../secret"]
        {
            let e = ch.fetch(uri, &out, 100).await.unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Refused, "{uri}: {e}");
            assert!(e.message.contains("outside"), "{uri}: {e}");
            assert!(!out.exists());
        }
        std::fs::write(root.join("day/a.bin"), b"0123456789").unwrap();
        let e = ch.fetch("folder:day/a.bin", &out, 9).await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused, "an item larger than claimed: {e}");
        assert!(!out.exists(), "nothing kept of an item larger than claimed");
        let got = ch.fetch("folder:day/a.bin", &out, 10).await.unwrap();
        assert_eq!((got.size, std::fs::read(&out).unwrap()), (10, b"0123456789".to_vec()));
        assert!(
            FolderChannel::from_config(&FolderConfig { path: "rel/dir".into(), priority: None }, d.path()).is_err()
        );
    }

    #[tokio::test]
    async fn an_unmounted_share_is_never_created() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("not-mounted");
        let ch =
            FolderChannel::from_config(&FolderConfig { path: root.clone(), priority: None }, &d.path().join("data"))
                .unwrap();
        let p = Parcel {
            key: "k1".into(),
            from: "a".into(),
            to: "b".into(),
            kind: ParcelKind::Document,
            title: Some("t".into()),
            body: "doc".into(),
            tags: vec![],
            file: None,
        };
        let e = ch.deliver(&p).await.unwrap_err();
        assert!(e.is_transient() && e.message.contains("mounted"), "{e}");
        assert!(!root.exists());
    }
}
