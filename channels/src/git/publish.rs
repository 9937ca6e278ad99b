//! Sending a document: fetch, bring the local branch up to date, commit (once per key), push with
//! bounded fetch-replay-push retries.

use super::doc::{self, DocMeta};
use super::remote::{self, Push};
use super::{GitSettings, clone};
use crate::{ChannelError, Parcel, Receipt};
use git2::{Oid, Repository};
use std::time::{Duration, SystemTime};

/// Push attempts (each after a fetch and replay) before the document is left queued.
const MAX_PUSH_TRIES: u32 = 12;

fn perm(what: &str, e: git2::Error) -> ChannelError {
    ChannelError::permanent(format!("{what}: {}", e.message()))
}

fn short(id: Oid) -> String {
    id.to_string()[..7].to_string()
}

/// Brings the local branch up to date with the remote-tracking branch: fast-forward when behind; when
/// both moved, replays handoff's own unpushed commits on top. A local commit handoff did not make is
/// never rewritten or pushed: that is an error naming it. Returns the new local tip.
pub(crate) fn integrate(repo: &Repository, s: &GitSettings) -> Result<Option<Oid>, ChannelError> {
    let (local, upstream) = (clone::local_tip(repo, s), clone::remote_tip(repo, s));
    let (l, r) = match (local, upstream) {
        (None, None) => return Ok(None),
        (None, Some(r)) => {
            clone::advance(repo, s, None, r)?;
            return Ok(Some(r));
        }
        (Some(l), r) => (l, r),
    };
    if Some(l) == r {
        return Ok(Some(l));
    }
    if let Some(r) = r
        && repo.graph_descendant_of(r, l).map_err(|e| perm("integrate", e))?
    {
        clone::advance(repo, s, Some(l), r)?;
        return Ok(Some(r));
    }
    // Local commits the remote does not have, oldest first: all must be handoff's.
    let mut walk = repo.revwalk().map_err(|e| perm("integrate", e))?;
    walk.push(l).map_err(|e| perm("integrate", e))?;
    if let Some(r) = r {
        walk.hide(r).map_err(|e| perm("integrate", e))?;
    }
    let mut mine: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(|e| perm("integrate", e))?;
    mine.reverse();
    for id in &mine {
        let c = repo.find_commit(*id).map_err(|e| perm("integrate", e))?;
        if c.parent_count() > 1 || DocMeta::parse(c.message().unwrap_or("")).is_none() {
            let dir = s.checkout.display();
            return Err(ChannelError::transient(format!(
                "the clone {dir} has a local commit handoff did not make ({} {:?}) that is not on the remote; handoff \
                 never pushes or rewrites your commits: push them yourself (`git -C {dir} pull --rebase && git -C {dir} push`) \
                 or move them to another branch, then retry",
                short(*id),
                c.summary().ok().flatten().unwrap_or("")
            )));
        }
    }
    let Some(r) = r else { return Ok(Some(l)) };
    let mut base = repo.find_commit(r).map_err(|e| perm("integrate", e))?;
    for id in mine {
        let c = repo.find_commit(id).map_err(|e| perm("integrate", e))?;
        let next = doc::replay(repo, &c, &base).map_err(|e| perm("replay", e))?;
        base = repo.find_commit(next).map_err(|e| perm("replay", e))?;
    }
    clone::advance(repo, s, Some(l), base.id())?;
    Ok(Some(base.id()))
}

