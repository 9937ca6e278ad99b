//! The bus client over HTTP: the original API (SPEC §5) and nothing more, with timeouts and retries with
//! backoff on transient failures only.

use super::{
    AckRefusals, BusApi, HealthInfo, IDEMPOTENCY_HEADER, MAX_BATCH_ACK, Message, MessageId, MessageQuery, NewMessage,
};
use crate::ChannelError;
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// How to reach an HTTP bus.
#[derive(Clone)]
pub struct HttpBusConfig {
    /// Base URL, e.g. `https://bus.example.com` (a trailing slash is fine).
    pub url: String,
    /// Basic-auth user (the original uses `claude`).
    pub user: String,
    /// Basic-auth password; never logged or shown.
    pub password: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Longest wait for a connection to open (a bus that is down should not cost the whole timeout).
    pub connect_timeout: Duration,
    /// Attempts for a transient failure (1 = no retry).
    pub attempts: u32,
}

impl std::fmt::Debug for HttpBusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBusConfig")
            .field("url", &crate::untrusted::redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A bus reached over HTTP(S).
pub struct HttpBus {
    cfg: HttpBusConfig,
    /// The URL as shown in messages, logs and receipts: any `user:password@` replaced.
    shown: String,
    client: reqwest::Client,
    /// What `/health` said about the batch ack, once asked (one client per command, so one answer).
    batch_ack: std::sync::OnceLock<bool>,
}

#[derive(Deserialize)]
struct MessagesPage {
    messages: Vec<Message>,
}

impl HttpBus {
    /// Builds the client (rustls, no system proxy surprises beyond reqwest's defaults). Every request of
    /// one command goes through this one client, so they share its kept-alive connections.
    pub fn new(cfg: HttpBusConfig) -> Result<Self, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout.min(cfg.timeout))
            .pool_max_idle_per_host(super::ACK_CONCURRENCY)
            .tcp_nodelay(true)
            .user_agent(concat!("handoff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::permanent(format!("cannot build the HTTP client: {e}")))?;
        let shown = crate::untrusted::redact_url(&cfg.url);
        Ok(Self { cfg, shown, client, batch_ack: std::sync::OnceLock::new() })
    }

    /// One `POST /ack` with up to [`MAX_BATCH_ACK`] ids; ids the bus does not know come back refused.
    async fn ack_batch(&self, ids: &[MessageId], reader: &str) -> Result<AckRefusals, ChannelError> {
        #[derive(Deserialize)]
        struct BatchAnswer {
            #[serde(default)]
            not_found: Vec<MessageId>,
        }
        let url = self.url("ack");
        let body = serde_json::json!({ "reader": reader, "ids": ids });
        let what = format!("acking {} message(s)", ids.len());
        let resp = self.send(&what, || self.client.post(&url).json(&body)).await?;
        let answer: BatchAnswer = self.json(&what, resp).await?;
        Ok(answer
            .not_found
            .into_iter()
            .map(|id| {
                let e = ChannelError::permanent(format!("acking message {id}: the bus does not know it"));
                (id, e)
            })
            .collect())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.cfg.url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    /// Sends one request with retries; `build` makes a fresh request for each attempt.
    async fn send<F>(&self, what: &str, build: F) -> Result<reqwest::Response, ChannelError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut delay = Duration::from_millis(200);
        let attempts = self.cfg.attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            let result = build().basic_auth(&self.cfg.user, Some(&self.cfg.password)).send().await;
            let err = match result {
                Ok(resp) => match classify(resp.status()) {
                    None => return Ok(resp),
                    Some(kind) => {
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        let detail = error_text(&text);
                        let e = match (kind, status) {
                            (_, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ChannelError::auth(format!(
                                "{what}: the bus at {} refused the credentials ({status}); check BUS_USER/BUS_PASS in the env file",
                                self.shown
                            )),
                            (true, _) => ChannelError::transient(format!("{what}: bus answered {status}{detail}")),
                            (false, _) => ChannelError::permanent(format!("{what}: bus answered {status}{detail}")),
                        };
                        if !e.is_transient() {
                            return Err(e);
                        }
                        e
                    }
                },
                Err(e) => {
                    ChannelError::transient(format!("{what}: cannot reach the bus at {}: {}", self.shown, describe(&e)))
                }
            };
            tracing::debug!(attempt, error = %err, "bus request failed");
            last = Some(err);
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<T, ChannelError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ChannelError::transient(format!("{what}: reading the answer: {}", describe(&e))))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ChannelError::permanent(format!(
                "{what}: the bus at {} answered something that is not the bus API ({e})",
                self.shown
            ))
        })
    }
}

