//! The git channel's part in `handoff init`: `--git-remote` / `--git-checkout`, else (asked on a
//! terminal) the origin of an existing checkout; before writing, init checks that a local remote exists
//! and that the remote answers.

use super::{GitConfig, NAME};
use crate::ChannelError;
use crate::init::{InitChoice, InitFlags, InitPlace, InitProbe, InitSection, toml_string};
use crate::untrusted::{inline, redact_url};
use std::path::{Path, PathBuf};

/// The git channel's flags of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct GitInitFlags {
    /// Git remote of the handoff documents repo.
    #[arg(long, value_name = "URL")]
    pub git_remote: Option<String>,
    /// Local checkout of that repo.
    #[arg(long, value_name = "DIR", default_value = "~/claude-handoffs")]
    pub git_checkout: String,
}

impl InitFlags for GitInitFlags {
    const LISTED_IN_PLAN: bool = true;

    fn choose(&self, place: &InitPlace<'_>) -> Result<InitChoice, ChannelError> {
        // the flag, else the origin of an existing checkout
        let checkout = crate::paths::expand_home(Path::new(&self.git_checkout), place.home);
        let remote = match &self.git_remote {
            Some(r) => Some(r.clone()),
            None => place.ask("git remote of the handoff documents repo", git_origin(&checkout).as_deref())?,
        };
        let Some(remote) = remote else { return Ok(InitChoice::default()) };
        let checkout = crate::init::tilde(&checkout, place.home);
        let toml = format!("[{NAME}]\nremote = {}\ncheckout = {}\n", toml_string(&remote), toml_string(&checkout));
        let plan = serde_json::json!({ "remote": remote, "checkout": checkout });
        Ok(InitChoice { section: Some(InitSection { toml, plan: Some(plan) }), notes: Vec::new() })
    }
}

/// The `origin` of an existing checkout, as `git remote get-url origin` gives it (with the user's
/// `insteadOf` rewrites).
fn git_origin(checkout: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(checkout)
        .args(["remote", "get-url", "origin"])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// What init checks before writing `[git]`: a local remote that is not there is refused with the command
/// that creates it; any other remote is built and asked for its health.
pub(super) fn probe(config: &GitConfig, home: &Path) -> InitProbe {
    if let Some(path) = local_git_path(&config.remote, home).filter(|p| !p.exists()) {
        return InitProbe::Refuse(ChannelError::config(format!(
            "git remote {}: {} does not exist — nothing was written; create the shared repository with `git init --bare {}` (or pass the URL of an existing one to --git-remote), then run `handoff init` again",
            inline(&redact_url(&config.remote)),
            path.display(),
            path.display()
        )));
    }
    InitProbe::Health { label: "git remote".into() }
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
    Some(crate::paths::expand_home(Path::new(remote), home))
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
