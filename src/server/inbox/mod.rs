//! The web inbox at `/inbox` (same basic auth as the bus): where the person reads what the machines say,
//! by conversation and thread, searches it, marks threads read, and writes messages and replies as
//! themselves. Server-rendered with askama (every field escaped as text), usable without JavaScript; a
//! small script served by the binary adds new messages live from server-sent events fed by the same
//! notification the long-poll uses. Strict CSP, no external assets, forms checked against forgery.

// Handlers return `Result<_, Response>`: the error *is* the finished HTTP answer.
#![allow(clippy::result_large_err)]

pub mod events;
pub mod guard;
pub mod postgres;
pub mod sqlite;
pub mod store;
pub mod view;

pub use store::{InboxMessage, InboxStore};

use super::store::BusStore;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use handoff_channels::bus::store::StoreError;
use handoff_channels::bus::tags::{replied_to, reply_tag};
use handoff_channels::bus::{BROADCAST, NewMessage};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use view::{Conversation, MessageView, ThreadView};

/// Messages the front page groups into conversations.
pub const PAGE_MESSAGES: u32 = 300;
/// Search hits shown.
pub const SEARCH_HITS: u32 = 100;
/// Largest thread shown (messages).
const MAX_THREAD: usize = 500;

/// What the inbox needs from the server.
#[derive(Clone)]
pub struct InboxSettings {
    /// The person's name: `from` of what they write, `reader` of what they mark read.
    pub human: String,
    /// The server's public URL (behind a proxy), whose origin forms may come from.
    pub public_url: Option<String>,
    /// The form token (see [`guard::form_token`]).
    pub form_token: String,
}

#[derive(Clone)]
pub(crate) struct InboxState {
    settings: Arc<InboxSettings>,
    store: Arc<dyn BusStore>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The inbox's routes (to be put behind the bus's basic auth). `shutdown` turns true when the server
/// stops, which ends the event streams (they would otherwise hold the graceful shutdown open).
pub fn routes<S: Clone + Send + Sync + 'static>(
    settings: InboxSettings,
    store: Arc<dyn BusStore>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Router<S> {
    let state = InboxState { settings: Arc::new(settings), store, shutdown };
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/inbox", get(index))
        .route("/inbox/t/{id}", get(thread))
        .route("/inbox/send", post(send))
        .route("/inbox/read", post(mark_read))
        .route("/inbox/events", get(events::stream))
        .route("/inbox/assets/inbox.css", get(|| async { asset("text/css", include_str!("assets/inbox.css")) }))
        .route("/inbox/assets/inbox.js", get(|| async { asset("text/javascript", include_str!("assets/inbox.js")) }))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(state)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], text).into_response()
}

fn page(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering an inbox page");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn problem(status: StatusCode, message: String) -> Response {
    page(status, ProblemPage { message })
}

fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => problem(StatusCode::NOT_FOUND, e.to_string()),
        StoreError::BadRequest(_) | StoreError::TooLarge(_) => problem(StatusCode::BAD_REQUEST, e.to_string()),
        StoreError::Db(_) | StoreError::Unavailable(_) => {
            tracing::error!(error = %e, "inbox: store failure");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the bus store is unavailable; reload shortly".into())
        }
    }
}

#[derive(Template)]
#[template(path = "inbox/problem.html")]
struct ProblemPage {
    message: String,
}

#[derive(Template)]
#[template(path = "inbox/index.html")]
struct IndexPage {
    human: String,
    token: String,
    query: String,
    conversations: Vec<Conversation>,
    hits: Option<Vec<MessageView>>,
    newest: String,
    machines: Vec<String>,
}

#[derive(Template)]
#[template(path = "inbox/thread.html")]
struct ThreadPage {
    human: String,
    token: String,
    thread: ThreadView,
    newest: String,
}

#[derive(serde::Deserialize)]
struct IndexQuery {
    #[serde(default)]
    q: String,
}

async fn newest(store: &dyn BusStore, human: &str) -> Result<String, StoreError> {
    Ok(store.inbox().recent(human, 1).await?.first().map(|m| m.msg.id.0.clone()).unwrap_or_default())
}

