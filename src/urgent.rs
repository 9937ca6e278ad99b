//! The urgent flow's page (issue 6, SPEC §3.3): the message goes to the bus first, then a page names the
//! sender, a summary and the bus message id. When the bus message is not there (bus down, or refused),
//! the page carries the text itself and says so. This module says what the page is about
//! ([`PageNote`]); each page channel words it (the SMS wording lives in the SMS channel) and enforces
//! its own limits, budget and once-per-key sending.

use crate::outbox::{Job, Role};
use handoff_channels::{BusState, PageNote};

/// What became of the job's bus message, as the page should tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusOutcome {
    /// Posted, with this id.
    Posted(String),
    /// Not posted yet (bus unreachable, or waiting for payloads): it stays in the outbox.
    Queued,
    /// Refused for good.
    Failed,
}

/// The state of the job's bus step (inline message or pointer).
pub fn bus_outcome(job: &Job) -> BusOutcome {
    let bus = job.steps.iter().find(|s| matches!(s.role, Role::Inline | Role::Pointer { .. }));
    match bus {
        Some(s) => match s.receipt.as_ref().and_then(|r| r.message_id.clone()) {
            Some(id) => BusOutcome::Posted(id),
            None if s.failed => BusOutcome::Failed,
            None => BusOutcome::Queued,
        },
        None => BusOutcome::Queued,
    }
}

/// What the job's page says: the sender, the summary and where the bus message is, or, with no bus
/// message to point at, the message text itself (the inline text when there is one, else the summary;
/// never the plaintext of an encrypted send). Each page channel words it its own way
/// ([`handoff_channels::Channel::render_page`]).
pub fn page_note(job: &Job, summary: &str) -> PageNote {
    let standalone = if job.sealed_to.is_some() {
        // an encrypted send's text never goes out in the clear, not even by SMS
        summary.to_string()
    } else {
        job.steps
            .iter()
            .find(|s| s.role == Role::Inline)
            .map(|s| s.parcel.body.clone())
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| summary.to_string())
    };
    let bus = match bus_outcome(job) {
        BusOutcome::Posted(id) => BusState::Posted(id),
        BusOutcome::Queued => BusState::Queued,
        BusOutcome::Failed => BusState::Failed,
    };
    PageNote { from: job.from.clone(), summary: summary.to_string(), bus, standalone }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Step;
    use handoff_channels::{Parcel, ParcelKind, Receipt};

    fn step(role: Role, kind: ParcelKind, body: &str) -> Step {
        Step::new(
            role,
            Parcel {
                key: "k".into(),
                from: "mac".into(),
                to: "any".into(),
                kind,
                title: None,
                body: body.into(),
                tags: vec![],
                file: None,
            },
            vec![],
        )
    }

    fn job(bus: Step) -> Job {
        Job {
            id: "j".into(),
            created: "t".into(),
            from: "mac".into(),
            to: "any".into(),
            steps: vec![bus, step(Role::Page { summary: "prod down".into() }, ParcelKind::Page, "")],
            sealed_to: None,
            dropped: None,
            bus: None,
        }
    }

    #[test]
    fn the_page_names_the_bus_message_or_carries_the_text() {
        let text = "prod down\nthe deploy of 1.4 stalled at migration 17; rolled back\n";
        let mut posted = step(Role::Inline, ParcelKind::Text, text);
        posted.receipt = Some(Receipt {
            channel: "bus".into(),
            uri: None,
            message_id: Some("42".into()),
            detail: None,
            sha256: None,
        });
        assert_eq!(page_note(&job(posted), "prod down").plain(), "mac: prod down (bus msg 42)");

        let queued = job(step(Role::Inline, ParcelKind::Text, text));
        assert_eq!(bus_outcome(&queued), BusOutcome::Queued);
        let note = page_note(&queued, "prod down");
        assert_eq!((note.bus.clone(), note.standalone.as_str()), (BusState::Queued, text));
        let body = note.plain();
        assert!(body.starts_with("mac: prod down the deploy of 1.4 stalled"), "{body}");
        assert!(!body.contains('\n'));

        let mut sealed = job(step(Role::Inline, ParcelKind::Text, text));
        sealed.sealed_to = Some(vec!["age1x".into()]);
        assert_eq!(page_note(&sealed, "prod down").standalone, "prod down", "no plaintext of an encrypted send");

        let mut refused = step(Role::Inline, ParcelKind::Text, text);
        refused.failed = true;
        assert_eq!(bus_outcome(&job(refused)), BusOutcome::Failed);

        let pointer = step(Role::Pointer { note: None, title: Some("logs".into()) }, ParcelKind::Text, "");
        assert_eq!(page_note(&job(pointer), "logs").plain().split(" (").next(), Some("mac: logs"));
    }
}
