//! Reading the repository: what is new since the last sync, one document by address, and health.

use super::doc::{self, DocMeta};
use super::publish::integrate;
use super::{ARCHIVE_DIR, GitSettings, LATEST, clone, remote};
use crate::{ChannelError, Health, Incoming, SyncReport};
use git2::{Delta, Oid, Repository, Tree};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn perm(what: &str, e: git2::Error) -> ChannelError {
    ChannelError::permanent(format!("{what}: {}", e.message()))
}

/// Who wrote what: metadata of documents added by the commits in `tip` minus `since`.
fn metadata(repo: &Repository, tip: Oid, since: Option<Oid>) -> Result<HashMap<String, DocMeta>, git2::Error> {
    let mut out = HashMap::new();
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    if let Some(s) = since {
        let _ = walk.hide(s);
    }
    for id in walk {
        let c = repo.find_commit(id?)?;
        if let Some(meta) = DocMeta::parse(c.message().unwrap_or("")) {
            out.entry(meta.path.clone()).or_insert(meta);
            continue;
        }
        // A commit made by hand: its author and time stand for the documents it added.
        let parent_tree = c.parents().next().map(|p| p.tree()).transpose()?;
        let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&c.tree()?), None)?;
        for d in diff.deltas().filter(|d| d.status() == Delta::Added) {
            if let Some(p) = d.new_file().path().and_then(|p| p.to_str()) {
                let date = doc::format_date(UNIX_EPOCH + Duration::from_secs(c.time().seconds().max(0) as u64));
                out.entry(p.to_string()).or_insert_with(|| DocMeta {
                    key: String::new(),
                    from: c.author().name().unwrap_or("").to_string(),
                    title: String::new(),
                    path: p.to_string(),
                    date,
                });
            }
        }
    }
    Ok(out)
}

