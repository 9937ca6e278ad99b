//! Streaming transfers through opendal: upload with sha256 computed on the way, download into a file.
//! Memory stays flat: the file is read in fixed chunks, the writer holds one part, the reader `CONCURRENT`.

use super::services::OpendalPlan;
use crate::hashing::Hashing;
use crate::{ChannelError, ProgressBar};
use futures::TryStreamExt;
use opendal::Operator;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Size of the parts handed to the writer (S3's multipart minimum is 5 MiB).
const PART: usize = 8 << 20;
/// Ranges read at once when downloading, and their size (4 × 4 MiB in flight keeps a fetch well under
/// 100 MiB of memory while hiding the per-request latency).
const CONCURRENT: usize = 4;
const READ_PART: usize = 4 << 20;
/// Read size from the local file.
const READ: usize = 1 << 20;

/// Builds the operator for a plan.
pub fn operator(plan: &OpendalPlan) -> Result<Operator, ChannelError> {
    opendal::init_default_registry();
    // opendal's reqwest is built without a TLS provider; use ring, as handoff's own HTTP client does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let op = Operator::via_iter(plan.scheme, plan.options.0.iter().cloned()).map_err(|e| {
        ChannelError::permanent(format!("cannot set up opendal's {} service: {}", plan.scheme, e.message()))
    })?;
    // A request that fails for a moment (a dropped connection in the middle of a transfer) is retried
    // three times within 1.4 to 2.8 s (0.2, 0.4, 0.8 s, each with up to as much again of jitter); anything
    // longer is an outage, which the outbox rides out. With opendal's default backoff (1 s, doubling) a
    // server that refused connections held each operation ~20 s: a send took that long to say "queued",
    // and a flush at session start that long for every queued drive item.
    let retry = opendal::layers::RetryLayer::new()
        .with_max_times(3)
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter();
    Ok(op.layer(retry).layer(
        opendal::layers::TimeoutLayer::new()
            .with_timeout(Duration::from_secs(120))
            .with_io_timeout(Duration::from_secs(120)),
    ))
}

/// Maps an opendal error to a channel error (never includes config values).
pub fn map_err(what: &str, e: opendal::Error) -> ChannelError {
    use opendal::ErrorKind as K;
    let msg = match root_cause(&e) {
        Some(cause) => format!("{what}: {} ({}: {cause})", e.kind(), e.message()),
        None => format!("{what}: {} ({})", e.kind(), e.message()),
    };
    match e.kind() {
        K::PermissionDenied => ChannelError::auth(msg),
        K::RateLimited => ChannelError::transient(msg),
        _ if e.is_temporary() => ChannelError::transient(msg),
        K::Unexpected if looks_like_network(&e) => ChannelError::transient(msg),
        _ => ChannelError::permanent(msg),
    }
}

/// The innermost error under an opendal error (`Connection refused (os error 111)`, a DNS or TLS
/// failure): what tells the user why. The layers above it (reqwest's) name the request's URL, which is
/// not repeated.
fn root_cause(e: &opendal::Error) -> Option<String> {
    let mut cause: &dyn std::error::Error = std::error::Error::source(e)?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string()).filter(|c| !c.is_empty())
}

fn looks_like_network(e: &opendal::Error) -> bool {
    let s = format!("{e:?}").to_ascii_lowercase();
    [
        "connection refused",
        "connection reset",
        "timed out",
        "dns error",
        "error sending request",
        "broken pipe",
        "connect",
    ]
    .iter()
    .any(|n| s.contains(n))
}

/// Size of `path`, or `None` when it does not exist.
pub async fn stat(op: &Operator, path: &str) -> Result<Option<u64>, ChannelError> {
    match op.stat(path).await {
        Ok(m) => Ok(Some(m.content_length())),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(map_err(&format!("checking {path}"), e)),
    }
}

