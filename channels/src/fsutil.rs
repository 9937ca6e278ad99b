//! Local file helpers shared by the channels and the app: atomic private writes, directory fsync, and
//! streaming sha256 of a file. The one home of each (the outbox, `init`, the key files, the droplet's
//! upload check and `fetch` all use these).

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Writes `bytes` to `path` via a temporary file (mode 0600 on Unix), fsync and rename, then an fsync of
/// the folder, so readers see the old content or the new, never half, and a crash keeps one of them.
/// Creates the parent folders. The temporary file is removed when writing it fails.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut opts = File::options();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// fsync of a directory, so a rename in it survives a crash. Windows cannot open a directory for fsync;
/// NTFS journals the rename itself, so this is a no-op there.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex sha256 and size of a file, read in 256 KiB chunks (memory stays flat however large the file).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_privately_and_leave_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new/dir/job.json");
        write_atomic_private(&p, b"first").unwrap();
        write_atomic_private(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // writing over a directory fails, and leaves no temporary file behind
        let blocked = d.path().join("new/dir/sub");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomic_private(&blocked, b"x").is_err());
        let names: Vec<String> = std::fs::read_dir(d.path().join("new/dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "only job.json and sub: {names:?}");
    }

    #[test]
    fn file_hashes_match_the_bytes_across_chunk_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), (sha256_hex(b""), 0));
        // one byte past a chunk: the last short read is counted too
        let big = vec![7u8; 256 * 1024 + 1];
        std::fs::write(&p, &big).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), (sha256_hex(&big), big.len() as u64));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(sha256_file(&d.path().join("missing")).is_err());
    }
}
