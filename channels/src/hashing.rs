//! The one home of copy-while-hashing: every copy that reports a sha256 (uploads, downloads, fetches,
//! local copies, sealing and opening encrypted payloads, hashing a file) counts and hashes its bytes here.
//!
//! - [`Hashing`] wraps a reader or a writer (std's `Read`/`Write` and tokio's `AsyncRead`/`AsyncWrite`)
//!   and hashes exactly the bytes that pass through it, so a copy is a library call
//!   (`std::io::copy`, `tokio::io::copy_buf`) with the buffer sizes each caller chose. A writer can be
//!   capped ([`Hashing::at_most`]: the write that would take it past the cap is refused whole, with the
//!   "holds more than its pointer claims" refusal) and can advance a progress bar ([`Hashing::showing`]).
//!   Once the stream failed, [`Hashing::finish`] returns an error rather than the hash of a part.
//! - [`sha256_file`] hashes a file that way (`std::io::copy` into a hashing sink); [`sha256_hex`] hashes
//!   bytes in memory.
//! - [`StreamHash`] is the hasher and counter underneath, for the few transfers whose bytes do not pass
//!   through one reader or writer in order (each says why where it uses it).

use crate::{ChannelError, NoProgress, ProgressBar};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The sha256 and count of bytes fed in order: what every hashing copy reports.
#[derive(Clone, Default)]
pub struct StreamHash {
    hasher: Sha256,
    bytes: u64,
}

impl StreamHash {
    /// Nothing hashed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in the next `bytes` of the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// Bytes taken in so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes taken in and their sha256 (lower-case hex).
    pub fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

/// The most bytes a capped writer takes, and what to name in its refusal.
struct Cap {
    max: u64,
    what: String,
}

/// How a [`Hashing`] stream stopped early.
enum Failure {
    /// The wrapped reader or writer failed.
    Inner(io::ErrorKind, String),
    /// A write would have passed the cap.
    OverCap,
}

/// A reader or writer that counts and hashes (sha256) the bytes passing through it, in order.
///
/// As a reader it hashes what its inner reader returned; as a writer, what its inner writer accepted.
pub struct Hashing<'a, T> {
    inner: T,
    hash: StreamHash,
    cap: Option<Cap>,
    bar: &'a dyn ProgressBar,
    failure: Option<Failure>,
}

impl<T> Hashing<'static, T> {
    /// Wraps `inner`: no cap, no progress bar.
    pub fn new(inner: T) -> Self {
        Self { inner, hash: StreamHash::new(), cap: None, bar: &NoProgress, failure: None }
    }
}

impl<'a, T> Hashing<'a, T> {
    /// Refuses (as a writer) the write that would take the total past `max` bytes: nothing of that write
    /// reaches the inner writer, and the error is [`ChannelError::over_claimed`] for `what` (carried in the
    /// `io::Error`; `?` into a [`ChannelError`] keeps it a refusal).
    pub fn at_most(mut self, max: u64, what: &str) -> Self {
        self.cap = Some(Cap { max, what: what.to_string() });
        self
    }

    /// Advances `bar` by every byte hashed.
    pub fn showing<'b>(self, bar: &'b dyn ProgressBar) -> Hashing<'b, T> {
        Hashing { inner: self.inner, hash: self.hash, cap: self.cap, bar, failure: self.failure }
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.hash.bytes()
    }

    /// True when the wrapped reader or writer itself failed (not the cap): in a copy, it tells this side's
    /// failure from the other side's.
    pub fn inner_failed(&self) -> bool {
        matches!(self.failure, Some(Failure::Inner(..)))
    }

    /// The wrapped reader or writer, bytes hashed and their sha256 (hex); an error instead when the stream
    /// failed or was refused on the way, so a hash of part of a stream is never reported.
    pub fn finish(self) -> io::Result<(T, u64, String)> {
        match self.failure {
            None => {
                let (bytes, sha256) = self.hash.finish();
                Ok((self.inner, bytes, sha256))
            }
            Some(Failure::OverCap) => Err(over_cap(self.cap.as_ref())),
            Some(Failure::Inner(kind, message)) => {
                Err(io::Error::new(kind, format!("{message} (the copy stopped there, so it has no hash of the whole)")))
            }
        }
    }

    /// Refuses a write of `len` more bytes when it would pass the cap.
    fn check_cap(&mut self, len: usize) -> io::Result<()> {
        let Some(cap) = &self.cap else { return Ok(()) };
        if self.hash.bytes().checked_add(len as u64).is_some_and(|total| total <= cap.max) {
            return Ok(());
        }
        self.failure = Some(Failure::OverCap);
        Err(over_cap(Some(cap)))
    }

    /// Hashes `bytes` that went through, or records the inner failure.
    fn passed<'b, R>(&mut self, result: io::Result<R>, bytes: impl FnOnce(&R) -> &'b [u8]) -> io::Result<R> {
        match &result {
            Ok(r) => {
                let bytes = bytes(r);
                self.hash.update(bytes);
                self.bar.advance(bytes.len() as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if self.failure.is_none() {
                    self.failure = Some(Failure::Inner(e.kind(), e.to_string()));
                }
            }
        }
        result
    }
}

