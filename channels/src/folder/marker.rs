//! The share's marker: how a machine tells its share from the empty directory the share is mounted on.
//!
//! A mount point is a directory of its own: while the share is not mounted it is still there, empty, on
//! the local disk, and writing into it would fill that disk with payloads no other machine sees. The
//! first send into a share leaves a marker file at its root ([`MARKER`]), and each machine notes in its
//! data directory that it saw the marker under its `[folder] path`. A root without the marker, on a
//! machine that saw it there before, is taken for the unmounted mount point: the step queues (exit 75)
//! until the share is back. The very first use of a path cannot be told from an unmounted one; after
//! that, a share that goes away is noticed however it is mounted (a NAS, SMB/NFS, a synced folder).

use crate::ChannelError;
use std::path::{Path, PathBuf};

/// The marker's name at the share's root.
pub const MARKER: &str = ".handoff-share";
/// The file, in handoff's data directory, listing the share roots this machine saw the marker under.
pub const SEEN: &str = "folder-shares-seen";

/// One share root and this machine's record of the roots it saw marked.
pub(super) struct ShareMarker {
    root: PathBuf,
    seen_file: PathBuf,
}

impl ShareMarker {
    /// The marker check of `root`, remembered under `data_dir`.
    pub fn new(root: &Path, data_dir: &Path) -> Self {
        Self { root: root.to_path_buf(), seen_file: data_dir.join(SEEN) }
    }

    /// Checks that the share is there before it is used. `writing` (a delivery) leaves the marker on a
    /// share that has none yet; reading (a fetch, a health check) leaves nothing.
    pub fn check(&self, writing: bool) -> Result<(), ChannelError> {
        if !self.root.is_dir() {
            return Err(ChannelError::transient(format!(
                "the shared folder {} is not there (is the share mounted?); [folder] path names it",
                self.root.display()
            )));
        }
        let marker = self.root.join(MARKER);
        if marker.symlink_metadata().is_ok() {
            return self.note_seen();
        }
        if self.seen()? {
            return Err(ChannelError::transient(format!(
                "the shared folder {} is there but its marker {MARKER} is not: this machine saw it there before, so \
                 this is probably the empty mount point of a share that is not mounted; mount the share (if it was \
                 emptied on purpose, delete {} and the next send marks it anew)",
                self.root.display(),
                self.seen_file.display()
            )));
        }
        if writing {
            let text = "This folder is a handoff share: handoff on each machine writes here under its [folder] path.\n\
                        Keep this file: a machine that saw it and finds it gone takes the share for unmounted.\n";
            std::fs::write(&marker, text).map_err(|e| {
                ChannelError::transient(format!("cannot mark the shared folder {}: {e}", self.root.display()))
            })?;
            self.note_seen()?;
        }
        Ok(())
    }

    /// Whether this machine saw the marker under this root before.
    fn seen(&self) -> Result<bool, ChannelError> {
        match std::fs::read_to_string(&self.seen_file) {
            Ok(text) => Ok(text.lines().any(|l| Path::new(l) == self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ChannelError::permanent(format!("cannot read {}: {e}", self.seen_file.display()))),
        }
    }

    /// Records that this machine saw the marker under this root (once).
    fn note_seen(&self) -> Result<(), ChannelError> {
        if self.seen()? {
            return Ok(());
        }
        let note = || -> std::io::Result<()> {
            if let Some(dir) = self.seen_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.seen_file)?;
            std::io::Write::write_all(&mut f, format!("{}\n", self.root.display()).as_bytes())
        };
        note().map_err(|e| ChannelError::permanent(format!("cannot write {}: {e}", self.seen_file.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_that_was_marked_and_comes_back_empty_is_taken_for_unmounted() {
        let d = tempfile::tempdir().unwrap();
        let (root, data) = (d.path().join("mnt/nas"), d.path().join("data"));
        std::fs::create_dir_all(&root).unwrap();
        let m = ShareMarker::new(&root, &data);
        // reading an unmarked share leaves nothing behind; the first delivery marks it
        m.check(false).unwrap();
        assert!(!root.join(MARKER).exists() && !data.join(SEEN).exists());
        m.check(true).unwrap();
        assert!(root.join(MARKER).exists());
        m.check(true).unwrap();
        assert_eq!(std::fs::read_to_string(data.join(SEEN)).unwrap().lines().count(), 1, "noted once");
        // the share is unmounted: its mount point is there, empty
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        for writing in [true, false] {
            let e = m.check(writing).unwrap_err();
            assert!(e.is_transient() && e.message.contains("not mounted"), "{e}");
        }
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "nothing written to the mount point");
        // another machine (its own data directory) that never saw it: marks it; a root never there: no
        let other = ShareMarker::new(&root, &d.path().join("other"));
        other.check(true).unwrap();
        m.check(true).unwrap();
        let gone = ShareMarker::new(&d.path().join("nowhere"), &data);
        assert!(gone.check(true).unwrap_err().message.contains("is the share mounted?"));
        assert!(!d.path().join("nowhere").exists());
    }
}
