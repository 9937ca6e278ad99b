//! The git channel: long-form handoff documents committed to a shared repository (issue 3).
//!
//! A document is written as `latest.md` (the current briefing) and as an archived copy at a unique dated
//! path naming the sender (`handoffs/2026/11/2026-11-24T05-30-12Z-<machine>-<slug>-<key>.md`), committed
//! with the machine as author and a `Handoff-Key` trailer (the idempotency key), then pushed.
//!
//! * Commits are built from trees, never by staging the user's working tree, and the working tree is then
//!   moved forward the way `git merge --ff-only` would: a change the user made that the update would
//!   overwrite stops the operation with an error naming the files; nothing is ever discarded.
//! * A push the server rejects (reported through libgit2's push-update-reference callback, not as an
//!   error) is answered by fetching, replaying handoff's own unpushed commits on top, and pushing again, a
//!   bounded number of times. Archive paths never collide; `latest.md` resolves to the newer document.
//!   Nothing is force-pushed.
//! * Over the network, when the clone is in step with what was last fetched, the document is committed
//!   and checked out first (while ssh's handshake runs), then pushed on the one connection whose
//!   advertisement shows the server still has that; if it moved, the commit is replayed onto what moved.
//!   A connection refused for good (credentials, no such repository) takes the commit back, so a later
//!   send never publishes a document this one reported failed.
//! * For a local remote (a path or `file://` URL) handoff writes the objects itself and moves the branch
//!   with a compare-and-swap, because libgit2's local transport overwrites the ref unconditionally (two
//!   concurrent pushes could lose a commit). Server-side hooks only run for remotes reached over ssh or
//!   https, as with any local git remote that is not a server.
//! * ssh remotes (`ssh://`, `host:path`) go through the system `ssh` program, as with the git CLI (see
//!   `ssh`): the user's whole ssh configuration applies (`Include`, `Match`, `ProxyJump`, aliases, the
//!   agent, keys, known_hosts, which is never bypassed). libgit2 is built without libssh2, and without
//!   HTTPS: http(s) remotes go through handoff's own smart-HTTP transport (see `http`), whose credentials
//!   come from the URL or the git credential helper. So neither libssh2 nor OpenSSL is built.

mod clone;
mod doc;
mod http;
pub mod init;
mod interrupted;
mod preconnect;
mod publish;
mod remote;
mod ssh;
mod sync;

