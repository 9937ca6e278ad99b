//! The four routes of the original bus, plus auth, limits and JSON errors.

// Handlers return `Result<_, Response>`: the error *is* the finished HTTP answer, built once; boxing it
// would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use super::{MAX_REQUEST, ServeSettings, store::BusStore};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use handoff_channels::bus::store::{StoreError, check_name, now_ts};
use handoff_channels::bus::{IDEMPOTENCY_HEADER, MessageQuery, NewMessage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Clone)]
struct AppState {
    settings: Arc<ServeSettings>,
    store: Arc<dyn BusStore>,
    credentials_digest: [u8; 32],
    auth_limiter: Arc<super::guard::AuthLimiter>,
}

pub(super) fn router(
    settings: ServeSettings,
    store: Arc<dyn BusStore>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let credentials_digest = digest(&settings.user, &settings.password);
    let timeout = settings.request_timeout;
    let auth_limiter = Arc::new(super::guard::AuthLimiter::default());
    let inbox = super::inbox::InboxSettings {
        human: settings.human.clone(),
        public_url: settings.public_url.clone(),
        form_token: super::inbox::guard::form_token(&settings.user, &settings.password),
    };
    // Twilio proves itself with its signature, not basic auth: its route sits outside require_auth
    let twilio = match settings.twilio.clone() {
        Some(t) => super::twilio::routes(t, store.clone()),
        None => Router::new(),
    };
    let state = AppState { settings: Arc::new(settings), store, credentials_digest, auth_limiter };
    Router::new()
        .route("/health", get(health))
        .route("/post", post(post_message))
        .route("/messages", get(messages))
        .route("/ack/{id}", post(ack))
        .route("/ack", post(ack_batch))
        .merge(super::inbox::routes(inbox, state.store.clone(), stopping))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .merge(twilio)
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .layer(middleware::from_fn(super::guard::limit_headers))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .with_state(state)
}

fn digest(user: &str, pass: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(pass.as_bytes());
    h.finalize().into()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        StoreError::BadRequest(_) => error(StatusCode::BAD_REQUEST, e.to_string()),
        StoreError::TooLarge(_) => error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        StoreError::Db(_) | StoreError::Unavailable(_) => {
            tracing::error!(error = %e, "store failure");
            error(StatusCode::SERVICE_UNAVAILABLE, "the bus store is unavailable; retry shortly")
        }
    }
}

/// HTTP basic auth on every route, compared in constant time (digests of equal length).
/// A client address that failed too often in the last minute gets 429 whatever it sends.
async fn require_auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let ip = peer.map(|p| super::guard::client_ip(p, forwarded, &st.settings.trusted_proxies));
    if let Some(wait) = ip.and_then(|ip| st.auth_limiter.blocked(ip)) {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many failed logins from this address; wait and retry");
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs().max(1)));
        return r;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| digest(u, p)));
    let ok = given.is_some_and(|d| bool::from(d.ct_eq(&st.credentials_digest)));
    if !ok {
        if let Some(ip) = ip {
            st.auth_limiter.failed(ip);
        }
        let mut r = error(StatusCode::UNAUTHORIZED, "authentication required");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"bus\""));
        return r;
    }
    next.run(req).await
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; the bus has /health, /post, /messages, /ack/<id>, /ack and the web inbox at /inbox",
    )
}

/// `{ok, count, now}` as the original, plus which store serves and whether it is reachable, the store's
/// instance id (a client notices a reset by it) and the extensions offered (`batch_ack`); 503 with
/// `ok: false` while the store is unreachable (load balancers take the replica out meanwhile).
async fn health(State(st): State<AppState>) -> Response {
    use handoff_channels::bus::{BATCH_ACK_FEATURE, FEATURES_FIELD, INSTANCE_FIELD};
    match st.store.count().await {
        Ok(count) => Json(json!({
            "ok": true,
            "count": count,
            "now": now_ts(),
            "store": st.store.describe(),
            "store_reachable": true,
            INSTANCE_FIELD: st.store.instance(),
            FEATURES_FIELD: [BATCH_ACK_FEATURE, "idempotency_key", "wait"],
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health: store unreachable");
            let body = json!({
                "ok": false,
                "now": now_ts(),
                "store": st.store.describe(),
                "store_reachable": false,
                "error": "the bus store is unavailable; retry shortly",
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

fn parse_json(body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_REQUEST} bytes"))
        } else {
            error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))
        }
    })?;
    serde_json::from_slice::<Value>(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
}

fn field_str<'a>(v: &'a Value, name: &str, required: bool) -> Result<Option<&'a str>, Response> {
    match v.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(error(StatusCode::BAD_REQUEST, format!("missing field `{name}`"))),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(StatusCode::BAD_REQUEST, format!("field `{name}` must be a string"))),
    }
}

