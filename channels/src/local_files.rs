//! The embedded default's payload folder: files (and, until a git repo is configured, documents) copied
//! into a local directory. Used when no drive or droplet is configured, and by tests.

use crate::names::{safe_file_name, stays_inside};
use crate::{Capability, Channel, ChannelError, Health, LatencyClass, Parcel, ParcelKind, Receipt};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The embedded default's payload folder's channel name (registry, receipts, pointers).
pub const NAME: &str = "local";

/// A local directory holding payloads.
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    /// Uses (and creates when needed) `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The relative path a parcel is stored under: dated folder, the whole item key, safe name. Unique per
    /// key: two items of one send (same name or not) never share a path.
    pub fn relative_path(parcel: &Parcel) -> String {
        let name = match (&parcel.file, parcel.kind) {
            (Some(f), _) => safe_file_name(&f.name),
            (None, _) => format!("{}.md", safe_file_name(parcel.title.as_deref().unwrap_or("document"))),
        };
        let day = &crate::bus::store::now_ts()[..10];
        let key: String =
            parcel.key.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(100).collect();
        format!("{day}/{key}-{name}")
    }

    /// The file a `local:<relative path>` uri names, refused ([`crate::ErrorKind::Refused`]) unless it is a
    /// relative path that stays inside the payload folder (no `..`, not absolute, no control characters).
    pub fn resolve(&self, uri: &str) -> Result<PathBuf, ChannelError> {
        let refuse = |why: &str| {
            ChannelError::refused(format!(
                "refusing {}: {why}; handoff only fetches its own payloads from the local payload folder",
                crate::untrusted::inline(uri)
            ))
        };
        let rel = uri.strip_prefix("local:").ok_or_else(|| refuse("it is not a local: uri"))?;
        if !stays_inside(rel) || rel.contains('\\') || rel.chars().any(crate::untrusted::is_unsafe) {
            return Err(refuse("it points outside the payload folder"));
        }
        Ok(self.root.join(rel))
    }
}

/// What a folder of payloads carries (the local payload folder and a shared folder alike): files and
/// documents of any size, kept, as fast as the disk.
pub const FOLDER_CAPABILITY: Capability = Capability {
    max_size: None,
    latency: LatencyClass::SizeBound,
    can_receive: false,
    text: false,
    documents: true,
    files: true,
    pages: false,
    lasting: true,
    routed_max: None,
    priority: -10,
    no_fallback: false,
};

/// Read size of a local copy.
const COPY_BUFFER: usize = 256 * 1024;

/// Streams `src` into `dest` through a temporary name and an fsync, returning (bytes, sha256 hex).
pub async fn copy_hashed(src: &Path, dest: &Path) -> Result<(u64, String), ChannelError> {
    copy_at_most(src, dest, u64::MAX).await
}

