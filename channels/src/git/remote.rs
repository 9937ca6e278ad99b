//! Talking to the remote: fetch, push (with rejection detection), ls-remote, error kinds.

use super::{GitSettings, ssh};
use crate::ChannelError;
use git2::{ErrorClass, ErrorCode, Oid, Repository};
use std::cell::RefCell;
use std::path::PathBuf;

/// The outcome of one push attempt that reached the server.
#[derive(Debug)]
pub(crate) enum Push {
    /// The branch now points at our commit.
    Pushed,
    /// The branch moved on the server since our fetch: fetch, replay, try again.
    Stale(String),
    /// The server refused the update for another reason (a hook, a protected branch): the reason.
    Refused(String),
}

/// The filesystem path of a local remote (`/srv/h.git`, `./h.git`, `file:///srv/h.git`), `None` for
/// network remotes (`ssh://`, `https://`, `user@host:path`).
pub(crate) fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(p) = url.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    if url.contains("://") {
        return None;
    }
    let scp_like = match url.split_once(':') {
        Some((host, _)) => !host.contains('/') && host.len() > 1,
        None => false,
    };
    (!scp_like).then(|| PathBuf::from(url))
}

/// The network remote for `s` (its URL as configured: ssh reads the user's ssh config itself).
fn network_remote<'r>(repo: &'r Repository, s: &GitSettings) -> Result<git2::Remote<'r>, ChannelError> {
    super::http::use_repo_config(repo.path());
    let _ = ssh::take_failure();
    repo.remote_anonymous(&s.remote).map_err(|e| {
        ChannelError::permanent(format!("[git] remote {} is not a usable git URL: {}", s.remote_shown(), e.message()))
    })
}

/// The keys ssh offers for `host` (`identityfile` of `ssh -G host`, those that exist), for an error message.
fn keys_ssh_offers(host: &str) -> Vec<String> {
    let Ok(out) = std::process::Command::new(crate::ssh::program("ssh"))
        .arg("-G")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let home = crate::paths::home_dir();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("identityfile "))
        .filter(|f| {
            let path = match (f.strip_prefix("~/"), &home) {
                (Some(rest), Some(h)) => h.join(rest),
                _ => PathBuf::from(f),
            };
            path.is_file()
        })
        .map(str::to_string)
        .collect()
}

/// An ssh failure (what ssh or the remote git printed) as a channel error with the right kind and a fix.
fn classify_ssh(failure: ssh::SshFailure, what: &str, remote: &str) -> ChannelError {
    let label = format!("git remote {remote}");
    if failure.code != Some(255) {
        // ssh connected; the remote command failed (no repository there, no git on the server)
        let said: Vec<&str> = failure.stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return ChannelError::permanent(format!(
            "{what}: {label}: the server's git failed: {}",
            if said.is_empty() { "it said nothing".to_string() } else { said.join(" / ") }
        ));
    }
    let e = crate::ssh::errors::classify_as(&label, &format!("ssh {}", failure.host), &failure.stderr);
    match e.kind {
        crate::ErrorKind::Auth => {
            let keys = keys_ssh_offers(&failure.host);
            ChannelError::auth(format!(
                "{what}: authentication to {remote} failed: {} (keys ssh offers for {}: {}; and any in ssh-agent)",
                e.message,
                failure.host,
                if keys.is_empty() { "none found".to_string() } else { keys.join(", ") }
            ))
        }
        _ => ChannelError { message: format!("{what}: {}", e.message), ..e },
    }
}

/// Turns a libgit2 failure talking to the remote into a channel error with the right kind and a fix.
fn classify(e: git2::Error, what: &str, s: &GitSettings) -> ChannelError {
    let remote = s.remote_shown();
    if let Some(failure) = ssh::take_failure() {
        return classify_ssh(failure, what, &remote);
    }
    let msg = e.message().replace(&s.remote, &remote);
    // from handoff's http(s) transport, whose messages already name the URL (without its password)
    if e.class() == ErrorClass::Http && e.code() == ErrorCode::Auth {
        return ChannelError::auth(format!(
            "{what}: {msg}. Fix: check the token, or configure a git credential helper that knows one for {remote} \
             (for example `git config --global credential.helper store`, then store it once with \
             `git credential approve`)"
        ));
    }
    if e.class() == ErrorClass::Ssl && e.code() == ErrorCode::Certificate {
        return ChannelError::permanent(format!("{what} ({remote}): {msg}"));
    }
    // the transport's other answers it cannot retry (404, not a git server, a bad URL); transient HTTP
    // failures (5xx, connection errors) come as `Net`
    if e.class() == ErrorClass::Http {
        return ChannelError::permanent(format!("{what} ({remote}): {msg}"));
    }
    match e.class() {
        // the ssh program could not start, or the URL is refused: retrying does not help
        ErrorClass::Ssh => ChannelError::permanent(format!("{what} ({remote}): {msg}")),
        ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssl | ErrorClass::Callback => {
            ChannelError::transient(format!("{what}: {remote} is not reachable: {msg}"))
        }
        _ => ChannelError::permanent(format!("{what} ({remote}): {msg}")),
    }
}

