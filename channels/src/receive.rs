//! Writing a fetched item to disk: hashed and counted on the way, and stopped at the size its pointer
//! claims. A store that holds more bytes than the pointer says is refused before the extra bytes are
//! written, so a pointer claiming 0 bytes cannot make a receiver download 200 KiB (or 200 GiB).

use crate::hashing::Hashing;
use crate::{ChannelError, Fetched};
use std::path::Path;

/// Creates `dest` for at most `max` bytes of `what` (named in the refusal): a writer that hashes what it
/// writes and refuses, whole, the write that would take it past `max` ([`Hashing::at_most`]).
pub async fn create(dest: &Path, max: u64, what: &str) -> Result<Hashing<'static, tokio::fs::File>, ChannelError> {
    let out = tokio::fs::File::create(dest).await?;
    Ok(Hashing::new(out).at_most(max, what))
}

/// Flushes and syncs a file made by [`create`], and reports the size and sha256 written.
pub async fn finish(out: Hashing<'_, tokio::fs::File>) -> Result<Fetched, ChannelError> {
    let (size, sha256) = out.sync_and_finish().await?;
    Ok(Fetched { size, sha256 })
}

/// Refuses an item whose store reports `size` bytes, more than `max` (checked before reading it).
pub fn check_size(what: &str, size: u64, max: u64) -> Result<(), ChannelError> {
    if size > max { Err(ChannelError::over_claimed(what, max)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn stops_at_the_claimed_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let mut w = create(&p, 5, "item x").await.unwrap();
        w.write_all(b"abc").await.unwrap();
        let e = ChannelError::from(w.write_all(b"def").await.unwrap_err());
        assert_eq!(e.kind, crate::ErrorKind::Refused);
        assert!(e.message.contains("more than the 5 bytes"), "{}", e.message);
        assert_eq!(finish(w).await.unwrap_err().kind, crate::ErrorKind::Refused, "no size or hash of a refused item");
        assert!(std::fs::metadata(&p).unwrap().len() <= 3, "the refused chunk was not written");
        let mut w = create(&p, 3, "item x").await.unwrap();
        w.write_all(b"abc").await.unwrap();
        let f = finish(w).await.unwrap();
        assert_eq!(
            (f.size, f.sha256.as_str()),
            (3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(check_size("y", u64::MAX, 2).is_err() && check_size("y", 2, 2).is_ok());
    }
}