async fn index(State(st): State<InboxState>, Query(q): Query<IndexQuery>) -> Response {
    let human = &st.settings.human;
    let inbox = st.store.inbox();
    let recent = match inbox.recent(human, PAGE_MESSAGES).await {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let query = q.q.trim().to_string();
    let hits = if query.is_empty() {
        None
    } else {
        match inbox.search(human, &query, SEARCH_HITS).await {
            Ok(h) => Some(h.iter().map(|m| MessageView::new(m, human)).collect()),
            Err(e) => return store_problem(e),
        }
    };
    let newest = recent.first().map(|m| handoff_channels::untrusted::inline(m.msg.id.as_str())).unwrap_or_default();
    let conversations = view::conversations(&recent, human);
    let mut machines: Vec<String> =
        conversations.iter().map(|c| c.machine.clone()).filter(|m| m != BROADCAST).collect();
    machines.sort();
    page(
        StatusCode::OK,
        IndexPage {
            human: human.clone(),
            token: st.settings.form_token.clone(),
            query,
            conversations,
            hits,
            newest,
            machines,
        },
    )
}

/// The whole thread `id` belongs to: up its `re:` links to the first message, then down every reply.
async fn load_thread(inbox: &dyn InboxStore, human: &str, id: &str) -> Result<Option<ThreadView>, StoreError> {
    let Some(start) = inbox.by_ids(human, &[id.to_string()]).await?.pop() else { return Ok(None) };
    let mut root = start.clone();
    let mut seen: HashSet<String> = HashSet::from([start.msg.id.0.clone()]);
    for _ in 0..64 {
        let Some(parent) = replied_to(&root.msg.tags).map(str::to_string) else { break };
        if !seen.insert(parent.clone()) {
            break;
        }
        match inbox.by_ids(human, &[parent]).await?.pop() {
            Some(p) => root = p,
            None => break,
        }
    }
    let mut all: HashMap<String, InboxMessage> = HashMap::from([(root.msg.id.0.clone(), root.clone())]);
    let mut frontier = vec![root.msg.id.0.clone()];
    while !frontier.is_empty() && all.len() < MAX_THREAD {
        let replies = inbox.replies_to(human, &frontier).await?;
        frontier = replies.iter().map(|r| r.msg.id.0.clone()).filter(|i| !all.contains_key(i)).collect();
        for r in replies {
            all.entry(r.msg.id.0.clone()).or_insert(r);
        }
    }
    let mut messages: Vec<InboxMessage> = all.into_values().collect();
    // newest first, as `conversations` expects stored order; the seq order is the id order for the
    // store's decimal ids, and timestamps break ties for others
    messages.sort_by(|a, b| {
        let key = |m: &InboxMessage| (m.msg.id.as_number(), m.msg.ts.clone());
        key(b).cmp(&key(a))
    });
    let mut convs = view::conversations(&messages, human);
    let root_id = handoff_channels::untrusted::inline(root.msg.id.as_str());
    let thread = convs.iter_mut().flat_map(|c| c.threads.drain(..)).find(|t| t.root == root_id).map(|mut t| {
        t.machine = view::machine_of(&t.messages, human);
        t
    });
    Ok(thread)
}

async fn thread(State(st): State<InboxState>, Path(id): Path<String>) -> Response {
    let human = &st.settings.human;
    let t = match load_thread(st.store.inbox(), human, &id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("no message with id {}", handoff_channels::untrusted::inline(&id)),
            );
        }
        Err(e) => return store_problem(e),
    };
    let newest = match newest(st.store.as_ref(), human).await {
        Ok(n) => handoff_channels::untrusted::inline(&n),
        Err(e) => return store_problem(e),
    };
    page(StatusCode::OK, ThreadPage { human: human.clone(), token: st.settings.form_token.clone(), thread: t, newest })
}

#[derive(serde::Deserialize)]
struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    re: String,
}

#[derive(serde::Deserialize)]
struct ReadForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the form could not be read: {e}")))
}

fn check(st: &InboxState, headers: &HeaderMap, token: &str) -> Result<(), Response> {
    guard::check_post(headers, st.settings.public_url.as_deref(), &st.settings.form_token, token).map_err(|f| {
        tracing::warn!(refusal = %f, "inbox: form post refused");
        problem(StatusCode::FORBIDDEN, f.to_string())
    })
}

/// A message or reply from the person. A reply goes to the thread's machine, tagged `re:<id>`.
async fn send(State(st): State<InboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let f: SendForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = check(&st, &headers, &f.csrf) {
        return r;
    }
    let human = st.settings.human.clone();
    let text = f.body.replace("\r\n", "\n");
    if text.trim().is_empty() {
        return problem(StatusCode::BAD_REQUEST, "the message is empty; write something".into());
    }
    let (to, tags, back) = if f.re.is_empty() {
        let to = f.to.trim().to_string();
        let to = if to.is_empty() { BROADCAST.to_string() } else { to };
        if to != BROADCAST && crate::config::validate_machine(&to).is_err() {
            return problem(
                StatusCode::BAD_REQUEST,
                "`to` must be a machine name (letters, digits, - _ .) or any".into(),
            );
        }
        (to, Vec::new(), None)
    } else {
        let t = match load_thread(st.store.inbox(), &human, &f.re).await {
            Ok(Some(t)) => t,
            Ok(None) => return problem(StatusCode::NOT_FOUND, "the message replied to does not exist".into()),
            Err(e) => return store_problem(e),
        };
        (t.machine.clone(), vec![reply_tag(&f.re)], Some(t.root))
    };
    match st.store.post(NewMessage { from: human, to, body: text, tags }, None).await {
        Ok(m) => Redirect::to(&format!("/inbox/t/{}", back.unwrap_or(m.id.0))).into_response(),
        Err(e) => store_problem(e),
    }
}

/// Acks every message of the thread as the person.
async fn mark_read(State(st): State<InboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let f: ReadForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = check(&st, &headers, &f.csrf) {
        return r;
    }
    let human = &st.settings.human;
    let t = match load_thread(st.store.inbox(), human, &f.id).await {
        Ok(Some(t)) => t,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "no such thread".into()),
        Err(e) => return store_problem(e),
    };
    for m in t.messages.iter().filter(|m| !m.read) {
        if let Err(e) = st.store.ack(m.id.clone(), human.clone()).await {
            return store_problem(e);
        }
    }
    Redirect::to(&format!("/inbox/t/{}", t.root)).into_response()
}
