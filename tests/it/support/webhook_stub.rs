//! Slack and Discord incoming webhooks on loopback (axum), answering as the services document:
//!
//! - Slack (`POST /slack/services/T…/B…/…`): `200 ok`; `400 no_text` without text, `400 msg_too_long`
//!   past 40,000 characters; `404 no_service` once the webhook is deleted; `429` with `Retry-After`.
//! - Discord (`POST /discord/api/webhooks/<id>/<token>`): `204` without `?wait=true`, `200` with the created
//!   message (`id`, `channel_id`, `content`) with it; `400` with Discord's error JSON (`code` 50035,
//!   `Invalid Form Body`) past 2,000 characters; `404 {"message": "Unknown Webhook", "code": 10015}` once
//!   deleted; `429` with `retry_after` in the JSON body and the `Retry-After` / `X-RateLimit-*` headers;
//!   `GET` on the URL answers the webhook object.
//!
//! A scripted `429` is enforced: a retry that comes before the wait it asked for is answered `429` again
//! (and counted as early), so a client that ignores the wait fails the test.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One accepted post.
#[derive(Debug, Clone)]
pub struct Post {
    /// `slack` or `discord`.
    pub service: &'static str,
    /// The text (`text` or `content`).
    pub text: String,
    /// The whole JSON payload.
    pub payload: serde_json::Value,
    /// The message id answered (Discord with `?wait=true`).
    pub id: Option<String>,
}

