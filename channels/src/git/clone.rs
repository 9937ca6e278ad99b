//! The local clone: created when missing, checked for states handoff must not paper over (wrong remote,
//! detached HEAD, another branch, a merge in progress), and moved forward without discarding user changes.

use super::interrupted::Update;
use super::{GitSettings, remote};
use crate::ChannelError;
use git2::{Oid, Repository, RepositoryState};
use std::path::Path;

fn perm(what: &str, e: git2::Error) -> ChannelError {
    ChannelError::permanent(format!("{what}: {}", e.message()))
}

/// Creates the embedded default's bare repository on first use (its HEAD names our branch).
fn ensure_bare(s: &GitSettings, bare: &Path) -> Result<(), ChannelError> {
    if bare.join("HEAD").exists() {
        return Ok(());
    }
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head(&s.branch).mkpath(true);
    Repository::init_opts(bare, &opts).map_err(|e| perm(&format!("cannot create {}", bare.display()), e))?;
    Ok(())
}

/// Same repository? Ignores a trailing `/` or `.git`, `file://` versus a plain path.
fn same_remote(a: &str, b: &str) -> bool {
    fn norm(u: &str) -> String {
        let u = u.strip_prefix("file://").unwrap_or(u).trim_end_matches('/');
        let u = u.strip_suffix(".git").unwrap_or(u);
        match remote::local_path(u).and_then(|p| std::fs::canonicalize(p).ok()) {
            Some(p) => p.display().to_string(),
            None => u.to_string(),
        }
    }
    a == b || norm(a) == norm(b)
}

/// Opens the clone, creating it (empty, with `origin` and branch tracking set) when the directory is
/// missing or empty, and refuses clearly when it is in a state handoff must not change on its own.
pub(crate) fn open(s: &GitSettings) -> Result<Repository, ChannelError> {
    if let Some(bare) = &s.embedded_bare {
        ensure_bare(s, bare)?;
    }
    let dir = &s.checkout;
    let empty = !dir.exists() || std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    let repo = if empty {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head(&s.branch).mkpath(true);
        let repo = Repository::init_opts(dir, &opts)
            .map_err(|e| perm(&format!("cannot create a clone in {}", dir.display()), e))?;
        repo.remote("origin", &s.remote).map_err(|e| perm("cannot add the remote", e))?;
        let mut cfg = repo.config().map_err(|e| perm("config", e))?;
        cfg.set_str(&format!("branch.{}.remote", s.branch), "origin").map_err(|e| perm("config", e))?;
        cfg.set_str(&format!("branch.{}.merge", s.branch), &s.branch_ref()).map_err(|e| perm("config", e))?;
        repo
    } else {
        match Repository::open(dir) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(ChannelError::permanent(format!(
                    "{} exists but is not a git clone: move its files away or set [git] checkout to another directory",
                    dir.display()
                )));
            }
            Err(e) => return Err(perm(&format!("cannot open the clone {}", dir.display()), e)),
        }
    };
    super::interrupted::recover(&repo, s)?;
    check(&repo, s)?;
    Ok(repo)
}

/// The checks behind [`open`]; also used by `health`.
fn check(repo: &Repository, s: &GitSettings) -> Result<(), ChannelError> {
    let dir = s.checkout.display();
    if repo.is_bare() {
        return Err(ChannelError::permanent(format!(
            "{dir} is a bare repository; [git] checkout must be a working clone (a new or empty directory is fine)"
        )));
    }
    match repo.find_remote("origin") {
        Ok(r) => {
            let url = r.url().unwrap_or("");
            if !same_remote(url, &s.remote) {
                return Err(ChannelError::permanent(format!(
                    "the clone {dir} has origin = {}, but [git] remote is {}: fix it with `git -C {dir} remote set-url origin <remote>` \
                     or set [git] checkout to another directory",
                    crate::untrusted::redact_url(url),
                    s.remote_shown()
                )));
            }
        }
        Err(_) => {
            repo.remote("origin", &s.remote).map_err(|e| perm("cannot add the remote origin", e))?;
        }
    }
    if repo.state() != RepositoryState::Clean {
        return Err(ChannelError::transient(format!(
            "a {:?} is in progress in {dir}: finish or abort it (git status shows how), then retry",
            repo.state()
        )));
    }
    let head = repo.find_reference("HEAD").map_err(|e| perm("cannot read HEAD", e))?;
    match head.symbolic_target().ok().flatten() {
        None => {
            let at = head.target().map(|o| o.to_string()[..7].to_string()).unwrap_or_default();
            Err(ChannelError::transient(format!(
                "HEAD is detached (at {at}) in {dir}; handoff commits to branch {b}. Fix: `git -C {dir} switch {b}` \
                 (first `git -C {dir} switch -c <name>` if you made commits there you want to keep)",
                b = s.branch
            )))
        }
        Some(t) if t == s.branch_ref() => Ok(()),
        Some(t) => {
            let other_born = repo.find_reference(t).is_ok();
            let ours_born = repo.find_reference(&s.branch_ref()).is_ok();
            if !other_born && !ours_born {
                // A fresh `git init` whose default branch has another name: nothing to lose.
                repo.set_head(&s.branch_ref()).map_err(|e| perm("cannot set HEAD", e))?;
                return Ok(());
            }
            Err(ChannelError::transient(format!(
                "the clone {dir} is on branch {}, but handoff uses {b}: `git -C {dir} switch {b}`, or set [git] branch",
                t.trim_start_matches("refs/heads/"),
                b = s.branch
            )))
        }
    }
}

