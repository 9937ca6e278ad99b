//! Dynamic shell completion (`source <(COMPLETE=bash handoff)`): machine names and message ids come from
//! this machine's local state when the shell asks, never from the network.

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

fn settings() -> Option<crate::config::Settings> {
    let o = crate::config::Overrides {
        config: std::env::var_os("HANDOFF_CONFIG").map(Into::into),
        machine: std::env::var("HANDOFF_MACHINE").ok(),
    };
    crate::config::Settings::load(&o).ok()
}

/// Completes a machine name (`--to`, `--with`): the known machines and `any`.
pub fn machine_names() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut names: Vec<String> =
            settings().map(|s| crate::known::machines(&s).into_iter().collect()).unwrap_or_default();
        names.push(handoff_channels::bus::BROADCAST.to_string());
        names.into_iter().map(CompletionCandidate::new).collect()
    })
}

/// Completes a message id (`show`, `reply`, `fetch`): received messages, newest first, each with its
/// sender and first line as help.
pub fn message_ids() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(s) = settings() else { return Vec::new() };
        if !s.dirs.data.join("state.sqlite").exists() {
            return Vec::new();
        }
        let Ok(state) = crate::state::State::open(&s.dirs.data) else { return Vec::new() };
        let mut all = state.all_received(&s.machine).unwrap_or_default();
        all.reverse();
        all.into_iter()
            .take(200)
            .map(|r| {
                let first = r.message.body.lines().next().unwrap_or("").chars().take(60).collect::<String>();
                let help = format!("from {}: {}", r.message.from, handoff_channels::untrusted::inline(&first));
                CompletionCandidate::new(r.message.id.0.clone()).help(Some(help.into()))
            })
            .collect()
    })
}
