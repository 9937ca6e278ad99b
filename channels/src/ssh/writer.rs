//! Writing a download into a local file on one blocking thread, hashing as it goes, fed over a small bounded
//! channel: memory stays at a few chunks however large the file, and disk writes overlap with receiving.
//!
//! Chunks carry their offset, so several streams can fill different parts of the file at once. The hash
//! must still see the bytes in file order: a chunk that continues what is hashed so far is hashed from
//! memory; one that arrives ahead of that is only written, and read back from the file once everything
//! before it has been hashed.
//!
//! That is why the bytes go through [`StreamHash`] here and not a [`crate::hashing::Hashing`] writer: they
//! reach the file out of order, and the hash must take them in order.

use crate::hashing::StreamHash;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Chunks handed over but not yet written, at most.
const QUEUED: usize = 8;

/// A local file being written on a blocking thread.
pub(crate) struct OffsetWriter {
    tx: Option<tokio::sync::mpsc::Sender<(u64, Vec<u8>)>>,
    task: tokio::task::JoinHandle<std::io::Result<(u64, String)>>,
}

/// The hash of a file written in pieces, possibly out of order.
struct OrderedHash {
    /// The bytes from the start of the file hashed so far.
    hash: StreamHash,
    /// Pieces written beyond `hashed`, by offset: their length.
    ahead: BTreeMap<u64, usize>,
    /// Buffer for reading pieces back.
    buf: Vec<u8>,
}

impl OrderedHash {
    fn new() -> Self {
        Self { hash: StreamHash::new(), ahead: BTreeMap::new(), buf: Vec::new() }
    }

    /// Takes in the piece `chunk` just written at `at` in `file`.
    fn add(&mut self, file: &File, at: u64, chunk: &[u8]) -> std::io::Result<()> {
        if at != self.hash.bytes() {
            if at < self.hash.bytes() || self.ahead.insert(at, chunk.len()).is_some() {
                return Err(std::io::Error::other(format!("bytes at offset {at} arrived twice")));
            }
            return Ok(());
        }
        self.hash.update(chunk);
        // What arrived ahead and now continues the hashed part is read back from the file.
        while let Some(len) = self.ahead.remove(&self.hash.bytes()) {
            self.buf.resize(len, 0);
            file.read_exact_at(&mut self.buf, self.hash.bytes())?;
            self.hash.update(&self.buf);
        }
        Ok(())
    }

    /// Bytes and sha256 (hex) of the whole file; an error when a part of it never arrived.
    fn finish(self) -> std::io::Result<(u64, String)> {
        if let Some(at) = self.ahead.keys().next() {
            return Err(std::io::Error::other(format!(
                "bytes {}..{at} never arrived (the remote file shrank while it was read?)",
                self.hash.bytes()
            )));
        }
        Ok(self.hash.finish())
    }
}

impl OffsetWriter {
    /// Creates (or truncates) `path` and starts the writing thread.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(QUEUED);
        let task = tokio::task::spawn_blocking(move || {
            let mut hash = OrderedHash::new();
            while let Some((at, chunk)) = rx.blocking_recv() {
                file.write_all_at(&chunk, at)?;
                hash.add(&file, at, &chunk)?;
            }
            let done = hash.finish()?;
            file.sync_all()?;
            Ok(done)
        });
        Ok(Self { tx: Some(tx), task })
    }

    /// Queues `chunk` to be written at offset `at`. Returns false when the thread has stopped (on a write
    /// error, which [`OffsetWriter::finish`] returns).
    pub async fn write_at(&self, at: u64, chunk: Vec<u8>) -> bool {
        match &self.tx {
            Some(tx) => tx.send((at, chunk)).await.is_ok(),
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

    fn data() -> Vec<u8> {
        (0..1_000_003u32).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn writes_every_chunk_in_order_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data = data();
        let w = OffsetWriter::create(&p).unwrap();
        for (i, piece) in data.chunks(4096).enumerate() {
            assert!(w.write_at((i * 4096) as u64, piece.to_vec()).await);
        }
        let (n, sha) = w.finish().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(sha, crate::hashing::sha256sum(&p));
    }

    #[tokio::test]
    async fn hashes_in_file_order_chunks_that_arrive_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data = data();
        // Two interleaved streams: the second half's pieces arrive among the first half's.
        let half = data.len() / 2;
        let (first, second) = data.split_at(half);
        let w = OffsetWriter::create(&p).unwrap();
        let mut a = first.chunks(7000).scan(0usize, |at, c| Some((std::mem::replace(at, *at + c.len()), c)));
        let mut b = second.chunks(5000).scan(half, |at, c| Some((std::mem::replace(at, *at + c.len()), c)));
        loop {
            let (x, y) = (a.next(), b.next());
            if x.is_none() && y.is_none() {
                break;
            }
            for (at, c) in [y, x].into_iter().flatten() {
                assert!(w.write_at(at as u64, c.to_vec()).await);
            }
        }
        let (n, sha) = w.finish().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(sha, crate::hashing::sha256sum(&p));
    }

    #[tokio::test]
    async fn a_missing_part_is_an_error_not_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let w = OffsetWriter::create(&p).unwrap();
        assert!(w.write_at(0, vec![1; 100]).await);
        assert!(w.write_at(200, vec![2; 100]).await);
        let err = w.finish().await.unwrap_err().to_string();
        assert!(err.contains("bytes 100..200 never arrived"), "{err}");
    }
}