#[derive(Default)]
struct Inner {
    posts: Vec<Post>,
    requests: Vec<(Instant, &'static str, u16)>,
    rate_limits: Vec<f64>,
    blocked_until: Option<Instant>,
    early: usize,
    deleted: bool,
    fail_5xx: usize,
    next_id: u64,
}

/// The running stub.
pub struct WebhookStub {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

/// The Slack webhook path of the stub.
pub const SLACK_PATH: &str = "/slack/services/T0HANDOFF/B0HANDOFF/x8Yw2Qp4Lr6Nv0Tz3Ks5Mh7J";
/// The Discord webhook path of the stub.
pub const DISCORD_PATH: &str = "/discord/api/webhooks/123456789012345678/aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7sU9w";

impl WebhookStub {
    /// Starts both services on one loopback port.
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner { next_id: 1_180_000_000_000_000_000, ..Default::default() }));
        let app = axum::Router::new()
            .route("/slack/services/{a}/{b}/{c}", post(slack))
            .route("/discord/api/webhooks/{id}/{token}", post(discord).get(discord_get))
            .with_state(inner.clone());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        WebhookStub { base: format!("http://127.0.0.1:{port}"), inner }
    }

    /// The Slack webhook URL.
    pub fn slack_url(&self) -> String {
        format!("{}{SLACK_PATH}", self.base)
    }

    /// The Discord webhook URL.
    pub fn discord_url(&self) -> String {
        format!("{}{DISCORD_PATH}", self.base)
    }

    /// The next requests answer `429`, asking to wait `secs` each.
    pub fn rate_limit(&self, waits: &[f64]) {
        self.inner.lock().unwrap().rate_limits.extend_from_slice(waits);
    }

    /// Deletes the webhook (both services answer 404 from now on).
    pub fn delete(&self) {
        self.inner.lock().unwrap().deleted = true;
    }

    /// The next `n` requests answer 500.
    pub fn fail(&self, n: usize) {
        self.inner.lock().unwrap().fail_5xx = n;
    }

    /// Accepted posts.
    pub fn posts(&self) -> Vec<Post> {
        self.inner.lock().unwrap().posts.clone()
    }

    /// Every request: when, which service, the status answered.
    pub fn requests(&self) -> Vec<(Instant, &'static str, u16)> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Retries that came before the wait a `429` asked for.
    pub fn early_retries(&self) -> usize {
        self.inner.lock().unwrap().early
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

/// The rate-limit, failure and deletion rules both services share; `Some` = answered already.
fn gate(s: &mut Inner, service: &'static str) -> Option<(StatusCode, f64)> {
    let now = Instant::now();
    if s.deleted {
        return Some((StatusCode::NOT_FOUND, 0.0));
    }
    if let Some(until) = s.blocked_until
        && now < until
    {
        s.early += 1;
        return Some((StatusCode::TOO_MANY_REQUESTS, (until - now).as_secs_f64()));
    }
    if !s.rate_limits.is_empty() {
        let wait = s.rate_limits.remove(0);
        s.blocked_until = Some(now + Duration::from_secs_f64(wait));
        return Some((StatusCode::TOO_MANY_REQUESTS, wait));
    }
    if s.fail_5xx > 0 {
        s.fail_5xx -= 1;
        return Some((StatusCode::INTERNAL_SERVER_ERROR, 0.0));
    }
    let _ = service;
    None
}

async fn slack(State(st): Shared, body: String) -> Response {
    let mut s = st.lock().unwrap();
    let answer = |s: &mut Inner, code: StatusCode, text: &str, headers: Vec<(&'static str, String)>| {
        s.requests.push((Instant::now(), "slack", code.as_u16()));
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(k, v.parse().unwrap());
        }
        (code, h, text.to_string()).into_response()
    };
    if let Some((code, wait)) = gate(&mut s, "slack") {
        return match code {
            StatusCode::TOO_MANY_REQUESTS => {
                answer(&mut s, code, "rate_limited", vec![("retry-after", format!("{}", wait.ceil() as u64))])
            }
            StatusCode::NOT_FOUND => answer(&mut s, code, "no_service", vec![]),
            _ => answer(&mut s, code, "internal_error", vec![]),
        };
    }
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(&body) else {
        return answer(&mut s, StatusCode::BAD_REQUEST, "invalid_payload", vec![]);
    };
    let Some(text) = payload.get("text").and_then(|t| t.as_str()).filter(|t| !t.is_empty()).map(str::to_string) else {
        return answer(&mut s, StatusCode::BAD_REQUEST, "no_text", vec![]);
    };
    if text.chars().count() > 40_000 {
        return answer(&mut s, StatusCode::BAD_REQUEST, "msg_too_long", vec![]);
    }
    s.posts.push(Post { service: "slack", text, payload, id: None });
    answer(&mut s, StatusCode::OK, "ok", vec![])
}

fn discord_json(
    s: &mut Inner,
    code: StatusCode,
    body: serde_json::Value,
    headers: Vec<(&'static str, String)>,
) -> Response {
    s.requests.push((Instant::now(), "discord", code.as_u16()));
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in headers {
        h.insert(k, v.parse().unwrap());
    }
    (code, h, body.to_string()).into_response()
}

async fn discord(
    State(st): Shared,
    Path((id, _token)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Some((code, wait)) = gate(&mut s, "discord") {
        return match code {
            StatusCode::TOO_MANY_REQUESTS => discord_json(
                &mut s,
                code,
                serde_json::json!({"message": "You are being rate limited.", "retry_after": wait, "global": false}),
                vec![
                    ("retry-after", format!("{}", wait.ceil() as u64)),
                    ("x-ratelimit-limit", "5".into()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset-after", format!("{wait:.3}")),
                    ("x-ratelimit-bucket", "0d5b6c3e9f".into()),
                    ("x-ratelimit-scope", "shared".into()),
                ],
            ),
            StatusCode::NOT_FOUND => {
                discord_json(&mut s, code, serde_json::json!({"message": "Unknown Webhook", "code": 10015}), vec![])
            }
            _ => discord_json(
                &mut s,
                code,
                serde_json::json!({"message": "500: Internal Server Error", "code": 0}),
                vec![],
            ),
        };
    }
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let content = payload.get("content").and_then(|c| c.as_str()).unwrap_or("").to_string();
    if content.chars().count() > 2000 {
        return discord_json(
            &mut s,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 50035, "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}, "message": "Invalid Form Body"}),
            vec![],
        );
    }
    if content.is_empty() {
        return discord_json(
            &mut s,
            StatusCode::BAD_REQUEST,
            serde_json::json!({"message": "Cannot send an empty message", "code": 50006}),
            vec![],
        );
    }
    s.next_id += 1;
    let msg_id = s.next_id.to_string();
    let wait = q.get("wait").is_some_and(|w| w == "true");
    s.posts.push(Post { service: "discord", text: content.clone(), payload, id: wait.then(|| msg_id.clone()) });
    let limits = vec![("x-ratelimit-limit", "5".to_string()), ("x-ratelimit-remaining", "4".to_string())];
    if wait {
        discord_json(
            &mut s,
            StatusCode::OK,
            serde_json::json!({"id": msg_id, "type": 0, "content": content, "channel_id": "998877665544332211", "webhook_id": id}),
            limits,
        )
    } else {
        s.requests.push((Instant::now(), "discord", 204));
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn discord_get(State(st): Shared, Path((id, _token)): Path<(String, String)>) -> Response {
    let mut s = st.lock().unwrap();
    if s.deleted {
        return discord_json(
            &mut s,
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": "Unknown Webhook", "code": 10015}),
            vec![],
        );
    }
    discord_json(
        &mut s,
        StatusCode::OK,
        serde_json::json!({"id": id, "type": 1, "channel_id": "998877665544332211", "name": "handoff"}),
        vec![],
    )
}
