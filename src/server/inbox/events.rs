//! `GET /inbox/events`: new messages as server-sent events, woken by the same notification that ends the
//! bus's long-polls. Resumes after `Last-Event-ID` (the browser sends it when it reconnects) or `?after=`.
//! Each event's data is the message as the page shows it (escaped text fields, as JSON); the page's
//! script puts it in the page as text.

use super::InboxState;
use super::view::MessageView;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use handoff_channels::bus::MessageQuery;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// How often a quiet stream re-reads the store anyway (a replica's notification can be missed).
const RECHECK: Duration = Duration::from_secs(20);
/// Messages read per query.
const BATCH: u32 = 100;

/// `?after=ID`: the last message the page shows; `?after=` (empty): the page shows none, start from the
/// first; no `after` at all: start from now.
#[derive(serde::Deserialize)]
pub(super) struct EventsQuery {
    after: Option<String>,
}

struct Cursor {
    st: InboxState,
    after: Option<String>,
    queue: VecDeque<MessageView>,
}

pub(super) async fn stream(State(st): State<InboxState>, headers: HeaderMap, Query(q): Query<EventsQuery>) -> Response {
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let after = match resume.or(q.after) {
        Some(a) if a.is_empty() => None,
        Some(a) => Some(a),
        None => match super::newest(st.store.as_ref(), &st.settings.human).await {
            Ok(n) if !n.is_empty() => Some(n),
            Ok(_) => None,
            Err(e) => return super::store_problem(e),
        },
    };
    let cursor = Cursor { st, after, queue: VecDeque::new() };
    Sse::new(events(cursor)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn events(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(v) = c.queue.pop_front() {
                let ev = Event::default().event("message").id(v.id.clone());
                let ev = ev.json_data(&v).unwrap_or_else(|_| Event::default().comment("unencodable message"));
                return Some((Ok(ev), c));
            }
            if *c.st.shutdown.borrow() {
                return None;
            }
            // subscribe before reading, so a post between the read and the wait is not missed
            let notify = c.st.store.new_messages();
            let notified = notify.notified();
            let q = MessageQuery { since: c.after.clone(), limit: Some(BATCH), ..Default::default() };
            match c.st.store.messages(q).await {
                Ok(ms) if !ms.is_empty() => {
                    let human = c.st.settings.human.clone();
                    c.after = ms.last().map(|m| m.id.0.clone());
                    c.queue.extend(
                        ms.into_iter().map(|m| MessageView::new(&super::InboxMessage { msg: m, read: false }, &human)),
                    );
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "inbox events: reading the store");
                    // `since` no longer known (or the store is away): the browser reconnects and resumes
                    return None;
                }
            }
            let mut shutdown = c.st.shutdown.clone();
            tokio::select! {
                _ = notified => {}
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    })
}