use crate::{Capability, Channel, ChannelError, Context, Health, LatencyClass, Parcel, Receipt, SyncReport};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[git]` in handoff's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// The shared repository (ssh, https or file URL).
    pub remote: String,
    /// Where the local clone lives (`~` expanded).
    pub checkout: PathBuf,
    /// Branch to commit to.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Among document channels, the higher priority is tried first (default [`PRIORITY`]; git takes no
    /// fallback, so a lower one only lets another channel go first).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts, pointers).
pub const NAME: &str = "git";
/// Git's own priority among document channels: first.
pub const PRIORITY: i32 = 10;

impl crate::registration::ChannelSection for GitConfig {
    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Document];

    fn build(&self, ctx: &Context) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(GitChannel::new(self, ctx)?))
    }

    /// SPEC §4: with nothing configured, a local git repo under the data dir serves documents.
    fn embedded(ctx: &Context) -> Option<Arc<dyn Channel>> {
        Some(Arc::new(GitChannel::embedded(ctx)))
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }

    type InitFlags = init::GitInitFlags;

    fn init_probe(&self, home: &std::path::Path) -> Option<crate::init::InitProbe> {
        Some(init::probe(self, home))
    }
}

fn default_branch() -> String {
    "main".into()
}

/// The file that always holds the newest document.
pub const LATEST: &str = "latest.md";
/// The folder archived documents live under.
pub const ARCHIVE_DIR: &str = "handoffs";

/// Everything the blocking git code needs; shared by the async wrappers.
#[derive(Debug)]
pub(crate) struct GitSettings {
    /// Remote URL or path, as configured (may hold credentials: show it through [`crate::untrusted::redact_url`]).
    pub remote: String,
    /// The local clone.
    pub checkout: PathBuf,
    /// Branch name (without `refs/heads/`).
    pub branch: String,
    /// This machine's name (commit author, filter for sync).
    pub machine: String,
    /// Lock file serialising handoff processes that use the same clone.
    pub lock_path: PathBuf,
    /// For the embedded default: the bare repository to create on first use.
    pub embedded_bare: Option<PathBuf>,
}

impl GitSettings {
    /// `refs/heads/<branch>`.
    pub fn branch_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }
    /// `refs/remotes/origin/<branch>`.
    pub fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }
    /// The remote as safe to show.
    pub fn remote_shown(&self) -> String {
        crate::untrusted::redact_url(&self.remote)
    }
    /// Takes the clone's lock (blocking until other handoff processes are done with it).
    pub fn lock(&self) -> Result<std::fs::File, ChannelError> {
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock_path)?;
        f.lock().map_err(|e| ChannelError::permanent(format!("cannot lock {}: {e}", self.lock_path.display())))?;
        Ok(f)
    }
}

/// The git channel. Cheap to clone; all git work runs on tokio's blocking pool.
#[derive(Clone)]
pub struct GitChannel {
    s: Arc<GitSettings>,
}

impl GitChannel {
    /// A channel for the configured `[git]` section. `~` in `checkout` (and in a path remote) is expanded.
    pub fn new(config: &GitConfig, ctx: &Context) -> Result<Self, ChannelError> {
        if config.remote.trim().is_empty() {
            return Err(ChannelError::permanent("[git] remote is empty: set it to the shared repository's URL"));
        }
        if !git2::Reference::is_valid_name(&format!("refs/heads/{}", config.branch)) {
            return Err(ChannelError::permanent(format!(
                "[git] branch = {:?} is not a valid branch name: use a name like \"main\"",
                config.branch
            )));
        }
        let checkout = crate::paths::expand_tilde(&config.checkout);
        let remote = match config.remote.strip_prefix("~/") {
            Some(_) => crate::paths::expand_tilde(Path::new(&config.remote)).display().to_string(),
            None => config.remote.clone(),
        };
        Ok(Self::from_parts(remote, checkout, config.branch.clone(), ctx, None))
    }

    /// The embedded default (no `[git]` configured): a bare repository `<data_dir>/handoffs.git` acts as
    /// the remote, and each machine name gets its own clone `<data_dir>/handoffs-<machine>`, so two
    /// `--machine` names on one computer hand documents to each other as two computers would.
    pub fn embedded(ctx: &Context) -> Self {
        let bare = ctx.data_dir.join("handoffs.git");
        let checkout = ctx.data_dir.join(format!("handoffs-{}", crate::names::safe_file_name(&ctx.machine)));
        Self::from_parts(bare.display().to_string(), checkout, default_branch(), ctx, Some(bare))
    }

    /// Process-wide libgit2 set-up, once, before the channel's first libgit2 call: handoff's own
    /// transport for `http://` and `https://` (see [`http`]; libgit2 is built without HTTPS, so its
    /// initialisation no longer sets up OpenSSL and parses the system's CA bundle in every process), the
    /// system `ssh` for ssh remotes (see [`ssh`]), and libgit2's own network timeouts. Called when the channel is first used, not when it is built, so
    /// commands that never touch git do not initialise libgit2 at all.
    fn set_timeouts() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        http::register();
        ssh::register();
        ONCE.call_once(|| {
            // SAFETY: called once, before any git operation of this process runs.
            unsafe {
                let _ = git2::opts::set_server_connect_timeout_in_milliseconds(15_000);
                let _ = git2::opts::set_server_timeout_in_milliseconds(120_000);
            }
        });
    }

    fn from_parts(
        remote: String,
        checkout: PathBuf,
        branch: String,
        ctx: &Context,
        embedded_bare: Option<PathBuf>,
    ) -> Self {
        let id = &crate::hashing::sha256_hex(checkout.display().to_string().as_bytes())[..16];
        let lock_path = ctx.data_dir.join("locks").join(format!("git-{id}.lock"));
        Self {
            s: Arc::new(GitSettings {
                remote,
                checkout,
                branch,
                machine: ctx.machine.clone(),
                lock_path,
                embedded_bare,
            }),
        }
    }

    /// The local clone's directory.
    pub fn checkout(&self) -> &Path {
        &self.s.checkout
    }

    /// The remote, with any password or token in it masked.
    pub fn remote_shown(&self) -> String {
        self.s.remote_shown()
    }

    /// The branch documents are committed to.
    pub fn branch(&self) -> &str {
        &self.s.branch
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&GitSettings) -> Result<T, ChannelError> + Send + 'static,
    ) -> Result<T, ChannelError> {
        let s = self.s.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| ChannelError::permanent(format!("git worker stopped: {e}")))?
    }
}

