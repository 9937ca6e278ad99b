//! What every channel gets from the application: who we are, where local state lives, how to show progress.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Shared, read-only facts a channel needs.
#[derive(Clone)]
pub struct Context {
    /// This machine's name (`--machine`).
    pub machine: String,
    /// handoff's data directory (local stores, clones of remote things, outbox).
    pub data_dir: PathBuf,
    /// Progress display for long transfers (a bar on a terminal, nothing otherwise).
    pub progress: Arc<dyn ProgressSink>,
}

impl Context {
    /// A context with no progress display, for tests and scripts.
    pub fn quiet(machine: impl Into<String>, data_dir: PathBuf) -> Self {
        Self { machine: machine.into(), data_dir, progress: Arc::new(NoProgress) }
    }
}

/// Makes progress bars.
pub trait ProgressSink: Send + Sync {
    /// Starts a bar for `label` expecting `total` bytes.
    fn start(&self, label: &str, total: u64) -> Box<dyn ProgressBar>;
}

/// One running progress bar.
pub trait ProgressBar: Send + Sync {
    /// Adds `bytes` done.
    fn advance(&self, bytes: u64);
    /// Ends the bar.
    fn finish(&self);
}

/// Shows nothing.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn start(&self, _label: &str, _total: u64) -> Box<dyn ProgressBar> {
        Box::new(NoProgress)
    }
}

impl ProgressBar for NoProgress {
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// Something new found by [`crate::Channel::sync`] (a git document, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    /// Channel name.
    pub channel: String,
    /// Title or name.
    pub title: String,
    /// Machine that wrote it, when known.
    pub from: Option<String>,
    /// When it was written (RFC 3339), when known.
    pub ts: Option<String>,
    /// Where it is (path in the clone, URI).
    pub location: String,
    /// The content itself when it should be shown in full (e.g. `latest.md` that changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// What [`crate::Channel::sync`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// New items, oldest first.
    pub items: Vec<Incoming>,
    /// Cursor to pass next time (`None` = keep the old one).
    pub cursor: Option<String>,
    /// Remarks worth showing (e.g. "latest.md changed").
    pub notes: Vec<String>,
}