/// The local branch's commit (`None` before the first commit).
pub(crate) fn local_tip(repo: &Repository, s: &GitSettings) -> Option<Oid> {
    repo.refname_to_id(&s.branch_ref()).ok()
}

/// The remote-tracking branch's commit as of the last fetch.
pub(crate) fn remote_tip(repo: &Repository, s: &GitSettings) -> Option<Oid> {
    repo.refname_to_id(&s.tracking_ref()).ok()
}

/// Records that the remote branch is now at `id` (after our own successful push).
pub(crate) fn set_remote_tip(repo: &Repository, s: &GitSettings, id: Oid) -> Result<(), ChannelError> {
    repo.reference(&s.tracking_ref(), id, true, "handoff: pushed")
        .map_err(|e| perm("update remote-tracking branch", e))?;
    Ok(())
}

/// Moves the branch (and the checked-out files) from `old` to `new`, like a fast-forward: files the
/// user changed are kept, and if the update would overwrite one of them nothing moves and the error
/// names the files.
pub(crate) fn advance(repo: &Repository, s: &GitSettings, old: Option<Oid>, new: Oid) -> Result<(), ChannelError> {
    if old == Some(new) {
        return Ok(());
    }
    let target = repo.find_commit(new).map_err(|e| perm("advance", e))?;
    // only the paths the update changes are looked at in the working tree, not every file of a clone that
    // grows by a document per send (a first checkout looks at all)
    let changed = match old {
        Some(o) => Some(changed_paths(repo, o, &target).map_err(|e| perm("advance", e))?),
        None => None,
    };
    let update = Update::begin(repo, old, Some(new))?;
    let mut conflicts: Vec<String> = Vec::new();
    let result = if changed.as_ref().is_some_and(Vec::is_empty) {
        Ok(())
    } else {
        let mut co = git2::build::CheckoutBuilder::new();
        if let Some(paths) = &changed {
            co.disable_pathspec_match(true);
            for p in paths {
                co.path(p);
            }
        }
        co.safe().notify_on(git2::CheckoutNotificationType::CONFLICT).notify(|_, path, _, _, _| {
            if let Some(p) = path {
                conflicts.push(p.display().to_string());
            }
            true
        });
        repo.checkout_tree(target.as_object(), Some(&mut co))
    };
    if let Err(e) = result {
        let dir = s.checkout.display();
        return Err(if conflicts.is_empty() {
            perm(&format!("cannot update the files in {dir}"), e)
        } else {
            // a conflict stops the checkout before it writes anything
            update.done();
            ChannelError::transient(format!(
                "the clone {dir} has local changes that the update would overwrite ({}): nothing was changed; \
                 commit or stash them (`git -C {dir} stash`), then retry (`handoff flush`)",
                conflicts.join(", ")
            ))
        });
    }
    let name = s.branch_ref();
    let msg = "handoff: update";
    let moved = match old {
        Some(o) => repo.reference_matching(&name, new, true, o, msg),
        None => repo.reference(&name, new, false, msg),
    };
    moved.map_err(|e| perm(&format!("cannot move {}", s.branch), e))?;
    update.done();
    Ok(())
}

/// Every path that differs between the trees of `old` and `new`.
fn changed_paths(repo: &Repository, old: Oid, new: &git2::Commit) -> Result<Vec<std::path::PathBuf>, git2::Error> {
    let old_tree = repo.find_commit(old)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new.tree()?), None)?;
    let mut paths: Vec<std::path::PathBuf> = diff
        .deltas()
        .flat_map(|d| [d.old_file().path().map(Path::to_path_buf), d.new_file().path().map(Path::to_path_buf)])
        .flatten()
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Takes back [`advance`]`(old, new)` made moments ago: the files and the branch go back to `old`, or, when
/// the branch was unborn, the branch is removed with the files the commit added. Files the user changed
/// since are kept (then the error names them), and nothing moves when the branch is no longer at `new`.
pub(crate) fn retreat(repo: &Repository, s: &GitSettings, new: Oid, old: Option<Oid>) -> Result<(), ChannelError> {
    if let Some(old) = old {
        return advance(repo, s, Some(new), old);
    }
    let mut branch = repo.find_reference(&s.branch_ref()).map_err(|e| perm("retreat", e))?;
    if branch.target() != Some(new) {
        return Ok(());
    }
    let empty = repo.treebuilder(None).and_then(|b| b.write()).map_err(|e| perm("retreat", e))?;
    let empty = repo.find_tree(empty).map_err(|e| perm("retreat", e))?;
    let update = Update::begin(repo, Some(new), None)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.safe();
    repo.checkout_tree(empty.as_object(), Some(&mut co))
        .map_err(|e| perm(&format!("cannot take back the files in {}", s.checkout.display()), e))?;
    branch.delete().map_err(|e| perm(&format!("cannot remove {}", s.branch), e))?;
    update.done();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_compare_loosely_but_not_wrongly() {
        assert!(same_remote("/srv/h.git", "file:///srv/h.git"));
        assert!(same_remote("/srv/h.git/", "/srv/h"));
        assert!(same_remote("ssh://git@h/x.git", "ssh://git@h/x"));
        assert!(!same_remote("ssh://git@h/x.git", "ssh://git@h/y.git"));
    }
}
