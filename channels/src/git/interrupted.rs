//! An update of the clone's files and branch cut short (handoff killed while checking out a commit) is
//! taken back by the next run, so a killed send never leaves the clone stuck or littered.
//!
//! Before [`super::clone::advance`] touches the working tree it writes `.git/handoff-advancing` naming
//! the commit the branch is at and the one it moves to; once the branch has moved the note goes. A later
//! run that finds the note (under handoff's clone lock, so the run that wrote it is gone) puts back every
//! path the update changes whose file is exactly what the update would write (or the start of it: git
//! writes in place) or what was there before,
//! resets those index entries, removes the lock files git leaves behind, and carries on. A file that is
//! neither is the user's, and stays.

use super::GitSettings;
use crate::ChannelError;
use git2::{ObjectType, Oid, Repository, Tree};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The note's name, in the `.git` directory.
const NOTE: &str = "handoff-advancing";

/// How old a git lock file must be, when an interrupted update is found, before it is taken for that
/// update's (a younger one may be a git command the user just started: it is waited for that long).
const STALE_LOCK: Duration = Duration::from_secs(2);

fn perm(what: &str, e: impl std::fmt::Display) -> ChannelError {
    ChannelError::permanent(format!("{what}: {e}"))
}

fn note_path(repo: &Repository) -> PathBuf {
    repo.path().join(NOTE)
}

fn show(id: Option<Oid>) -> String {
    id.map_or_else(|| "-".to_string(), |i| i.to_string())
}

/// An update in progress: the note is on disk until [`Update::done`].
pub(crate) struct Update {
    note: PathBuf,
}

impl Update {
    /// Writes the note for moving the branch from `from` to `to` (`None`: unborn).
    pub(crate) fn begin(repo: &Repository, from: Option<Oid>, to: Option<Oid>) -> Result<Self, ChannelError> {
        let note = note_path(repo);
        std::fs::write(&note, format!("{} {}\n", show(from), show(to)))
            .map_err(|e| perm(&format!("cannot write {}", note.display()), e))?;
        Ok(Self { note })
    }

    /// The update finished, or stopped before writing anything: the note goes.
    pub(crate) fn done(self) {
        let _ = std::fs::remove_file(&self.note);
    }
}

fn parse(text: &str) -> Option<(Option<Oid>, Option<Oid>)> {
    let mut ids = text.split_whitespace().map(|w| if w == "-" { Ok(None) } else { Oid::from_str(w).map(Some) });
    let from = ids.next()?.ok()?;
    let to = ids.next()?.ok()?;
    ids.next().is_none().then_some((from, to))
}

/// Removes a lock file git left behind, once it is [`STALE_LOCK`] old (or gone by itself).
fn clear_lock(lock: &Path) {
    loop {
        let Ok(meta) = std::fs::metadata(lock) else { return };
        let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default();
        if age >= STALE_LOCK {
            tracing::warn!(lock = %lock.display(), "removing a lock file left by an interrupted update");
            let _ = std::fs::remove_file(lock);
            return;
        }
        std::thread::sleep((STALE_LOCK - age).min(Duration::from_millis(100)));
    }
}

fn tree_of(repo: &Repository, id: Option<Oid>) -> Result<Option<Tree<'_>>, git2::Error> {
    id.map(|i| repo.find_commit(i).and_then(|c| c.tree())).transpose()
}

/// Takes back an update a killed run left half done (see the module docs). Nothing to do without a note.
pub(crate) fn recover(repo: &Repository, s: &GitSettings) -> Result<(), ChannelError> {
    let note = note_path(repo);
    let Ok(text) = std::fs::read_to_string(&note) else { return Ok(()) };
    let fail = |e: git2::Error| perm("taking back an interrupted update", e.message());
    clear_lock(&repo.path().join("index.lock"));
    clear_lock(&repo.path().join(format!("{}.lock", s.branch_ref())));
    let at = repo.refname_to_id(&s.branch_ref()).ok();
    let Some((from, to)) = parse(&text) else {
        let _ = std::fs::remove_file(&note);
        return Ok(());
    };
    if at != from {
        // the branch moved (the update finished, or the user moved it since): nothing of ours to take back
        let _ = std::fs::remove_file(&note);
        return Ok(());
    }
    let workdir = repo.workdir().ok_or_else(|| ChannelError::permanent("the clone has no working tree"))?;
    let (from_tree, to_tree) = (tree_of(repo, from).map_err(fail)?, tree_of(repo, to).map_err(fail)?);
    let diff = repo.diff_tree_to_tree(from_tree.as_ref(), to_tree.as_ref(), None).map_err(fail)?;
    let mut ours: Vec<PathBuf> = Vec::new();
    for delta in diff.deltas() {
        let Some(path) = delta.new_file().path().or(delta.old_file().path()) else { continue };
        let (before, after) = (delta.old_file().id(), delta.new_file().id());
        let file = workdir.join(path);
        let is_ours = match std::fs::read(&file) {
            // missing: the update deleted it, or had not written it yet
            Err(_) => after.is_zero() || before.is_zero(),
            Ok(content) => {
                let id = Oid::hash_object(ObjectType::Blob, &content).map_err(fail)?;
                // git writes a file in place: a killed write leaves the start of it
                let partly_written = || -> Result<bool, ChannelError> {
                    Ok(!after.is_zero() && repo.find_blob(after).map_err(fail)?.content().starts_with(&content))
                };
                id == after || id == before || partly_written()?
            }
        };
        if !is_ours {
            continue;
        }
        if before.is_zero() {
            let _ = std::fs::remove_file(&file);
        } else {
            let blob = repo.find_blob(before).map_err(fail)?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| perm(&format!("cannot restore {}", file.display()), e))?;
            }
            std::fs::write(&file, blob.content())
                .map_err(|e| perm(&format!("cannot restore {}", file.display()), e))?;
        }
        ours.push(path.to_path_buf());
    }
    if !ours.is_empty() {
        let head = from.map(|f| repo.find_object(f, None)).transpose().map_err(fail)?;
        repo.reset_default(head.as_ref(), ours.iter()).map_err(fail)?;
    }
    tracing::warn!(paths = ours.len(), dir = %s.checkout.display(), "took back an update a killed run left half done");
    let _ = std::fs::remove_file(&note);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_reads_back_and_anything_else_is_ignored() {
        let a = Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(parse(&format!("- {a}\n")), Some((None, Some(a))));
        assert_eq!(parse(&format!("{a} -\n")), Some((Some(a), None)));
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse(&format!("{a} {a} {a}")), None);
    }
}
