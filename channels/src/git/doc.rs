//! One handoff document as a commit: its archive path, its message with trailers, and how a commit is
//! built (and rebuilt on a new base) from trees, with `latest.md` going to the newer document.

use super::{ARCHIVE_DIR, LATEST};
use crate::Parcel;
use git2::{Commit, Oid, Repository, Signature, Time, Tree};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of an ASCII-armored age message (an encrypted document's body).
const AGE_ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// What a handoff commit records about its document (also its message trailers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocMeta {
    /// Idempotency key.
    pub key: String,
    /// Sending machine.
    pub from: String,
    /// One-line title.
    pub title: String,
    /// Archived path in the repository.
    pub path: String,
    /// When it was written, RFC 3339 UTC with milliseconds (sorts as text).
    pub date: String,
}

/// One line, no control characters, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let words: Vec<&str> = flat.split_whitespace().collect();
    words.join(" ").chars().take(max).collect()
}

/// `Session recap: API!` → `session-recap-api`.
pub(crate) fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "document".into() } else { out }
}

/// RFC 3339 UTC with milliseconds.
pub(crate) fn format_date(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn parse_date(d: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(d).ok()
}

impl DocMeta {
    /// The record for a new document from `parcel`, written now; `taken` says whether a path is in use.
    pub fn new(parcel: &Parcel, now: SystemTime, taken: impl Fn(&str) -> bool) -> Self {
        let date = format_date(now);
        let title = one_line(parcel.title.as_deref().unwrap_or(""), 200);
        let title =
            if title.is_empty() { first_heading(&parcel.body).unwrap_or_else(|| "handoff".into()) } else { title };
        let machine = crate::names::safe_file_name(&parcel.from);
        let tag = &crate::hashing::sha256_hex(parcel.key.as_bytes())[..6];
        // 2026-11-24T05:30:12.345Z → handoffs/2026/11/2026-11-24T05-30-12Z-<machine>-<slug>-<tag>.md
        let stamp = format!("{}Z", date[..19].replace(':', "-"));
        let base = format!("{ARCHIVE_DIR}/{}/{}/{stamp}-{machine}-{}-{tag}", &date[..4], &date[5..7], slug(&title));
        // an end-to-end encrypted document (an armored age message) is archived as `.md.age`
        let ext = if parcel.body.trim_start().starts_with(AGE_ARMOR_BEGIN) { "md.age" } else { "md" };
        let mut path = format!("{base}.{ext}");
        let mut n = 2;
        while taken(&path) {
            path = format!("{base}-{n}.{ext}");
            n += 1;
        }
        Self { key: parcel.key.clone(), from: parcel.from.clone(), title, path, date }
    }

    /// The commit message: a subject, then the trailers handoff reads back.
    pub fn message(&self) -> String {
        format!(
            "handoff from {from}: {title}\n\nHandoff-Key: {key}\nHandoff-From: {from}\nHandoff-Title: {title}\nHandoff-Path: {path}\nHandoff-Date: {date}\n",
            from = one_line(&self.from, 100),
            title = self.title,
            key = one_line(&self.key, 200),
            path = self.path,
            date = self.date
        )
    }

    /// Reads the trailers back from a commit message; `None` for commits handoff did not make.
    pub fn parse(message: &str) -> Option<Self> {
        let get = |name: &str| {
            message
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")).map(str::to_string))
        };
        Some(Self {
            key: get("Handoff-Key")?,
            from: get("Handoff-From")?,
            title: get("Handoff-Title").unwrap_or_default(),
            path: get("Handoff-Path")?,
            date: get("Handoff-Date")?,
        })
    }

    /// The author line: the machine, at the document's time.
    pub fn author(&self) -> Result<Signature<'static>, git2::Error> {
        let name: String = one_line(&self.from, 100).chars().filter(|c| !matches!(c, '<' | '>')).collect();
        let email = format!("{}@handoff.invalid", crate::names::safe_file_name(&self.from));
        let secs = parse_date(&self.date).and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or(Duration::ZERO);
        Signature::new(&name, &email, &Time::new(secs.as_secs() as i64, 0))
    }
}

/// The first markdown heading of a document, as a fallback title.
fn first_heading(body: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix('#'))
        .map(|h| one_line(h.trim_start_matches('#'), 200))
        .filter(|h| !h.is_empty())
}

