//! Progress bars for long transfers, shown only when stderr is a terminal.

use handoff_channels::{NoProgress, ProgressBar, ProgressSink};
use std::io::IsTerminal;
use std::sync::Arc;

/// Bars on a terminal, nothing otherwise.
pub struct TerminalProgress;

/// The right sink for this process.
pub fn sink() -> Arc<dyn ProgressSink> {
    if std::io::stderr().is_terminal() { Arc::new(TerminalProgress) } else { Arc::new(NoProgress) }
}

struct Bar(indicatif::ProgressBar);

impl ProgressSink for TerminalProgress {
    fn start(&self, label: &str, total: u64) -> Box<dyn ProgressBar> {
        let bar = indicatif::ProgressBar::new(total);
        let style =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        Box::new(Bar(bar))
    }
}

impl ProgressBar for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