/// Fetches; a transient failure is returned as `Err` for the caller to decide (commit offline or not).
fn fetch_and_integrate(repo: &Repository, s: &GitSettings) -> Result<Result<Option<Oid>, ChannelError>, ChannelError> {
    match remote::fetch(repo, s) {
        Ok(_) => Ok(Ok(integrate(repo, s)?)),
        Err(e) if e.is_transient() => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

fn receipt(s: &GitSettings, meta: &DocMeta, id: Oid, note: &str) -> Receipt {
    Receipt {
        channel: super::NAME.into(),
        uri: Some(format!("git:{}@{id}", meta.path)),
        message_id: None,
        detail: Some(format!("commit {} on {} of {} ({note})", short(id), s.branch, s.remote_shown())),
        sha256: None,
    }
}

/// Builds and checks out the commit for `parcel` on top of the local tip `tip`.
fn commit_document(
    repo: &Repository,
    s: &GitSettings,
    parcel: &Parcel,
    tip: Option<Oid>,
) -> Result<(Oid, DocMeta), ChannelError> {
    let (id, meta) = build_commit(repo, parcel, tip)?;
    clone::advance(repo, s, tip, id)?;
    Ok((id, meta))
}

/// Writes the objects of the commit for `parcel` on top of `tip`, without moving any branch (an
/// unused one is garbage `git gc` removes).
fn build_commit(repo: &Repository, parcel: &Parcel, tip: Option<Oid>) -> Result<(Oid, DocMeta), ChannelError> {
    let base = tip.map(|t| repo.find_commit(t)).transpose().map_err(|e| perm("commit", e))?;
    let base_tree = base.as_ref().map(|b| b.tree()).transpose().map_err(|e| perm("commit", e))?;
    let taken = |p: &str| base_tree.as_ref().is_some_and(|t| t.get_path(std::path::Path::new(p)).is_ok());
    let meta = DocMeta::new(parcel, SystemTime::now(), taken);
    let blob = repo.blob(parcel.body.as_bytes()).map_err(|e| perm("store the document", e))?;
    let author = meta.author().map_err(|e| perm("author", e))?;
    let id = doc::build(repo, base.as_ref(), &meta, blob, &author).map_err(|e| perm("commit", e))?;
    Ok((id, meta))
}

fn queued_offline(s: &GitSettings, id: Oid, why: &ChannelError) -> ChannelError {
    ChannelError::transient(format!(
        "committed {} locally in {}, but {}; it will be pushed on the next run",
        short(id),
        s.checkout.display(),
        why.message
    ))
}

fn refused(s: &GitSettings, local: Oid, why: &str) -> ChannelError {
    ChannelError::transient(format!(
        "the server {} refused the push of {}: {why}; the commit stays in {} and stays queued",
        s.remote_shown(),
        short(local),
        s.checkout.display()
    ))
}

/// Delivers one document (see the module docs of `git` for the whole story). `new`: the key was never
/// handed out before ([`crate::Channel::deliver_new`]), so the history is not searched for a commit
/// carrying it (a week of commits, read one by one).
pub(crate) fn deliver(s: &GitSettings, parcel: &Parcel, new: bool) -> Result<Receipt, ChannelError> {
    let delivered = deliver_locked(s, parcel, new);
    // a connection started ahead (`Channel::preconnect`) that this delivery did not use is hung up
    super::preconnect::discard();
    delivered
}

fn deliver_locked(s: &GitSettings, parcel: &Parcel, new: bool) -> Result<Receipt, ChannelError> {
    let _lock = s.lock()?;
    let repo = clone::open(s)?;
    // a key never handed out has no commit, until this delivery makes one
    let mut unseen = new;
    if remote::local_path(&s.remote).is_none()
        && let Some(receipt) = deliver_on_one_connection(&repo, s, parcel, &mut unseen)?
    {
        return Ok(receipt);
    }
    let offline = fetch_and_integrate(&repo, s)?.err();
    let tip = clone::local_tip(&repo, s);
    let (id, meta) = match earlier_copy(&repo, tip, parcel, unseen)? {
        Some(found) => found,
        None => commit_document(&repo, s, parcel, tip)?,
    };
    if let Some(e) = offline {
        return Err(queued_offline(s, id, &e));
    }
    push_with_retries(&repo, s, &meta)
}

/// The common case over the network, as cheap as `git commit && git push`: the clone is in step with
/// what was last fetched and the server still has exactly that, so commit and push on one connection, no
/// fetch. `Ok(None)` = something moved (or this is a retry): take the full fetch-integrate-push path, which
/// replays the commit made here onto what moved.
/// The commit an earlier try left for `parcel`'s key, looked for from `tip`; none is looked for while the
/// key is `unseen` (never handed out, and not committed by this delivery yet).
fn earlier_copy(
    repo: &Repository,
    tip: Option<Oid>,
    parcel: &Parcel,
    unseen: bool,
) -> Result<Option<(Oid, DocMeta)>, ChannelError> {
    if unseen {
        return Ok(None);
    }
    doc::find_by_key(repo, tip, &parcel.key).map_err(|e| perm("look for an earlier copy", e))
}

fn deliver_on_one_connection(
    repo: &Repository,
    s: &GitSettings,
    parcel: &Parcel,
    unseen: &mut bool,
) -> Result<Option<Receipt>, ChannelError> {
    let (local, upstream) = (clone::local_tip(repo, s), clone::remote_tip(repo, s));
    if local != upstream || earlier_copy(repo, local, parcel, *unseen)?.is_some() {
        return Ok(None);
    }
    // committed (and checked out) before the server answers, as `git commit` comes before `git push`: over
    // ssh this runs while the handshake started ahead does
    let (id, meta) = commit_document(repo, s, parcel, local)?;
    // from here on the key has a commit: the long way below searches for it
    *unseen = false;
    match remote::push_connected(repo, s, |head| head == upstream) {
        Ok(Some(Push::Pushed)) => {
            clone::set_remote_tip(repo, s, id)?;
            Ok(Some(receipt(s, &meta, id, "pushed")))
        }
        Ok(Some(Push::Refused(why))) => Err(refused(s, id, &why)),
        Ok(Some(Push::Stale(_)) | None) => Ok(None),
        Err(e) if e.is_transient() => Err(queued_offline(s, id, &e)),
        Err(e) => {
            // refused for good before anything was pushed (credentials, no such repository): the commit
            // goes, so a later send cannot publish a document this one reported failed
            if let Err(undo) = clone::retreat(repo, s, id, local) {
                tracing::warn!(error = %undo, "could not take back the local commit of a failed send");
            }
            Err(e)
        }
    }
}

fn jitter(attempt: u32) -> Duration {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    let cap = 40 + 60 * u64::from(attempt.min(8));
    Duration::from_millis(10 + r % cap)
}

/// Pushes the local branch; on a stale push fetches, replays and tries again, up to [`MAX_PUSH_TRIES`].
fn push_with_retries(repo: &Repository, s: &GitSettings, meta: &DocMeta) -> Result<Receipt, ChannelError> {
    let mut last = String::new();
    for attempt in 1..=MAX_PUSH_TRIES {
        let local = clone::local_tip(repo, s).ok_or_else(|| ChannelError::permanent("nothing to push"))?;
        let upstream = clone::remote_tip(repo, s);
        let outcome = if upstream == Some(local) { Push::Pushed } else { remote::push(repo, s, local, upstream)? };
        match outcome {
            Push::Pushed => {
                clone::set_remote_tip(repo, s, local)?;
                let (id, meta) = doc::find_by_key(repo, Some(local), &meta.key)
                    .map_err(|e| perm("find the pushed commit", e))?
                    .ok_or_else(|| {
                        ChannelError::permanent("the pushed branch lost the document (please report this)")
                    })?;
                let note = if attempt == 1 { "pushed".to_string() } else { format!("pushed after {attempt} tries") };
                return Ok(receipt(s, &meta, id, &note));
            }
            Push::Refused(why) => return Err(refused(s, local, &why)),
            Push::Stale(why) => {
                last = why;
                std::thread::sleep(jitter(attempt));
                if let Err(e) = fetch_and_integrate(repo, s)? {
                    return Err(e.context(format!("committed {} locally; the push will be retried", short(local))));
                }
            }
        }
    }
    Err(ChannelError::transient(format!(
        "the branch {} on {} kept moving: gave up after {MAX_PUSH_TRIES} push attempts ({last}); the commit stays queued",
        s.branch,
        s.remote_shown()
    )))
}
