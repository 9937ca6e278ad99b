//! `handoff mcp --channel`: while the session runs, long-poll the bus for this machine and push each new
//! message into it once, as Claude Code's `notifications/claude/channel` (`{content, meta}`).
//!
//! Each message is stored and claimed in the local state before it is pushed (the same exactly-once
//! claim as the `inbox` tool and `watch`), so a message pushed live is not shown again at the next
//! session start. Urgent messages go first. The loop runs as its own task: the tools never wait for it.

use super::{CHANNEL_NOTIFICATION, on_blocking};
use crate::commands::Session;
use crate::commands::inbox::{Taken, frame, is_urgent, take_new};
use crate::commands::sync::DigestMessage;
use crate::config::{Overrides, Settings};
use crate::state::State;
use handoff_channels::bus::{BusApi, MessageQuery};
use handoff_channels::untrusted::{PREAMBLE, inline};
use rmcp::model::{CustomNotification, ServerNotification};
use rmcp::{Peer, RoleServer};
use std::sync::Arc;
use std::time::Duration;

/// Longest single long-poll of the bus.
const POLL: Duration = Duration::from_secs(25);
/// First and longest pause after the bus could not be reached.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// The notification's params for one message: `content` framed as untrusted data, `meta` with string
/// values under identifier keys (`from`, `id`, `tags`, `urgent`).
pub fn notification_params(m: &DigestMessage) -> serde_json::Value {
    serde_json::json!({
        "content": format!("{PREAMBLE}\n\n{}", frame(m)),
        "meta": {
            "from": inline(&m.from),
            "id": inline(&m.id),
            "tags": m.tags.iter().map(|t| inline(t)).collect::<Vec<_>>().join(","),
            "urgent": is_urgent(m).to_string(),
        }
    })
}

/// Takes what is new (pull, store, ack, claim) on a blocking-pool thread; also hands back the bus client
/// for the next long-poll.
async fn take(overrides: &Overrides) -> anyhow::Result<(Taken, Arc<dyn BusApi>, String)> {
    let overrides = overrides.clone();
    on_blocking(move || async move {
        let s = Session::open(Settings::load(&overrides)?)?;
        let state = State::open(&s.settings.dirs.data)?;
        let taken = take_new(&s, &state).await?;
        Ok((taken, s.reg.bus.clone(), s.settings.machine.clone()))
    })
    .await
}

/// Hands claimed messages back (see [`State::release`]).
async fn release(overrides: &Overrides, rows: Vec<i64>) -> anyhow::Result<()> {
    let overrides = overrides.clone();
    on_blocking(move || async move {
        let s = Session::open(Settings::load(&overrides)?)?;
        State::open(&s.settings.dirs.data)?.release(&rows)
    })
    .await
}

/// Pushes until the client goes away; never returns an error (problems are logged and retried with
/// backoff).
pub async fn push_loop(overrides: Overrides, machine: String, peer: Peer<RoleServer>) {
    let mut backoff = BACKOFF.0;
    loop {
        let (taken, bus, me) = match take(&overrides).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "channel: cannot read new messages; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        for (i, m) in taken.messages.iter().enumerate() {
            let n = CustomNotification::new(CHANNEL_NOTIFICATION, Some(notification_params(m)));
            if let Err(e) = peer.send_notification(ServerNotification::CustomNotification(n)).await {
                tracing::info!(error = %e, "channel: the client is gone; stopping the push");
                // what was claimed but not pushed goes back to the next reader (sync, another session)
                let unpushed: Vec<_> = taken.messages[i..].iter().map(|m| m.row).collect();
                if let Err(e) = release(&overrides, unpushed).await {
                    tracing::warn!(error = %format!("{e:#}"), "channel: cannot hand back unpushed messages");
                }
                return;
            }
            tracing::info!(id = %m.id, "channel: pushed");
        }
        if taken.code != crate::exit::OK {
            tracing::warn!(notes = ?taken.notes, "channel: the bus could not be read; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
            continue;
        }
        backoff = BACKOFF.0;
        // wait for something new; the take above pulls, stores, acks and claims it
        let q =
            MessageQuery { to: Some(me.clone()), unread_by: Some(me.clone()), limit: Some(1), ..Default::default() };
        if let Err(e) = bus.wait_messages(&q, POLL).await {
            tracing::warn!(error = %e, machine = %machine, "channel: long-poll failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_are_identifiers_and_values_strings() {
        let m = DigestMessage {
            id: "12".into(),
            ts: "t".into(),
            from: "mac\nstudio".into(),
            to: "b".into(),
            tags: vec!["urgent".into(), "ci".into()],
            body: "hello".into(),
            encrypted: false,
            error: None,
            pointer: None,
            fetch_command: None,
            ..Default::default()
        };
        let p = notification_params(&m);
        let meta = p["meta"].as_object().unwrap();
        for (k, v) in meta {
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{k}");
            assert!(v.is_string(), "{k}: {v}");
        }
        assert_eq!(meta["from"], "mac\\nstudio");
        assert_eq!(meta["urgent"], "true");
        assert_eq!(meta["tags"], "urgent,ci");
        assert!(p["content"].as_str().unwrap().starts_with(PREAMBLE));
    }
}