/// [`copy_hashed`] that refuses (keeping nothing) a source holding more than `max` bytes.
pub async fn copy_at_most(src: &Path, dest: &Path, max: u64) -> Result<(u64, String), ChannelError> {
    let dir = dest.parent().ok_or_else(|| ChannelError::permanent("destination has no parent"))?;
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{}.part", uuid::Uuid::new_v4().simple()));
    let result = async {
        let input =
            tokio::fs::File::open(src).await.map_err(|e| ChannelError::permanent(format!("{}: {e}", src.display())))?;
        let mut out = crate::receive::create(&tmp, max, &src.display().to_string()).await?;
        tokio::io::copy_buf(&mut tokio::io::BufReader::with_capacity(COPY_BUFFER, input), &mut out).await?;
        let got = crate::receive::finish(out).await?;
        Ok::<_, ChannelError>((got.size, got.sha256))
    }
    .await;
    match result {
        Ok(v) => {
            tokio::fs::rename(&tmp, dest).await?;
            Ok(v)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// Stores a parcel's file or document at `dest` (parent folders created): through a temporary name, an
/// fsync and a rename, then an fsync of the folder, so a reader or a crash never finds a partial file
/// under the final name. A file that changed since it was hashed is refused and nothing is kept. Returns
/// the sha256 of a stored file. `channel` names the channel in the refusal of any other kind of parcel.
pub async fn store_parcel(parcel: &Parcel, dest: &Path, channel: &str) -> Result<Option<String>, ChannelError> {
    let dir = dest.parent().ok_or_else(|| ChannelError::permanent("destination has no parent"))?.to_path_buf();
    let sha = match (parcel.kind, &parcel.file) {
        (ParcelKind::File, Some(f)) => {
            let (size, sha) = copy_hashed(&f.path, dest).await?;
            if !f.matches(size, &sha) {
                let _ = tokio::fs::remove_file(dest).await;
                return Err(ChannelError::permanent(format!("{} changed while it was being sent", f.path.display())));
            }
            Some(sha)
        }
        (ParcelKind::Document, _) => {
            tokio::fs::create_dir_all(&dir).await?;
            let tmp = dir.join(format!(".{}.part", uuid::Uuid::new_v4().simple()));
            let written = async {
                let mut f = tokio::fs::File::create(&tmp).await?;
                f.write_all(parcel.body.as_bytes()).await?;
                f.sync_all().await?;
                tokio::fs::rename(&tmp, dest).await
            }
            .await;
            if let Err(e) = written {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e.into());
            }
            None
        }
        (kind, _) => return Err(ChannelError::permanent(format!("the {channel} does not take {kind:?}"))),
    };
    tokio::task::spawn_blocking(move || crate::fsutil::sync_dir(&dir))
        .await
        .map_err(|e| ChannelError::permanent(format!("syncing the folder stopped: {e}")))??;
    Ok(sha)
}

#[async_trait]
impl Channel for LocalFiles {
    fn name(&self) -> &'static str {
        NAME
    }
    fn capability(&self) -> Capability {
        FOLDER_CAPABILITY
    }
    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let rel = Self::relative_path(parcel);
        let stored_sha = store_parcel(parcel, &self.root.join(&rel), "local folder").await?;
        Ok(Receipt {
            channel: NAME.into(),
            uri: Some(format!("local:{rel}")),
            message_id: None,
            detail: None,
            sha256: stored_sha,
        })
    }
    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<crate::Fetched, ChannelError> {
        let src = self.resolve(uri)?;
        let shown = crate::untrusted::inline(uri);
        match tokio::fs::symlink_metadata(&src).await {
            Ok(m) if m.is_file() => crate::receive::check_size(&shown, m.len(), max)?,
            Ok(_) => return Err(ChannelError::refused(format!("refusing {shown}: it is not a plain file"))),
            Err(_) => {
                return Err(ChannelError::permanent(format!(
                    "{shown} is not in the local payload folder {}",
                    self.root.display()
                )));
            }
        }
        let (size, sha256) = copy_at_most(&src, dest, max).await?;
        Ok(crate::Fetched { size, sha256 })
    }
    async fn health(&self) -> Result<Health, ChannelError> {
        tokio::fs::create_dir_all(&self.root).await?;
        let probe = self.root.join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(Health { check: format!("payload folder {} writable", self.root.display()), detail: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetch_stays_in_the_payload_folder_and_stops_at_the_claimed_size() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("payloads");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/a.bin"), b"0123456789").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        let ch = LocalFiles::new(root);
        let dest = dir.path().join("out/a.bin");
        for bad in ["local:../secret", "local:/etc/passwd", "local:d/../../secret", "../secret", "local:d\\..\\x"] {
            let e = ch.fetch(bad, &dest, 100).await.unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Refused, "{bad}: {}", e.message);
        }
        let e = ch.fetch("local:d/a.bin", &dest, 9).await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused, "{}", e.message);
        assert!(!dest.exists(), "nothing kept of an item larger than claimed");
        let got = ch.fetch("local:d/a.bin", &dest, 10).await.unwrap();
        assert_eq!(got.size, 10);
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn store_parcel_keeps_whole_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"0123456789").unwrap();
        let sha = crate::hashing::sha256_hex(b"0123456789");
        let parcel = |kind, file: Option<crate::parcel::FileRef>| Parcel {
            key: "k".into(),
            from: "a".into(),
            to: "b".into(),
            kind,
            title: None,
            body: "# doc\n".into(),
            tags: vec![],
            file,
        };
        let file = |size, sha256: &str| crate::parcel::FileRef {
            path: src.clone(),
            name: "src.bin".into(),
            size,
            sha256: sha256.into(),
        };
        let dest = dir.path().join("out/day/k-src.bin");
        let got = store_parcel(&parcel(ParcelKind::File, Some(file(10, &sha))), &dest, "test folder").await.unwrap();
        assert_eq!(got.as_deref(), Some(sha.as_str()));
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123456789");
        // the file changed since it was hashed (other size, or same size other bytes): refused, nothing kept
        let changed = dir.path().join("out/day/changed.bin");
        for (size, sha256) in [(9, ""), (10, "00")] {
            let e = store_parcel(&parcel(ParcelKind::File, Some(file(size, sha256))), &changed, "test folder")
                .await
                .unwrap_err();
            assert!(e.message.contains("changed while it was being sent"), "{e}");
            assert!(!changed.exists());
        }
        let doc = dir.path().join("out/day/k-doc.md");
        assert_eq!(store_parcel(&parcel(ParcelKind::Document, None), &doc, "test folder").await.unwrap(), None);
        assert_eq!(std::fs::read_to_string(&doc).unwrap(), "# doc\n");
        let e =
            store_parcel(&parcel(ParcelKind::Page, None), &dir.path().join("out/p"), "test folder").await.unwrap_err();
        assert_eq!(e.message, "the test folder does not take Page");
        let left: Vec<_> =
            std::fs::read_dir(dir.path().join("out/day")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary files left: {left:?}");
    }
}