/// Streams `src` to `path`, hashing it; returns (bytes, sha256 hex). When the content does not match
/// `expected` (size, and sha256 unless it is empty: not known beforehand) the write is aborted, so nothing
/// is committed. When `via_temp` is set the object is written under a temporary
/// name in the same folder and renamed at the end (for stores where a write is visible while in progress).
/// When `one_shot` is set (services that upload in one request) the file is gathered into one buffer first:
/// the caller only sends files up to `single_request_max` this way.
pub async fn upload(
    op: &Operator,
    src: &Path,
    path: &str,
    expected: (u64, &str),
    via_temp: bool,
    one_shot: bool,
    bar: &dyn ProgressBar,
) -> Result<(u64, String), ChannelError> {
    let write_path = if via_temp {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let tmp = format!(".{name}.{}.part", uuid::Uuid::new_v4().simple());
        if dir.is_empty() { tmp } else { format!("{dir}/{tmp}") }
    } else {
        path.to_string()
    };
    // Parent folders are created by the services themselves (fs, sftp, webdav) or do not exist (object stores).
    let writer = if one_shot {
        op.writer_with(&write_path).await
    } else {
        // One part in flight: opendal 0.57's concurrent writers keep up to 8192 finished parts (and their
        // buffers) until close, so `.concurrent(n)` makes memory grow with the file. Reads are not affected.
        op.writer_with(&write_path).chunk(PART).await
    };
    let mut writer = writer.map_err(|e| map_err(&format!("starting the upload of {path}"), e))?;
    let input =
        tokio::fs::File::open(src).await.map_err(|e| ChannelError::permanent(format!("{}: {e}", src.display())))?;
    let mut input = Hashing::new(input).showing(bar);
    // A loop rather than `tokio::io::copy`: opendal's writer takes each buffer by value (no copy), where its
    // `AsyncWrite` adapter would copy every byte into a buffer of its own.
    let result: Result<(), ChannelError> = async {
        if one_shot {
            let mut gathered: Vec<u8> = Vec::with_capacity(expected.0 as usize);
            input.read_to_end(&mut gathered).await?;
            return writer.write(gathered).await.map_err(|e| map_err(&format!("uploading {path}"), e));
        }
        loop {
            let mut buf = vec![0u8; READ];
            let n = input.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            writer.write(buf).await.map_err(|e| map_err(&format!("uploading {path}"), e))?;
        }
    }
    .await;
    let hashed = result.and_then(|()| input.finish().map_err(ChannelError::from));
    let (total, sha) = match hashed {
        Ok((_, total, sha)) => (total, sha),
        Err(e) => {
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    if total != expected.0 || (!expected.1.is_empty() && sha != expected.1) {
        let _ = writer.abort().await;
        if via_temp {
            let _ = op.delete(&write_path).await;
        }
        return Err(ChannelError::permanent(format!(
            "{} changed while it was being sent; send it again",
            src.display()
        )));
    }
    writer.close().await.map_err(|e| map_err(&format!("finishing the upload of {path}"), e))?;
    if via_temp && let Err(e) = op.rename(&write_path, path).await {
        let _ = op.delete(&write_path).await;
        return Err(map_err(&format!("renaming the upload to {path}"), e));
    }
    Ok((total, sha))
}

/// Streams `path` into `dest` (a file this function creates), hashing on the way.
pub async fn download(
    op: &Operator,
    path: &str,
    dest: &Path,
    max: u64,
    bar: &dyn ProgressBar,
) -> Result<crate::Fetched, ChannelError> {
    let reader = op
        .reader_with(path)
        .chunk(READ_PART)
        .concurrent(CONCURRENT)
        .await
        .map_err(|e| map_err(&format!("opening {path}"), e))?;
    let stream = reader.into_bytes_stream(..).await.map_err(|e| map_err(&format!("reading {path}"), e))?;
    // The ranges' buffers are written as they come (no copy); a failed read is worth retrying.
    let mut input = tokio_util::io::StreamReader::new(
        stream.map_err(|e| std::io::Error::other(ChannelError::transient(format!("reading {path}: {e}")))),
    );
    let mut out = crate::receive::create(dest, max, path).await?.showing(bar);
    tokio::io::copy_buf(&mut input, &mut out).await?;
    crate::receive::finish(out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;
    use crate::hashing::sha256sum;

    /// Bytes that repeat in no buffer size used here.
    fn data(len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn opendal_transfers_hash_what_sha256sum_reports_and_refuse_a_short_claim() {
        let dir = tempfile::tempdir().unwrap();
        let (src, store) = (dir.path().join("src"), dir.path().join("store"));
        std::fs::create_dir(&store).unwrap();
        // past one read and one part boundary of the chunked writer
        let bytes = data(PART + READ + 3);
        std::fs::write(&src, &bytes).unwrap();
        let (len, want) = (bytes.len() as u64, sha256sum(&src));
        let plan = OpendalPlan {
            scheme: "fs",
            options: super::super::services::Options(vec![("root".into(), store.display().to_string())]),
            path: String::new(),
            one_shot: false,
        };
        let op = operator(&plan).unwrap();
        for (name, one_shot) in [("chunked", false), ("one-shot", true)] {
            let sent = upload(&op, &src, name, (len, ""), false, one_shot, &NoProgress).await.unwrap();
            assert_eq!(sent, (len, want.clone()), "{name}");
            assert_eq!(sha256sum(&store.join(name)), want, "{name}: the store holds the file");
        }
        // A file that no longer matches its hash is not committed, under its name or a temporary one.
        let e = upload(&op, &src, "changed", (len, &"0".repeat(64)), true, false, &NoProgress).await.unwrap_err();
        assert!(e.message.contains("changed while it was being sent"), "{}", e.message);
        assert_eq!(names_in(&store), ["chunked", "one-shot"]);

        let back = dir.path().join("back");
        let got = download(&op, "chunked", &back, len, &NoProgress).await.unwrap();
        assert_eq!((got.size, got.sha256.as_str()), (len, want.as_str()));
        assert_eq!(sha256sum(&back), want);
        // A store holding more than the pointer claims: refused, and no byte past the claim is written.
        let short = dir.path().join("short");
        let e = download(&op, "chunked", &short, len - 1, &NoProgress).await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused, "{}", e.message);
        assert_eq!(e.message, ChannelError::over_claimed("chunked", len - 1).message);
        assert!(std::fs::metadata(&short).unwrap().len() < len);
    }
}