/// The refusal of a write past the cap, as an `io::Error` carrying the [`ChannelError`].
fn over_cap(cap: Option<&Cap>) -> io::Error {
    let (what, max) = cap.map(|c| (c.what.as_str(), c.max)).unwrap_or(("the item", 0));
    io::Error::other(ChannelError::over_claimed(what, max))
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        self.passed(result, |n| &buf[..*n])
    }
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_cap(buf.len())?;
        let result = self.inner.write(buf);
        self.passed(result, |n| &buf[..*n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Hashing<'_, R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        Poll::Ready(this.passed(result, |()| &buf.filled()[before..]))
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Hashing<'_, W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_cap(buf.len())?;
        let result = ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        Poll::Ready(this.passed(result, |n| &buf[..*n]))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Hashing<'_, tokio::fs::File> {
    /// Flushes the file and syncs it to disk; bytes written and their sha256 (hex), as [`Hashing::finish`].
    pub async fn sync_and_finish(mut self) -> io::Result<(u64, String)> {
        use tokio::io::AsyncWriteExt;
        self.flush().await?;
        self.inner.sync_all().await?;
        self.finish().map(|(_, bytes, sha256)| (bytes, sha256))
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex sha256 and size of a file, read in 256 KiB chunks (memory stays flat however large the file).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut input = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let mut hashed = Hashing::new(std::io::sink());
    std::io::copy(&mut input, &mut hashed)?;
    let (_, size, sha256) = hashed.finish()?;
    Ok((sha256, size))
}

/// What the system's `sha256sum` says of `path`: for tests, an answer computed outside this crate.
#[cfg(test)]
pub(crate) fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) must be installed: apt-get install coreutils");
    assert!(out.status.success(), "sha256sum failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// sha256("abc") and sha256(""), the published test vectors (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Bytes that are not periodic in any buffer size used here.
    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_u32;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A progress bar that adds up what it is told.
    #[derive(Default)]
    struct Tally(std::sync::atomic::AtomicU64);

    impl ProgressBar for Tally {
        fn advance(&self, bytes: u64) {
            self.0.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        fn finish(&self) {}
    }

    #[test]
    fn the_published_vectors_come_out_of_both_directions() {
        let mut reader = Hashing::new(&b"abc"[..]);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let (_, bytes, sha) = reader.finish().unwrap();
        assert_eq!((bytes, sha.as_str()), (3, ABC));
        let mut writer = Hashing::new(Vec::new());
        Write::write_all(&mut writer, b"abc").unwrap();
        let (inner, bytes, sha) = writer.finish().unwrap();
        assert_eq!((inner, bytes, sha.as_str()), (b"abc".to_vec(), 3, ABC));
        let (_, bytes, sha) = Hashing::new(std::io::sink()).finish().unwrap();
        assert_eq!((bytes, sha.as_str()), (0, EMPTY));
        let mut split = StreamHash::new();
        split.update(b"a");
        split.update(b"bc");
        assert_eq!(split.finish(), (3, ABC.to_string()));
    }

    #[tokio::test]
    async fn an_async_copy_hashes_what_sha256sum_reports_and_shows_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        let bytes = data(3 * 1024 * 1024 + 17);
        std::fs::write(&src, &bytes).unwrap();
        let bar = Tally::default();
        let input = tokio::fs::File::open(&src).await.unwrap();
        let mut input = tokio::io::BufReader::with_capacity(256 * 1024, Hashing::new(input).showing(&bar));
        let mut out = Hashing::new(tokio::fs::File::create(&dest).await.unwrap());
        tokio::io::copy_buf(&mut input, &mut out).await.unwrap();
        let (read, read_sha) = {
            let (_, n, sha) = input.into_inner().finish().unwrap();
            (n, sha)
        };
        let (written, written_sha) = out.sync_and_finish().await.unwrap();
        let want = sha256sum(&src);
        assert_eq!((read, read_sha.as_str()), (bytes.len() as u64, want.as_str()));
        assert_eq!((written, written_sha.as_str()), (bytes.len() as u64, want.as_str()));
        assert_eq!(sha256sum(&dest), want);
        assert_eq!(bar.0.into_inner(), bytes.len() as u64);
    }

    #[tokio::test]
    async fn a_capped_writer_refuses_the_write_that_passes_the_cap_and_has_no_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let mut out = Hashing::new(tokio::fs::File::create(&p).await.unwrap()).at_most(5, "item x");
        out.write_all(b"abc").await.unwrap();
        let e = out.write_all(b"def").await.unwrap_err();
        let e = ChannelError::from(e);
        assert_eq!(e.kind, crate::ErrorKind::Refused);
        assert_eq!(e.message, ChannelError::over_claimed("item x", 5).message);
        assert!(!out.inner_failed(), "the cap refused, not the file");
        out.flush().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc", "nothing of the refused write reached the file");
        assert_eq!(ChannelError::from(out.finish().unwrap_err()).kind, crate::ErrorKind::Refused);
        // Exactly at the cap is fine, and an empty write at the cap too.
        let mut out = Hashing::new(Vec::new()).at_most(3, "item y");
        Write::write_all(&mut out, b"abc").unwrap();
        Write::write_all(&mut out, b"").unwrap();
        assert_eq!(out.finish().unwrap().2, ABC);
        // A cap near u64::MAX does not overflow into a pass.
        let mut out = Hashing::new(Vec::new()).at_most(u64::MAX, "item z");
        Write::write_all(&mut out, b"abc").unwrap();
        assert_eq!(out.finish().unwrap().1, 3);
    }

    /// Returns its bytes in pieces of `step`, then fails (as a disk or a connection that drops).
    #[derive(Debug)]
    struct FailsAfter {
        left: Vec<u8>,
        step: usize,
    }

    impl tokio::io::AsyncRead for FailsAfter {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.left.is_empty() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "the peer went away")));
            }
            let n = self.step.min(self.left.len()).min(buf.remaining());
            buf.put_slice(&self.left[..n]);
            self.left.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_reader_that_fails_mid_stream_leaves_no_hash_of_the_part_read() {
        let mut input = Hashing::new(FailsAfter { left: data(10_000), step: 4096 });
        let mut got = Vec::new();
        let e = input.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(input.bytes(), 10_000, "what did arrive was counted");
        assert!(input.inner_failed());
        let e = input.finish().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "finish repeats the failure: {e}");
        assert!(e.to_string().contains("the peer went away"), "{e}");
        // The kind carries through into a channel error: a dropped connection is worth retrying.
        assert!(ChannelError::from(e).is_transient());
    }

    #[test]
    fn a_writer_that_fails_leaves_no_hash_and_says_it_was_the_writer() {
        #[derive(Debug)]
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Hashing::new(Full);
        assert!(std::io::copy(&mut &b"abc"[..], &mut out).is_err());
        assert!(out.inner_failed());
        assert_eq!(out.bytes(), 0);
        assert_eq!(out.finish().unwrap_err().kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn file_hashes_are_what_sha256sum_says_across_chunk_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        // empty, one byte, exactly one chunk, one byte past it (the last short read counts too), several
        for len in [0, 1, 256 * 1024, 256 * 1024 + 1, 3 * 256 * 1024 - 5] {
            std::fs::write(&p, data(len)).unwrap();
            assert_eq!(sha256_file(&p).unwrap(), (sha256sum(&p), len as u64), "{len} bytes");
        }
        assert_eq!((sha256_hex(b"abc").as_str(), sha256_hex(b"").as_str()), (ABC, EMPTY));
        assert_eq!(sha256_file(&d.path().join("missing")).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