fn callbacks<'a>() -> git2::RemoteCallbacks<'a> {
    git2::RemoteCallbacks::new()
}

/// For a local remote: the bare repository, or a transient error when it is not there (an unmounted disk).
fn open_local(s: &GitSettings, path: &std::path::Path) -> Result<Repository, ChannelError> {
    if !path.exists() {
        return Err(ChannelError::transient(format!(
            "the remote {} is not reachable: {} does not exist",
            s.remote_shown(),
            path.display()
        )));
    }
    Repository::open_bare(path).map_err(|e| {
        ChannelError::permanent(format!(
            "the remote {} is not a bare git repository: {}",
            s.remote_shown(),
            e.message()
        ))
    })
}

/// Fetches the branch into `refs/remotes/origin/<branch>`; returns its new value (`None` while the
/// remote has no such branch).
pub(crate) fn fetch(repo: &Repository, s: &GitSettings) -> Result<Option<Oid>, ChannelError> {
    // a connection started ahead shows the refs as they were before this fetch: a push on it would be
    // refused as stale, so the push after a fetch makes its own
    super::preconnect::discard();
    if let Some(path) = local_path(&s.remote) {
        open_local(s, &path)?;
    }
    let mut remote = match local_path(&s.remote) {
        Some(_) => repo.find_remote("origin").map_err(|e| ChannelError::permanent(e.message().to_string()))?,
        None => network_remote(repo, s)?,
    };
    let mut opts = git2::FetchOptions::new();
    opts.remote_callbacks(callbacks()).download_tags(git2::AutotagOption::None);
    let spec = format!("+{}:{}", s.branch_ref(), s.tracking_ref());
    remote.fetch(&[spec], Some(&mut opts), Some("handoff: fetch")).map_err(|e| classify(e, "fetch", s))?;
    drop(opts);
    Ok(repo.refname_to_id(&s.tracking_ref()).ok())
}

/// Pushes `tip` to the remote branch, which we last saw at `expected`. Never forces.
pub(crate) fn push(repo: &Repository, s: &GitSettings, tip: Oid, expected: Option<Oid>) -> Result<Push, ChannelError> {
    match local_path(&s.remote) {
        Some(path) => push_local(repo, s, &path, tip, expected),
        None => push_network(repo, s),
    }
}

fn push_network(repo: &Repository, s: &GitSettings) -> Result<Push, ChannelError> {
    Ok(push_connected(repo, s, |_| true)?.unwrap_or(Push::Stale("not pushed".into())))
}