/// `None` for success, `Some(retryable)` for a failure status.
fn classify(status: StatusCode) -> Option<bool> {
    if status.is_success() {
        None
    } else {
        Some(
            status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT,
        )
    }
}

fn error_text(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match v.as_ref().and_then(|v| v.get("error")).and_then(|e| e.as_str()) {
        Some(e) => format!(": {e}"),
        None if !body.trim().is_empty() && body.len() < 200 => format!(": {}", body.trim()),
        None => String::new(),
    }
}

/// A reqwest error without the URL's query (which never holds secrets here, but keep messages short).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        let mut s = e.to_string();
        if let Some(u) = e.url() {
            s = s.replace(u.as_str(), "");
        }
        s
    };
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[async_trait]
impl BusApi for HttpBus {
    fn location(&self) -> String {
        self.shown.clone()
    }

    async fn post(&self, msg: &NewMessage, idempotency_key: &str) -> Result<Message, ChannelError> {
        let url = self.url("post");
        let resp = self
            .send("posting to the bus", || {
                self.client.request(Method::POST, &url).header(IDEMPOTENCY_HEADER, idempotency_key).json(msg)
            })
            .await?;
        self.json("posting to the bus", resp).await
    }

    async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>, ChannelError> {
        self.list(q, None).await
    }

    async fn wait_messages(&self, q: &MessageQuery, wait: Duration) -> Result<Vec<Message>, ChannelError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let asked = tokio::time::Instant::now();
            let page = self.list(q, Some(deadline.saturating_duration_since(asked))).await?;
            let now = tokio::time::Instant::now();
            if !page.is_empty() || now >= deadline {
                return Ok(page);
            }
            // an empty answer well before the deadline: a bus without `wait=` (the original); pace ourselves
            if now - asked < Duration::from_secs(1) {
                tokio::time::sleep((deadline - now).min(Duration::from_secs(2))).await;
            }
        }
    }

    async fn ack(&self, id: &MessageId, reader: &str) -> Result<(), ChannelError> {
        let url = self.url(&format!("ack/{}", urlencode(id.as_str())));
        let body = serde_json::json!({ "reader": reader });
        self.send(&format!("acking message {id}"), || self.client.post(&url).json(&body)).await?;
        Ok(())
    }

    async fn ack_many(&self, ids: &[MessageId], reader: &str) -> Result<AckRefusals, ChannelError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // ask once per command whether the bus takes a batch ack (sync asks /health first anyway)
        let batch = match self.batch_ack.get() {
            Some(b) => *b,
            None => self.health().await?.batch_ack(),
        };
        if !batch {
            return super::ack_concurrently(self, ids, reader).await;
        }
        let mut refused = Vec::new();
        for chunk in ids.chunks(MAX_BATCH_ACK) {
            refused.extend(self.ack_batch(chunk, reader).await?);
        }
        Ok(refused)
    }

    async fn health(&self) -> Result<HealthInfo, ChannelError> {
        let url = self.url("health");
        let resp = self.send("bus health", || self.client.get(&url)).await?;
        let h: HealthInfo = self.json("bus health", resp).await?;
        let _ = self.batch_ack.set(h.batch_ack());
        Ok(h)
    }
}

impl HttpBus {
    /// `GET /messages`, with the server's `wait=` long-poll (whole seconds) when `wait` is given; the
    /// request's timeout grows by the wait.
    async fn list(&self, q: &MessageQuery, wait: Option<Duration>) -> Result<Vec<Message>, ChannelError> {
        let url = self.url("messages");
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(v) = &q.since {
            params.push(("since", v.clone()));
        }
        if let Some(v) = &q.to {
            params.push(("to", v.clone()));
        }
        if let Some(v) = &q.from {
            params.push(("from", v.clone()));
        }
        if let Some(v) = &q.unread_by {
            params.push(("unread_by", v.clone()));
        }
        if let Some(v) = q.limit {
            params.push(("limit", v.to_string()));
        }
        let timeout = self.cfg.timeout + wait.unwrap_or_default();
        if let Some(w) = wait.filter(|w| !w.is_zero()) {
            params.push(("wait", w.as_secs().max(1).to_string()));
        }
        let resp = self.send("reading the bus", || self.client.get(&url).query(&params).timeout(timeout)).await?;
        let page: MessagesPage = self.json("reading the bus", resp).await?;
        Ok(page.messages)
    }
}

/// Percent-encodes an id for use as one path segment.
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