fn title_of(path: &str) -> String {
    Path::new(path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}

/// Clone-or-fetch, fast-forward, and report the documents new since `cursor` (a commit id this function
/// returned before) plus `latest.md` when it changed and was written by another machine.
pub(crate) fn sync(s: &GitSettings, cursor: Option<&str>) -> Result<SyncReport, ChannelError> {
    let _lock = s.lock()?;
    let repo = clone::open(s)?;
    let mut report = SyncReport::default();
    match remote::fetch(&repo, s) {
        Ok(_) => {}
        Err(e) if e.is_transient() => {
            report.notes.push(format!("git: {}; showing what the local clone has", e.message))
        }
        Err(e) => return Err(e),
    }
    let Some(tip) = integrate(&repo, s)? else {
        report.notes.push(format!("git: the repository {} has no documents yet", s.remote_shown()));
        return Ok(report);
    };
    let tip_commit = repo.find_commit(tip).map_err(|e| perm("sync", e))?;
    let tip_tree = tip_commit.tree().map_err(|e| perm("sync", e))?;
    let since = cursor.and_then(|c| Oid::from_str(c).ok()).and_then(|id| repo.find_commit(id).ok());
    if cursor.is_some() && since.is_none() {
        report
            .notes
            .push("git: the last sync's commit is not in this repository any more; listing every document".into());
    }
    let since_tree: Option<Tree> = since.as_ref().map(|c| c.tree()).transpose().map_err(|e| perm("sync", e))?;
    let diff = repo.diff_tree_to_tree(since_tree.as_ref(), Some(&tip_tree), None).map_err(|e| perm("sync", e))?;
    let added: Vec<String> = diff
        .deltas()
        .filter(|d| d.status() == Delta::Added)
        .filter_map(|d| d.new_file().path().and_then(|p| p.to_str()).map(str::to_string))
        .filter(|p| p.starts_with(&format!("{ARCHIVE_DIR}/")) && (p.ends_with(".md") || p.ends_with(".md.age")))
        .collect();
    let meta = metadata(&repo, tip, since.as_ref().map(|c| c.id())).map_err(|e| perm("sync", e))?;
    let mut items: Vec<Incoming> = added
        .into_iter()
        .filter_map(|path| {
            let m = meta.get(&path);
            if m.is_some_and(|m| m.from == s.machine) {
                return None;
            }
            Some(Incoming {
                channel: super::NAME.into(),
                title: m.map(|m| m.title.clone()).filter(|t| !t.is_empty()).unwrap_or_else(|| title_of(&path)),
                from: m.map(|m| m.from.clone()).filter(|f| !f.is_empty()),
                ts: m.map(|m| m.date.clone()),
                location: s.checkout.join(&path).display().to_string(),
                content: None,
            })
        })
        .collect();
    items.sort_by(|a, b| (&a.ts, &a.location).cmp(&(&b.ts, &b.location)));
    report.items = items;

    let now_latest = tip_tree.get_name(LATEST).map(|e| e.id());
    let then_latest = since_tree.as_ref().and_then(|t| t.get_name(LATEST).map(|e| e.id()));
    if let Some(blob_id) = now_latest.filter(|id| Some(*id) != then_latest) {
        let by = doc::latest_date(&repo, &tip_commit).map_err(|e| perm("sync", e))?.and_then(|(_, m)| m);
        if by.as_ref().is_none_or(|m| m.from != s.machine) {
            let blob = repo.find_blob(blob_id).map_err(|e| perm("read latest.md", e))?;
            let content = String::from_utf8_lossy(blob.content()).into_owned();
            report.notes.push(match &by {
                Some(m) => format!("git: {LATEST} changed: {:?} from {}", m.title, m.from),
                None => format!("git: {LATEST} changed"),
            });
            // Usually latest.md is one of the new documents: show its content there rather than twice.
            let same = by.as_ref().and_then(|m| {
                let archived = s.checkout.join(&m.path).display().to_string();
                report.items.iter_mut().find(|i| i.location == archived)
            });
            match same {
                Some(item) => item.content = Some(content),
                None => report.items.push(Incoming {
                    channel: super::NAME.into(),
                    title: by.as_ref().map(|m| m.title.clone()).unwrap_or_else(|| LATEST.into()),
                    from: by.as_ref().map(|m| m.from.clone()),
                    ts: by.as_ref().map(|m| m.date.clone()),
                    location: s.checkout.join(LATEST).display().to_string(),
                    content: Some(content),
                }),
            }
        }
    }
    report.cursor = Some(tip.to_string());
    Ok(report)
}

/// Writes the document at `path` as of `commit` to `dest` (fetching first when the commit is unknown).
/// Refuses anything but a plain file (a blob, not a tree or a submodule) of at most `max` bytes.
pub(crate) fn fetch(
    s: &GitSettings,
    path: &str,
    commit: &str,
    dest: &Path,
    max: u64,
) -> Result<crate::Fetched, ChannelError> {
    let _lock = s.lock()?;
    let repo = clone::open(s)?;
    fn find<'r>(repo: &'r Repository, commit: &str) -> Option<git2::Commit<'r>> {
        repo.revparse_single(commit).and_then(|o| o.peel_to_commit()).ok()
    }
    let c = match find(&repo, commit) {
        Some(c) => c,
        None => {
            remote::fetch(&repo, s)?;
            find(&repo, commit).ok_or_else(|| {
                ChannelError::permanent(format!("commit {commit} is not in {} (branch {})", s.remote_shown(), s.branch))
            })?
        }
    };
    let entry = c
        .tree()
        .and_then(|t| t.get_path(Path::new(path)))
        .map_err(|_| ChannelError::permanent(format!("{path} is not in commit {commit} of {}", s.remote_shown())))?;
    if entry.kind() != Some(git2::ObjectType::Blob) {
        return Err(ChannelError::refused(format!("refusing git:{path}@{commit}: it is not a file")));
    }
    let blob = repo.find_blob(entry.id()).map_err(|e| perm(&format!("read {path}"), e))?;
    crate::receive::check_size(&format!("git:{path}@{commit}"), blob.size() as u64, max)?;
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.part", uuid::Uuid::new_v4().simple()));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, blob.content())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let sha256 = crate::hashing::sha256_hex(blob.content());
    Ok(crate::Fetched { size: blob.content().len() as u64, sha256 })
}

/// `doctor`: the remote answers (ls-remote), accepts a push connection, and the clone is usable.
pub(crate) fn health(s: &GitSettings) -> Result<Health, ChannelError> {
    let state = remote::probe(s)?;
    let at = match state.tip {
        Some(id) => format!("branch {} at {}", s.branch, &id.to_string()[..7]),
        None => format!("branch {} not created yet", s.branch),
    };
    if s.checkout.exists() {
        let _lock = s.lock()?;
        clone::open(s)?;
    }
    let write = if state.writable { "push accepted" } else { "push NOT accepted (read-only?)" };
    Ok(Health {
        check: format!("git remote {} reachable, {at}", s.remote_shown()),
        detail: Some(format!("{write}; clone at {}", s.checkout.display())),
    })
}
