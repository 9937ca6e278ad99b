//! Writing a download into a local file on one blocking thread, hashing as it goes, fed over a small bounded
//! channel: memory stays at a few chunks however large the file, and disk writes overlap with receiving.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Chunks handed over but not yet written, at most.
const QUEUED: usize = 8;

/// A local file being written on a blocking thread.
pub(crate) struct HashingWriter {
    tx: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    task: tokio::task::JoinHandle<std::io::Result<(u64, String)>>,
}

impl HashingWriter {
    /// Creates (or truncates) `path` and starts the writing thread.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::create(path)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUED);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                total += chunk.len() as u64;
            }
            file.sync_all()?;
            Ok((total, hex::encode(hasher.finalize())))
        });
        Ok(Self { tx: Some(tx), task })
    }

    /// Queues `chunk` (in file order). Returns false when the thread has stopped (on a write error, which
    /// [`HashingWriter::finish`] returns).
    pub async fn write(&mut self, chunk: Vec<u8>) -> bool {
        match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// Waits for every queued chunk to be written and synced; bytes written and their sha256 (hex).
    pub async fn finish(mut self) -> std::io::Result<(u64, String)> {
        drop(self.tx.take());
        self.task.await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_every_chunk_in_order_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut w = HashingWriter::create(&p).unwrap();
        for piece in data.chunks(4096) {
            assert!(w.write(piece.to_vec()).await);
        }
        let (n, sha) = w.finish().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    }
}
