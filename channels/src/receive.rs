//! Writing a fetched item to disk: hashed and counted on the way, and stopped at the size its pointer
//! claims. A store that holds more bytes than the pointer says is refused before the extra bytes are
//! written, so a pointer claiming 0 bytes cannot make a receiver download 200 KiB (or 200 GiB).

use crate::{ChannelError, Fetched};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// A destination file that takes at most `max` bytes, hashing what it writes.
pub struct LimitedWriter {
    out: tokio::fs::File,
    hasher: Sha256,
    total: u64,
    max: u64,
    what: String,
}

impl LimitedWriter {
    /// Creates `dest` for at most `max` bytes of `what` (named in the refusal).
    pub async fn create(dest: &Path, max: u64, what: &str) -> Result<Self, ChannelError> {
        let out = tokio::fs::File::create(dest).await?;
        Ok(Self { out, hasher: Sha256::new(), total: 0, max, what: what.to_string() })
    }

    /// Writes `chunk`, or refuses when it would take the total past `max` (nothing of it is written).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ChannelError> {
        let total = self.total.checked_add(chunk.len() as u64).filter(|t| *t <= self.max);
        let Some(total) = total else {
            return Err(ChannelError::over_claimed(&self.what, self.max));
        };
        self.hasher.update(chunk);
        self.out.write_all(chunk).await?;
        self.total = total;
        Ok(())
    }

    /// Flushes to disk and reports the size and sha256 written.
    pub async fn finish(mut self) -> Result<Fetched, ChannelError> {
        self.out.flush().await?;
        self.out.sync_all().await?;
        Ok(Fetched { size: self.total, sha256: hex::encode(self.hasher.finalize()) })
    }
}

/// Refuses an item whose store reports `size` bytes, more than `max` (checked before reading it).
pub fn check_size(what: &str, size: u64, max: u64) -> Result<(), ChannelError> {
    if size > max { Err(ChannelError::over_claimed(what, max)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stops_at_the_claimed_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let mut w = LimitedWriter::create(&p, 5, "item x").await.unwrap();
        w.write(b"abc").await.unwrap();
        let e = w.write(b"def").await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused);
        assert!(e.message.contains("more than the 5 bytes"), "{}", e.message);
        drop(w);
        assert!(std::fs::metadata(&p).unwrap().len() <= 3, "the refused chunk was not written");
        let mut w = LimitedWriter::create(&p, 3, "item x").await.unwrap();
        w.write(b"abc").await.unwrap();
        let f = w.finish().await.unwrap();
        assert_eq!(f.size, 3);
        assert!(check_size("y", u64::MAX, 2).is_err() && check_size("y", 2, 2).is_ok());
    }
}