/// Pushes over ONE connection: connects for push, reads the branch's commit as the server advertises it,
/// lets `go_ahead` decide with it (`false` = stop, nothing pushed, `None` returned), then pushes on the
/// same connection. Saves the separate fetch when nothing moved.
pub(crate) fn push_connected(
    repo: &Repository,
    s: &GitSettings,
    go_ahead: impl FnOnce(Option<Oid>) -> bool,
) -> Result<Option<Push>, ChannelError> {
    let mut remote = network_remote(repo, s)?;
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    let remote_says = RefCell::new(String::new());
    let branch = s.branch_ref();
    let mut conn =
        remote.connect_auth(git2::Direction::Push, Some(callbacks()), None).map_err(|e| classify(e, "connect", s))?;
    let head = conn.list().map_err(|e| classify(e, "list", s))?.iter().find(|h| h.name() == branch).map(|h| h.oid());
    if !go_ahead(head) {
        return Ok(None);
    }
    let result = {
        let mut cb = callbacks();
        // A refused ref is NOT an error from push(): libgit2 reports it only here.
        cb.push_update_reference(|_refname, status| {
            if let Some(reason) = status {
                *rejected.borrow_mut() = Some(reason.to_string());
            }
            Ok(())
        });
        cb.sideband_progress(|data| {
            let mut said = remote_says.borrow_mut();
            if said.len() < 4000 {
                said.push_str(&String::from_utf8_lossy(data));
            }
            true
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(cb);
        let spec = format!("{branch}:{branch}");
        conn.remote().push(&[spec], Some(&mut opts))
    };
    drop(conn);
    interpret_push(result, s, rejected.into_inner(), remote_says.into_inner()).map(Some)
}

fn interpret_push(
    result: Result<(), git2::Error>,
    s: &GitSettings,
    rejected: Option<String>,
    remote_says: String,
) -> Result<Push, ChannelError> {
    if let Err(e) = result {
        if e.code() == ErrorCode::NotFastForward {
            tracing::info!("the remote branch moved since the fetch (push not fast-forward)");
            return Ok(Push::Stale(e.message().to_string()));
        }
        return Err(classify(e, "push", s));
    }
    let Some(reason) = rejected else {
        return Ok(Push::Pushed);
    };
    let stale =
        ["non-fast-forward", "fetch first", "stale info", "failed to update ref", "failed to lock", "cannot lock"]
            .iter()
            .any(|m| reason.contains(m));
    tracing::info!(%reason, stale, "the server rejected the push (push-update-reference)");
    if stale {
        return Ok(Push::Stale(reason));
    }
    let said: Vec<String> = remote_says
        .lines()
        .flat_map(|l| l.split('\r'))
        .map(|l| l.trim().chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|l| !l.is_empty())
        .collect();
    let mut why = reason;
    if !said.is_empty() {
        why.push_str(&format!(" (remote said: {})", said.join(" / ")));
    }
    Ok(Push::Refused(why))
}

/// Local remotes: copy the missing objects ourselves, then move the branch with a compare-and-swap.
fn push_local(
    repo: &Repository,
    s: &GitSettings,
    path: &std::path::Path,
    tip: Oid,
    expected: Option<Oid>,
) -> Result<Push, ChannelError> {
    let remote = open_local(s, path)?;
    let perm = |e: git2::Error| ChannelError::permanent(format!("push to {}: {}", s.remote_shown(), e.message()));
    copy_objects(repo, &remote, tip, expected).map_err(perm)?;
    let name = s.branch_ref();
    let msg = "push: handoff";
    let result = match expected {
        Some(old) => remote.reference_matching(&name, tip, true, old, msg),
        None => remote.reference(&name, tip, false, msg),
    };
    match result {
        Ok(_) => Ok(Push::Pushed),
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked | ErrorCode::NotFound
            ) =>
        {
            Ok(Push::Stale(e.message().to_string()))
        }
        Err(e) => Err(perm(e)),
    }
}

fn copy_objects(src: &Repository, dst: &Repository, tip: Oid, hide: Option<Oid>) -> Result<(), git2::Error> {
    let (from, to) = (src.odb()?, dst.odb()?);
    let mut walk = src.revwalk()?;
    walk.push(tip)?;
    if let Some(h) = hide {
        walk.hide(h)?;
    }
    let mut commits: Vec<Oid> = walk.collect::<Result<_, _>>()?;
    commits.reverse();
    for id in commits {
        let commit = src.find_commit(id)?;
        copy_tree(src, &from, &to, commit.tree_id())?;
        copy_one(&from, &to, id)?;
    }
    Ok(())
}

fn copy_tree(src: &Repository, from: &git2::Odb, to: &git2::Odb, id: Oid) -> Result<(), git2::Error> {
    if to.exists(id) {
        return Ok(());
    }
    let tree = src.find_tree(id)?;
    for entry in tree.iter() {
        match entry.kind() {
            Some(git2::ObjectType::Tree) => copy_tree(src, from, to, entry.id())?,
            Some(git2::ObjectType::Blob) => copy_one(from, to, entry.id())?,
            _ => {}
        }
    }
    copy_one(from, to, id)
}

fn copy_one(from: &git2::Odb, to: &git2::Odb, id: Oid) -> Result<(), git2::Error> {
    if !to.exists(id) {
        let obj = from.read(id)?;
        to.write(obj.kind(), obj.data())?;
    }
    Ok(())
}

/// What `health` learns from the remote.
pub(crate) struct RemoteState {
    /// The branch's commit on the remote, if the branch exists.
    pub tip: Option<Oid>,
    /// Whether a push connection was accepted (or the local remote is writable).
    pub writable: bool,
}

/// ls-remote: connects, lists the branch, and checks that a push connection is accepted.
pub(crate) fn probe(s: &GitSettings) -> Result<RemoteState, ChannelError> {
    let branch = s.branch_ref();
    if let Some(path) = local_path(&s.remote) {
        let repo = open_local(s, &path)?;
        let tip = repo.refname_to_id(&branch).ok();
        let probe = repo.path().join(format!("handoff-probe-{}", uuid::Uuid::new_v4().simple()));
        let writable = std::fs::write(&probe, b"ok").is_ok();
        let _ = std::fs::remove_file(&probe);
        return Ok(RemoteState { tip, writable });
    }
    let scratch = tempfile_dir()?;
    let repo = Repository::init_bare(&scratch).map_err(|e| ChannelError::permanent(e.message().to_string()))?;
    let mut remote = network_remote(&repo, s)?;
    let tip = {
        let conn = remote
            .connect_auth(git2::Direction::Fetch, Some(callbacks()), None)
            .map_err(|e| classify(e, "connect", s))?;
        let heads = conn.list().map_err(|e| classify(e, "list", s))?;
        heads.iter().find(|h| h.name() == branch).map(|h| h.oid())
    };
    let writable = remote.connect_auth(git2::Direction::Push, Some(callbacks()), None).is_ok();
    let _ = ssh::take_failure();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(RemoteState { tip, writable })
}

fn tempfile_dir() -> Result<PathBuf, ChannelError> {
    let dir = std::env::temp_dir().join(format!("handoff-probe-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_remotes_are_told_apart_from_network_ones() {
        assert_eq!(local_path("/srv/h.git"), Some(PathBuf::from("/srv/h.git")));
        assert_eq!(local_path("file:///srv/h.git"), Some(PathBuf::from("/srv/h.git")));
        assert_eq!(local_path("./h.git"), Some(PathBuf::from("./h.git")));
        assert_eq!(local_path("ssh://git@h/x.git"), None);
        assert_eq!(local_path("https://h/x.git"), None);
        assert_eq!(local_path("git@github.com:you/x.git"), None);
    }
}
