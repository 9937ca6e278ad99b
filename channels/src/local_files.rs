//! The embedded default's payload folder: files (and, until a git repo is configured, documents) copied
//! into a local directory. Used when no drive or droplet is configured, and by tests.

use crate::names::{safe_file_name, stays_inside};
use crate::receive::LimitedWriter;
use crate::{Capability, Channel, ChannelError, Health, LatencyClass, Parcel, ParcelKind, Receipt};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

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
        let mut input =
            tokio::fs::File::open(src).await.map_err(|e| ChannelError::permanent(format!("{}: {e}", src.display())))?;
        let mut out = LimitedWriter::create(&tmp, max, &src.display().to_string()).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.write(&buf[..n]).await?;
        }
        let got = out.finish().await?;
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

#[async_trait]
impl Channel for LocalFiles {
    fn name(&self) -> &'static str {
        NAME
    }
    fn capability(&self) -> Capability {
        Capability {
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
        }
    }
    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let rel = Self::relative_path(parcel);
        let dest = self.root.join(&rel);
        let mut stored_sha = None;
        match (parcel.kind, &parcel.file) {
            (ParcelKind::File, Some(f)) => {
                let (size, sha) = copy_hashed(&f.path, &dest).await?;
                if !f.matches(size, &sha) {
                    let _ = tokio::fs::remove_file(&dest).await;
                    return Err(ChannelError::permanent(format!(
                        "{} changed while it was being sent",
                        f.path.display()
                    )));
                }
                stored_sha = Some(sha);
            }
            (ParcelKind::Document, _) => {
                tokio::fs::create_dir_all(dest.parent().expect("dated dir")).await?;
                let tmp = dest.with_extension("md.part");
                tokio::fs::write(&tmp, parcel.body.as_bytes()).await?;
                tokio::fs::File::open(&tmp).await?.sync_all().await?;
                tokio::fs::rename(&tmp, &dest).await?;
            }
            (kind, _) => return Err(ChannelError::permanent(format!("the local folder does not take {kind:?}"))),
        }
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
}