/// The date of the document currently in `latest.md` at `tip`: from the commit that last changed it
/// (its `Handoff-Date`, else its commit time). `None` when there is no `latest.md`.
pub(crate) fn latest_date(repo: &Repository, tip: &Commit) -> Result<Option<(String, Option<DocMeta>)>, git2::Error> {
    let Some(commit) = latest_commit(repo, tip)? else {
        return Ok(None);
    };
    let meta = DocMeta::parse(commit.message().unwrap_or(""));
    let date = match &meta {
        Some(m) => m.date.clone(),
        None => format_date(UNIX_EPOCH + Duration::from_secs(commit.time().seconds().max(0) as u64)),
    };
    Ok(Some((date, meta)))
}

/// The commit (following first parents from `tip`) that gave `latest.md` its current content.
pub(crate) fn latest_commit<'r>(repo: &'r Repository, tip: &Commit<'r>) -> Result<Option<Commit<'r>>, git2::Error> {
    let entry = |c: &Commit| -> Result<Option<Oid>, git2::Error> { Ok(c.tree()?.get_name(LATEST).map(|e| e.id())) };
    let Some(want) = entry(tip)? else {
        return Ok(None);
    };
    let mut c = repo.find_commit(tip.id())?;
    loop {
        match c.parents().next() {
            Some(p) if entry(&p)? == Some(want) => c = p,
            _ => return Ok(Some(c)),
        }
    }
}

/// How much older than its key a commit may look and still be searched for it: the clocks of the
/// machines sharing the repository may disagree by this much.
const KEY_CLOCK_SKEW_SECS: i64 = 7 * 24 * 3600;

/// When a key handoff made was made (its job id is a UUIDv7: the first 48 bits are Unix milliseconds), in
/// Unix seconds; `None` for any other key.
fn key_made_at(key: &str) -> Option<i64> {
    let id = key.split('-').next()?;
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    if id.len() != 32 || uuid.get_version_num() != 7 {
        return None;
    }
    Some((u64::from_str_radix(&id[..12], 16).ok()? / 1000) as i64)
}

/// Finds the commit carrying `Handoff-Key: key`, walking back from `tip` (newest first). For one of
/// handoff's own keys the walk stops at commits older than the key (less [`KEY_CLOCK_SKEW_SECS`]): its
/// commit cannot be older than its job, and a send should not read the whole history of a repository that
/// grows by a document per send.
pub(crate) fn find_by_key(
    repo: &Repository,
    tip: Option<Oid>,
    key: &str,
) -> Result<Option<(Oid, DocMeta)>, git2::Error> {
    let Some(tip) = tip else { return Ok(None) };
    let needle = format!("\nHandoff-Key: {}\n", one_line(key, 200));
    let oldest = key_made_at(key).map(|t| t - KEY_CLOCK_SKEW_SECS);
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TIME)?;
    walk.push(tip)?;
    for id in walk {
        let id = id?;
        let commit = repo.find_commit(id)?;
        if oldest.is_some_and(|o| commit.time().seconds() < o) {
            break;
        }
        let msg = String::from_utf8_lossy(commit.message_bytes());
        if msg.contains(&needle)
            && let Some(meta) = DocMeta::parse(&msg)
        {
            return Ok(Some((id, meta)));
        }
    }
    Ok(None)
}

/// `base` with `blob` placed at `path` (creating folders).
fn tree_with(repo: &Repository, base: Option<&Tree>, path: &[&str], blob: Oid) -> Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(base)?;
    match path {
        [name] => {
            builder.insert(name, blob, 0o100644)?;
        }
        [dir, rest @ ..] => {
            let sub = match base.and_then(|t| t.get_name(dir)) {
                Some(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(repo.find_tree(e.id())?),
                _ => None,
            };
            let sub_id = tree_with(repo, sub.as_ref(), rest, blob)?;
            builder.insert(dir, sub_id, 0o040000)?;
        }
        [] => return Err(git2::Error::from_str("empty path")),
    }
    builder.write()
}

