//! Downloads over SFTP, hashing on the way with memory flat whatever the file size.
//!
//! SFTP answers each read separately, so one request at a time waits a round trip per 20-255 KiB: each
//! stream keeps up to [`READ_IN_FLIGHT`] bytes of read requests outstanding and hands the answers, gathered
//! into 1 MiB batches, to a blocking thread that writes and hashes them ([`OffsetWriter`]).
//!
//! A large file is read by [`STREAMS`] streams at once, each on its own SFTP channel of the same ssh
//! master (no further login), taking [`REGION`]-sized parts of the file in turn and opening its own handle
//! for each, so the server sees every handle read forward from where it started (servers that read through
//! a cache, like `rclone serve`, slow down six-fold when one handle is read at interleaved offsets). With
//! one stream a multi-threaded server such as `rclone serve sftp` spends half as much CPU again per byte
//! and leaves a core idle; `rclone copyto` reads large files with four streams for the same reason.

use super::sftp::{MAX_READS, SftpSession, from_sftp};
use super::writer::OffsetWriter;
use crate::{ChannelError, ProgressBar};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use openssh_sftp_client::Sftp;
use openssh_sftp_client::error::Error as SftpError;
use openssh_sftp_client::file::File;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncSeek;

/// Bytes of read requests outstanding at most, over all streams.
pub const READ_IN_FLIGHT: usize = 8 << 20;
/// Size asked for by a stream's first read; the server's answer tells the size of the next ones (OpenSSH's
/// sftp-server answers up to ~255 KiB, servers without the limits extension 20 KiB).
const FIRST_READ: u32 = 256 * 1024;
/// Bytes handed to the local writing thread at once.
const WRITE_BATCH: usize = 1 << 20;
/// The part of a file one stream reads through one handle before taking the next part.
pub const REGION: u64 = 64 << 20;
/// Streams a file of more than two regions is read with (measured against `rclone serve sftp`, 1 GiB: one
/// stream 3.9 s, two 3.3 s, four 3.1 s, with the same bytes in flight; OpenSSH's sftp-server is as fast
/// with four as with one).
pub const STREAMS: usize = 4;

/// Where one stream reads.
struct Source<'a> {
    sftp: &'a Sftp,
    label: &'a str,
    path: &'a str,
}