/// Parses `git:<path>@<commit>` into its parts.
pub fn parse_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("git:")?;
    let (path, commit) = rest.rsplit_once('@')?;
    (crate::names::stays_inside(path)
        && !path.chars().any(crate::untrusted::is_unsafe)
        && (7..=64).contains(&commit.len())
        && commit.chars().all(|c| c.is_ascii_hexdigit()))
    .then_some((path, commit))
}

#[async_trait]
impl Channel for GitChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability {
            max_size: Some(64 * 1024 * 1024),
            latency: LatencyClass::TensOfSeconds,
            can_receive: true,
            documents: true,
            lasting: true,
            priority: PRIORITY,
            // a commit that is queued gets pushed later anyway: a fallback would make a second copy
            no_fallback: true,
            ..Capability::NOTHING
        }
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        Self::set_timeouts();
        let parcel = parcel.clone();
        self.blocking(move |s| publish::deliver(s, &parcel, false)).await
    }

    async fn deliver_new(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        Self::set_timeouts();
        let parcel = parcel.clone();
        // a key never handed out before: no commit can carry it, so the history is not searched for one
        self.blocking(move |s| publish::deliver(s, &parcel, true)).await
    }

    fn preconnect(&self) {
        // over ssh the handshake is most of a push: start it now (see `preconnect`); file:// and https
        // remotes gain nothing worth a connection that may go unused
        if remote::local_path(&self.s.remote).is_none() && ssh::SshRemote::parse(&self.s.remote).is_ok() {
            preconnect::start(&self.s.remote, Some(&self.s.checkout.join(".git")));
        }
    }

    fn hang_up_preconnect(&self) {
        preconnect::discard();
    }

    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<crate::Fetched, ChannelError> {
        Self::set_timeouts();
        // Only a file of the configured clone: a relative path inside the tree at a commit named by its hash.
        let (path, commit) = parse_uri(uri).ok_or_else(|| {
            ChannelError::refused(format!(
                "refusing {}: not a file of the configured git clone (expected git:<relative path>@<commit hash>)",
                crate::untrusted::inline(uri)
            ))
        })?;
        let (path, commit, dest) = (path.to_string(), commit.to_string(), dest.to_path_buf());
        self.blocking(move |s| sync::fetch(s, &path, &commit, &dest, max)).await
    }

    async fn sync(&self, cursor: Option<&str>) -> Result<SyncReport, ChannelError> {
        Self::set_timeouts();
        let cursor = cursor.map(str::to_string);
        self.blocking(move |s| sync::sync(s, cursor.as_deref())).await
    }

    async fn health(&self) -> Result<Health, ChannelError> {
        Self::set_timeouts();
        self.blocking(sync::health).await
    }
}
