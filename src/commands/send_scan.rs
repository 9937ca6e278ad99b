//! The secret scan of a send, run on a thread of its own: it starts before the send is planned and its
//! verdict is awaited before anything is queued or sent, so the scan (its detectors compile first, a few
//! milliseconds) overlaps the planning and the first channel's connection instead of coming before them.

use crate::exit;
use crate::router::SendRequest;
use crate::secrets::{FileScan, Finding, Scanner};

/// A scan running on its own thread; [`ScanInFlight::verdict`] waits for it.
pub struct ScanInFlight {
    thread: std::thread::JoinHandle<anyhow::Result<Vec<Finding>>>,
}

impl ScanInFlight {
    /// Starts scanning what of `req` leaves the machine as text, with the detectors and `scanner`'s known
    /// values. The request is copied as it is now: what handoff adds later (its own tags) is not scanned.
    pub fn start(req: &SendRequest, scanner: Scanner) -> Self {
        let req = req.clone();
        Self { thread: std::thread::spawn(move || find_secrets(&req, &scanner)) }
    }

    /// What was found (kind and line, never the value); an error when a file could not be read (exit 65).
    pub fn verdict(self) -> anyhow::Result<Vec<Finding>> {
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Scans everything of `req` that leaves the machine as text and returns what was found (kind and line,
/// never the value); anything found refuses the send with exit 65.
fn find_secrets(req: &SendRequest, scanner: &Scanner) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    if let Some(t) = &req.text {
        findings.extend(scanner.scan_text(t, if req.doc { "the document" } else { "the message text" }));
    }
    if let Some(t) = &req.title {
        findings.extend(scanner.scan_text(t, "--title"));
    }
    for t in &req.tags {
        findings.extend(scanner.scan_text(t, "--tag"));
    }
    for f in &req.files {
        let source = format!("--file {}", f.name);
        match scanner.scan_file(&f.path, &source) {
            Ok(FileScan::Text(found)) => findings.extend(found),
            Ok(FileScan::Binary) => {}
            Err(e) => return Err(exit::with_code(exit::DATA, anyhow::anyhow!("{}: {e}", f.path.display()))),
        }
    }
    Ok(findings)
}