impl SftpSession {
    /// Streams `src` (about `size` bytes: the size it had a moment ago) into the local file `dest`
    /// (created); returns bytes received and their sha256 (hex).
    pub async fn download(
        &self,
        src: &str,
        size: u64,
        dest: &Path,
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError> {
        let out = OffsetWriter::create(dest)
            .map_err(|e| ChannelError::permanent(format!("cannot write {}: {e}", dest.display())))?;
        let read = if size <= 2 * REGION {
            let only = Source { sftp: self.sftp(), label: self.label(), path: src };
            read_region(&only, 0, None, READ_IN_FLIGHT, &out, bar).await
        } else {
            self.read_striped(src, size, &out, bar).await
        };
        let written = out.finish().await;
        match read {
            Err(Stop::Read(e)) => Err(e),
            // The thread's own error says why it stopped.
            Ok(()) | Err(Stop::Writer) => {
                written.map_err(|e| ChannelError::permanent(format!("writing {}: {e}", dest.display())))
            }
        }
    }

    /// Reads `src` over up to [`STREAMS`] channels, each taking the next unread region in turn; the last
    /// region is read to the end of the file, wherever that now is.
    async fn read_striped(&self, src: &str, size: u64, out: &OffsetWriter, bar: &dyn ProgressBar) -> Result<(), Stop> {
        let mut channels = Vec::new();
        for _ in 1..STREAMS {
            match self.open_channel().await {
                Ok(c) => channels.push(c),
                // A server may limit the channels of one connection: fewer streams, not a failure.
                Err(e) => {
                    tracing::debug!("no further SFTP channel ({e}); reading with {} stream(s)", channels.len() + 1);
                    break;
                }
            }
        }
        let mut sources = vec![Source { sftp: self.sftp(), label: self.label(), path: src }];
        sources.extend(channels.iter().map(|c| Source { sftp: &c.sftp, label: self.label(), path: src }));
        // The same bytes in flight in all as one stream would have.
        let in_flight = READ_IN_FLIGHT / sources.len();
        tracing::debug!(
            "{}: reading {src} over {} SFTP channel(s), {} MiB at a time",
            self.label(),
            sources.len(),
            REGION >> 20
        );
        let next = AtomicU64::new(0);
        let work = sources.iter().map(|source| {
            let next = &next;
            async move {
                loop {
                    let start = next.fetch_add(1, Ordering::Relaxed) * REGION;
                    if start >= size {
                        return Ok(());
                    }
                    let end = (start + REGION < size).then_some(start + REGION);
                    read_region(source, start, end, in_flight, out, bar).await?;
                }
            }
        });
        let result = futures::future::try_join_all(work).await.map(|_| ());
        drop(sources);
        for c in channels {
            c.close().await;
        }
        result
    }
}

/// Reads `[start, end)` of the source (to the end of the file when `end` is `None`) through a handle of
/// its own, with up to `in_flight` bytes of reads outstanding, handing the bytes to `out` at their offsets.
async fn read_region(
    source: &Source<'_>,
    start: u64,
    end: Option<u64>,
    in_flight: usize,
    out: &OffsetWriter,
    bar: &dyn ProgressBar,
) -> Result<(), Stop> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e| Stop::Read(from_sftp(source.label, &what, source.path, e))
    };
    let limit = end.unwrap_or(u64::MAX);
    let file = source.sftp.open(source.path).await.map_err(err("opening"))?;
    // The first answer's length is the most the server gives per read: the size of all further requests.
    let first_len = (limit - start).min(FIRST_READ as u64) as u32;
    let (first, mut eof) = read_at(file.clone(), start, first_len, true).await.map_err(err("reading"))?;
    let step = first.len().max(4096) as u64;
    let depth = (in_flight / step as usize).clamp(4, MAX_READS);
    let mut next = start + first.len() as u64;
    bar.advance(first.len() as u64);
    // Answers are gathered into WRITE_BATCH-sized buffers for the writing thread: one hand-over per 1 MiB
    // rather than one per (possibly 20 KiB) answer.
    let mut batch_at = start;
    let mut batch = first;
    batch.reserve(WRITE_BATCH.saturating_sub(batch.len()));
    let mut reads = FuturesOrdered::new();
    loop {
        while !eof && next < limit && reads.len() < depth {
            let len = step.min(limit - next);
            reads.push_back(read_at(file.clone(), next, len as u32, false));
            next += len;
        }
        let Some(got) = reads.next().await else { break };
        let (data, at_end) = got.map_err(err("reading"))?;
        eof |= at_end;
        bar.advance(data.len() as u64);
        batch.extend_from_slice(&data);
        if batch.len() >= WRITE_BATCH {
            let len = batch.len() as u64;
            if !out.write_at(batch_at, std::mem::replace(&mut batch, Vec::with_capacity(WRITE_BATCH))).await {
                return Err(Stop::Writer);
            }
            batch_at += len;
        }
    }
    if !batch.is_empty() && !out.write_at(batch_at, batch).await {
        return Err(Stop::Writer);
    }
    let _ = file.close().await;
    Ok(())
}

/// Why a stream stopped early.
enum Stop {
    /// Reading from the server failed.
    Read(ChannelError),
    /// The writing thread stopped taking chunks; its own error (from `finish`) says why.
    Writer,
}

/// Reads `len` bytes at `offset` (fewer at the end of the file), asking again when the server answers with
/// less, unless `once`. The flag is true when the end of the file was reached.
async fn read_at(mut file: File, offset: u64, len: u32, once: bool) -> Result<(Vec<u8>, bool), SftpError> {
    let mut data: Vec<u8> = Vec::new();
    while data.len() < len as usize {
        let at = offset + data.len() as u64;
        Pin::new(&mut file).start_seek(std::io::SeekFrom::Start(at))?;
        let want = len - data.len() as u32;
        let got = match file.read(want, bytes::BytesMut::with_capacity(want as usize)).await? {
            Some(b) if !b.is_empty() => b,
            _ => return Ok((data, true)),
        };
        if data.is_empty() && (once || got.len() == len as usize) {
            return Ok((Vec::from(got), false));
        }
        data.extend_from_slice(&got);
        if once {
            break;
        }
    }
    Ok((data, false))
}
