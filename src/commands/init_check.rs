//! What `handoff init` checks before it writes: the git remote exists and answers, the droplet host
//! resolves and answers ssh (its directory writable). A check that fails for good (a host name that does
//! not resolve, a repository that is not there, credentials refused) refuses the whole config, nothing
//! written; a check that could not be made now (the host is down, the network is away) is said, and the
//! config is written. `--no-check` skips them (an offline set-up).

// a build with neither git nor droplet has nothing to check
#![cfg_attr(not(any(feature = "git", feature = "droplet")), allow(dead_code, unused_imports))]

use crate::config::ConfigError;
use crate::exit;
use handoff_channels::untrusted::inline;
use handoff_channels::{Channel, ChannelError, Context, ErrorKind};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest one check may take (ssh's own connect timeout is 15 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// One check `init` made.
#[derive(Debug, Serialize)]
pub struct InitCheck {
    /// What was checked (`git`, `droplet`).
    pub check: String,
    /// It passed.
    pub ok: bool,
    /// What was found, or why it could not be checked.
    pub detail: String,
}

/// The local path a git remote names (`/srv/h.git`, `~/h.git`, `file:///srv/h.git`), or `None` for a
/// network URL (`ssh://`, `https://`, `user@host:path`).
fn local_git_path(remote: &str, home: &Path) -> Option<PathBuf> {
    if let Some(p) = remote.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    if remote.contains("://") {
        return None;
    }
    // scp-like `host:path` (a colon before any slash), but not a Windows drive letter (`C:\...`)
    if let Some((host, _)) = remote.split_once(':')
        && !host.contains('/')
        && host.len() > 1
    {
        return None;
    }
    Some(crate::config::expand_home(Path::new(remote), home))
}

/// A failed check as init's error: refused for good → the config would not work (78), credentials
/// refused → 77; both name the fix and `--no-check`.
fn refusal(what: &str, e: &ChannelError) -> anyhow::Error {
    let text = format!(
        "{what}: {} — nothing was written; fix it and run `handoff init` again (or pass --no-check to write it unchecked)",
        inline(&e.message)
    );
    match e.kind {
        ErrorKind::Auth => exit::with_code(exit::AUTH, anyhow::anyhow!(text)),
        _ => ConfigError(text).into(),
    }
}

/// Runs one channel's health probe within [`CHECK_TIMEOUT`]: `Ok(Some(check))` when it passed or could
/// not be made now, `Err` when it failed for good.
async fn probe(what: &str, ch: &dyn Channel) -> anyhow::Result<InitCheck> {
    match tokio::time::timeout(CHECK_TIMEOUT, ch.health()).await {
        Ok(Ok(h)) => Ok(InitCheck { check: what.into(), ok: true, detail: h.check }),
        Ok(Err(e)) if e.is_transient() => Ok(InitCheck {
            check: what.into(),
            ok: false,
            detail: format!(
                "could not be checked now ({}); written anyway: `handoff doctor` checks it again",
                inline(&e.message)
            ),
        }),
        Ok(Err(e)) => Err(refusal(what, &e)),
        Err(_) => Ok(InitCheck {
            check: what.into(),
            ok: false,
            detail: format!(
                "no answer within {}s; written anyway: `handoff doctor` checks it again",
                CHECK_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// Checks the `[git]` and `[droplet]` sections of the config `text` init is about to write. Returns what
/// was checked; an error (nothing may be written) when a check failed for good.
pub async fn check(text: &str, home: &Path, data_dir: &Path, machine: &str) -> anyhow::Result<Vec<InitCheck>> {
    let file = crate::config::parse(text)
        .map_err(|e| anyhow::anyhow!("internal error: init wrote an invalid config ({e})"))?;
    let ctx = Context::quiet(machine, data_dir.to_path_buf());
    #[cfg_attr(not(any(feature = "git", feature = "droplet")), allow(unused_mut))]
    let mut out = Vec::new();
    #[cfg(feature = "git")]
    if let Some(g) = &file.channels.git {
        let shown = handoff_channels::untrusted::redact_url(&g.remote);
        if let Some(path) = local_git_path(&g.remote, home).filter(|p| !p.exists()) {
            return Err(ConfigError(format!(
                "git remote {}: {} does not exist — nothing was written; create the shared repository with `git init --bare {}` (or pass the URL of an existing one to --git-remote), then run `handoff init` again",
                inline(&shown),
                path.display(),
                path.display()
            ))
            .into());
        }
        let ch = handoff_channels::git::GitChannel::new(g, &ctx).map_err(|e| refusal("git remote", &e))?;
        out.push(probe("git", &ch).await?);
    }
    #[cfg(feature = "droplet")]
    if let Some(d) = &file.channels.droplet {
        let ch = handoff_channels::droplet::DropletChannel::new(d, ctx.clone())
            .map_err(|e| refusal(&format!("droplet host {}", inline(&d.host)), &e))?;
        out.push(probe("droplet", &ch).await?);
    }
    let _ = (&file, home, &ctx);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_git_paths_and_network_urls_are_told_apart() {
        let home = Path::new("/home/me");
        assert_eq!(local_git_path("/srv/h.git", home), Some(PathBuf::from("/srv/h.git")));
        assert_eq!(local_git_path("file:///srv/h.git", home), Some(PathBuf::from("/srv/h.git")));
        assert_eq!(local_git_path("~/h.git", home), Some(PathBuf::from("/home/me/h.git")));
        assert_eq!(local_git_path("git@github.com:you/h.git", home), None);
        assert_eq!(local_git_path("ssh://git@host/h.git", home), None);
        assert_eq!(local_git_path("https://host/h.git", home), None);
        assert_eq!(local_git_path("C:\\repos\\h.git", home), Some(PathBuf::from("C:\\repos\\h.git")));
    }
}