/// Builds the commit for `meta` (content `blob`) on top of `base`: the archived copy always, and
/// `latest.md` unless `base` already holds a newer document there. Returns the new commit.
pub(crate) fn build(
    repo: &Repository,
    base: Option<&Commit>,
    meta: &DocMeta,
    blob: Oid,
    author: &Signature,
) -> Result<Oid, git2::Error> {
    let base_tree = base.map(|c| c.tree()).transpose()?;
    let parts: Vec<&str> = meta.path.split('/').collect();
    let with_archive = tree_with(repo, base_tree.as_ref(), &parts, blob)?;
    let tree = repo.find_tree(with_archive)?;
    // the same text already in latest.md gives the same tree whichever is newer (no need to look back)
    let same_latest = base_tree.as_ref().and_then(|t| t.get_name(LATEST)).is_some_and(|e| e.id() == blob);
    let newer_there = match base {
        Some(b) if !same_latest => latest_date(repo, b)?.is_some_and(|(date, _)| date > meta.date),
        _ => false,
    };
    let tree_id = if newer_there { with_archive } else { tree_with(repo, Some(&tree), &[LATEST], blob)? };
    let tree = repo.find_tree(tree_id)?;
    let committer =
        Signature::now(author.name().unwrap_or("handoff"), author.email().unwrap_or("handoff@handoff.invalid"))?;
    let parents: Vec<&Commit> = base.into_iter().collect();
    repo.commit(None, author, &committer, &meta.message(), &tree, &parents)
}

/// Rebuilds handoff commit `c` on top of `base` (a replay after the remote moved on).
pub(crate) fn replay(repo: &Repository, c: &Commit, base: &Commit) -> Result<Oid, git2::Error> {
    let meta =
        DocMeta::parse(c.message().unwrap_or("")).ok_or_else(|| git2::Error::from_str("not a handoff commit"))?;
    let blob = c.tree()?.get_path(std::path::Path::new(&meta.path))?.id();
    let taken = base.tree()?.get_path(std::path::Path::new(&meta.path)).is_ok();
    if taken {
        // Same key, same path already there (another copy of our own commit): nothing to add.
        return Ok(base.id());
    }
    build(repo, Some(base), &meta, blob, &c.author())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parcel(key: &str, title: Option<&str>, body: &str) -> Parcel {
        Parcel {
            key: key.into(),
            from: "mac-studio".into(),
            to: "any".into(),
            kind: crate::ParcelKind::Document,
            title: title.map(str::to_string),
            body: body.into(),
            tags: vec![],
            file: None,
        }
    }

    #[test]
    fn archive_paths_are_dated_name_the_sender_and_never_collide() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_498_212_345);
        let m = DocMeta::new(&parcel("k1", Some("Session recap: API!"), "x"), t, |_| false);
        assert_eq!(m.date, "2026-11-24T05:30:12.345Z");
        assert!(
            m.path.starts_with("handoffs/2026/11/2026-11-24T05-30-12Z-mac-studio-session-recap-api-"),
            "{}",
            m.path
        );
        let other = DocMeta::new(&parcel("k2", Some("Session recap: API!"), "x"), t, |_| false);
        assert_ne!(m.path, other.path, "different keys, same second and title");
        let bumped = DocMeta::new(&parcel("k1", Some("Session recap: API!"), "x"), t, |p| p == m.path);
        assert_ne!(bumped.path, m.path);
        assert!(bumped.path.ends_with("-2.md"));
    }

    #[test]
    fn only_handoffs_own_keys_bound_the_search_and_by_their_time() {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let at = key_made_at(&format!("{id}-0")).expect("a job's key");
        assert!((at - now).abs() <= 1, "{at} vs {now}");
        assert_eq!(key_made_at("k1"), None);
        assert_eq!(key_made_at(&format!("{}-0", uuid::Uuid::new_v4().simple())), None, "not a v7");
    }

    #[test]
    fn trailers_round_trip_and_titles_cannot_inject_lines() {
        let m = DocMeta::new(&parcel("key-1", Some("evil\nHandoff-Key: other"), "b"), SystemTime::now(), |_| false);
        assert_eq!(m.title, "evil Handoff-Key: other");
        assert_eq!(DocMeta::parse(&m.message()), Some(m.clone()));
        assert_eq!(DocMeta::parse("fix typo\n\nSigned-off-by: x"), None);
        let untitled = DocMeta::new(&parcel("k", None, "intro\n## The plan\n"), SystemTime::now(), |_| false);
        assert_eq!(untitled.title, "The plan");
    }
}
