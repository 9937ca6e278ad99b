//! Reading a local file for upload on one blocking thread, hashing as it goes, handing chunks over a
//! small bounded channel: memory stays at a few chunks however large the file, and reading overlaps with
//! sending.
//!
//! The chunks are hashed with [`StreamHash`] rather than read through [`crate::hashing::Hashing`]: each
//! chunk is a fresh `Vec` that `read_to_end` fills from the file straight into its spare capacity, which
//! std does only for the file itself; through a wrapping reader it would zero every chunk first
//! (`Read::read_buf` is not stable), a cost on every byte of every upload.

use crate::hashing::StreamHash;
use std::io::Read;
use std::path::Path;

/// Chunks handed over but not yet consumed, at most.
const IN_FLIGHT: usize = 3;

/// A file being read ahead on a blocking thread.
pub(crate) struct ReadAhead {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    task: tokio::task::JoinHandle<(u64, String)>,
}

impl ReadAhead {
    /// Opens `path` and starts reading it in chunks of `chunk` bytes.
    pub fn open(path: &Path, chunk: usize) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
        let task = tokio::task::spawn_blocking(move || {
            let mut hash = StreamHash::new();
            loop {
                // read_to_end fills the spare capacity without zeroing it first
                let mut buf = Vec::with_capacity(chunk);
                match (&mut file).take(chunk as u64).read_to_end(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        hash.update(&buf);
                        if tx.blocking_send(Ok(buf)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
            hash.finish()
        });
        Ok(Self { rx, task })
    }

    /// The next chunk; `None` at the end of the file.
    pub async fn next(&mut self) -> Option<std::io::Result<Vec<u8>>> {
        self.rx.recv().await
    }

    /// Bytes read and their sha256 (hex), once [`ReadAhead::next`] returned `None`.
    pub async fn finish(self) -> std::io::Result<(u64, String)> {
        drop(self.rx);
        self.task.await.map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_every_byte_in_order_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut r = ReadAhead::open(&p, 4096).unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = r.next().await {
            let chunk = chunk.unwrap();
            got.extend_from_slice(&chunk);
        }
        let (n, sha) = r.finish().await.unwrap();
        assert_eq!(got, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(sha, crate::hashing::sha256sum(&p));
    }
}