async fn post_message(State(st): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let v = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !v.is_object() {
        return error(StatusCode::BAD_REQUEST, "the request must be a JSON object {from, to?, body, tags?}");
    }
    let parsed = (|| {
        let from = field_str(&v, "from", true)?.unwrap_or_default().to_string();
        let to = field_str(&v, "to", false)?.unwrap_or(handoff_channels::bus::BROADCAST).to_string();
        let body = field_str(&v, "body", true)?.unwrap_or_default().to_string();
        let tags = match v.get("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "`tags` must be a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(error(StatusCode::BAD_REQUEST, "`tags` must be a list of strings")),
        };
        Ok::<_, Response>(NewMessage { from, to, body, tags })
    })();
    let msg = match parsed {
        Ok(m) => m,
        Err(r) => return r,
    };
    let key = match headers.get(IDEMPOTENCY_HEADER).map(|h| h.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 200 => Some(k.to_string()),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{IDEMPOTENCY_HEADER} must be 1-200 visible ASCII characters"),
            );
        }
    };
    match st.store.post(msg, key).await {
        Ok(m) => Json(m).into_response(),
        Err(e) => store_error(e),
    }
}

async fn messages(State(st): State<AppState>, query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Response {
    let Ok(Query(pairs)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let mut q = MessageQuery::default();
    let mut wait = None;
    for (k, v) in pairs {
        match k.as_str() {
            "since" => q.since = Some(v),
            "to" => q.to = Some(v),
            "from" => q.from = Some(v),
            "unread_by" => q.unread_by = Some(v),
            "limit" => match v.trim().parse::<i64>() {
                Ok(n) if n >= 1 => q.limit = Some(n.min(u32::MAX as i64) as u32),
                _ => return error(StatusCode::BAD_REQUEST, format!("`limit` must be a positive integer, got {v:?}")),
            },
            "wait" => match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => {
                    wait = Some(std::time::Duration::from_secs_f64(s.min(st.settings.max_wait.as_secs_f64())))
                }
                _ => return error(StatusCode::BAD_REQUEST, format!("`wait` must be a number of seconds, got {v:?}")),
            },
            _ => {} // tolerate unknown parameters, as the original does
        }
    }
    for (name, v) in [("to", &q.to), ("from", &q.from), ("unread_by", &q.unread_by)] {
        if let Some(v) = v
            && let Err(e) = check_name(name, v)
        {
            return store_error(e);
        }
    }
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        // subscribe before querying so a post between the query and the wait is not missed
        let notify = st.store.new_messages();
        let notified = notify.notified();
        match st.store.messages(q.clone()).await {
            Ok(ms) if !ms.is_empty() || deadline.is_none_or(|d| tokio::time::Instant::now() >= d) => {
                return Json(json!({ "messages": ms })).into_response();
            }
            Ok(_) => {
                let d = deadline.expect("checked above");
                if tokio::time::timeout_at(d, notified).await.is_err() {
                    return Json(json!({ "messages": [] })).into_response();
                }
            }
            Err(e) => return store_error(e),
        }
    }
}

async fn ack(State(st): State<AppState>, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> Response {
    let v = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let reader = match field_str(&v, "reader", true) {
        Ok(r) => r.unwrap_or_default().to_string(),
        Err(r) => return r,
    };
    match st.store.ack(id, reader).await {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(e) => store_error(e),
    }
}

/// The batch ack extension: `POST /ack` with `{"reader", "ids": [...]}` (at most
/// [`MAX_BATCH_ACK`](handoff_channels::bus::MAX_BATCH_ACK) ids, strings or numbers). Acks every known id in
/// one commit and answers `{"ok": true, "acked": n, "not_found": [...]}`; idempotent like the per-id route.
async fn ack_batch(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    use handoff_channels::bus::MAX_BATCH_ACK;
    let v = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let reader = match field_str(&v, "reader", true) {
        Ok(r) => r.unwrap_or_default().to_string(),
        Err(r) => return r,
    };
    if let Err(e) = check_name("reader", &reader) {
        return store_error(e);
    }
    let Some(list) = v.get("ids").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "missing field `ids` (a list of message ids)");
    };
    if list.len() > MAX_BATCH_ACK {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {MAX_BATCH_ACK} ids per batch ack, got {}; send several", list.len()),
        );
    }
    let mut ids = Vec::with_capacity(list.len());
    for id in list {
        match id {
            Value::String(s) if !s.is_empty() && s.len() <= 200 => ids.push(s.clone()),
            Value::Number(n) => ids.push(n.to_string()),
            _ => return error(StatusCode::BAD_REQUEST, "`ids` must hold message ids (strings or numbers)"),
        }
    }
    let results = st.store.ack_many(ids.clone(), reader).await;
    let mut not_found = Vec::new();
    for (id, r) in ids.into_iter().zip(results) {
        match r {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => not_found.push(id),
            Err(e) => return store_error(e),
        }
    }
    let acked = list.len() - not_found.len();
    Json(json!({ "ok": true, "acked": acked, "not_found": not_found })).into_response()
}
