//! Local file helpers shared by the channels and the app: atomic private writes and directory fsync. The
//! one home of each (the outbox, `init` and the key files use these); hashing a file is in
//! [`crate::hashing`].

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` via a temporary file (mode 0600 on Unix), fsync and rename, then an fsync of
/// the folder, so readers see the old content or the new, never half, and a crash keeps one of them.
/// Creates the parent folders. The temporary file is removed when writing it fails.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, true)
}

/// As [`write_atomic_private`] without the fsyncs: readers and a killed process still see the old content
/// or the new, never half; a power loss may keep the old (or, for a new file, none). For records that are
/// durable elsewhere or written again after such a loss.
pub fn write_replacing_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_renamed(path, bytes, false)
}

fn write_renamed(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
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
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durable { sync_dir(dir) } else { Ok(()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_privately_and_leave_no_temporaries() {
        type Write = fn(&Path, &[u8]) -> std::io::Result<()>;
        for (name, write) in [("durable", write_atomic_private as Write), ("replacing", write_replacing_private)] {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("new/dir/job.json");
            write(&p, b"first").unwrap();
            write(&p, b"second").unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"second", "{name}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{name}");
            }
            // writing over a directory fails, and leaves no temporary file behind
            let blocked = d.path().join("new/dir/sub");
            std::fs::create_dir(&blocked).unwrap();
            std::fs::write(blocked.join("x"), b"").unwrap();
            assert!(write(&blocked, b"x").is_err(), "{name}");
            let names: Vec<String> = std::fs::read_dir(d.path().join("new/dir"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), 2, "{name}: only job.json and sub: {names:?}");
        }
    }
}
