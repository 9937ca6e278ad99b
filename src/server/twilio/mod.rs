//! Twilio's inbound-SMS webhook at `POST /twilio/sms` (`handoff bus serve --twilio-webhook`): a person's
//! text answer to a page becomes a bus message to the machine that paged them.
//!
//! Checked in this order, each failure a 403 with nothing stored: the `X-Twilio-Signature` (HMAC-SHA1 with
//! the auth token over the public URL and the sorted POST parameters, see [`signature`]), then the sender
//! (only `--twilio-allow` numbers). The message is addressed to `@machine` when the text starts with that,
//! else to the sender of the latest urgent message paged to that number in the last 24 hours (found by its
//! `paged:<hash>` tag), else to `any`; it is tagged `sms-reply` and `re:<id>` of the page's message. It is
//! stored under the idempotency key `twilio:<MessageSid>` before the answer (an empty TwiML
//! `<Response/>`), so Twilio's retry of the same message stores nothing new.

// Handlers return `Result<_, Response>`: the error *is* the finished HTTP answer.
#![allow(clippy::result_large_err)]

pub mod signature;

use super::store::BusStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use handoff_channels::bus::tags::{SMS_REPLY_TAG, paged_tag, reply_tag};
use handoff_channels::bus::{BROADCAST, NewMessage};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The path Twilio posts to.
pub const PATH: &str = "/twilio/sms";
/// How far back a page is answered by a reply.
pub const PAGE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The header carrying Twilio's signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// `--twilio-webhook` settings.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The account's auth token (from `TWILIO_TOKEN` or the env file).
    pub token: String,
    /// The URL Twilio calls, exactly as configured in Twilio's console (`--public-url` + `/twilio/sms`).
    pub url: String,
    /// Numbers whose texts are taken (E.164).
    pub allow: Vec<String>,
    /// The `from` of the bus messages (`--twilio-human`).
    pub human: String,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("allow", &self.allow.len())
            .field("human", &self.human)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Checks an E.164 number (`+`, 8 to 15 digits, no leading zero), as `[sms] to` numbers are checked.
pub fn check_number(n: &str) -> anyhow::Result<String> {
    let digits = n.strip_prefix('+').unwrap_or("");
    if n.starts_with('+')
        && (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(n.to_string())
    } else {
        anyhow::bail!(
            "--twilio-allow {n:?} is not an E.164 phone number; write + then country code and number, e.g. +15552223333"
        )
    }
}

#[derive(Clone)]
struct WebhookState {
    settings: Arc<WebhookSettings>,
    store: Arc<dyn BusStore>,
}

/// The webhook's route (outside basic auth: Twilio proves itself with its signature).
pub fn routes<S: Clone + Send + Sync + 'static>(settings: WebhookSettings, store: Arc<dyn BusStore>) -> Router<S> {
    Router::new().route(PATH, post(inbound)).with_state(WebhookState { settings: Arc::new(settings), store })
}

fn refuse(status: StatusCode, why: &str) -> Response {
    tracing::warn!(status = status.as_u16(), why, "twilio webhook refused a request");
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{why}\n")).into_response()
}

fn twiml_empty() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response()
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn inbound(
    State(st): State<WebhookState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "the body must be form-encoded, as Twilio sends it"),
    };
    let Some(sig) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return refuse(StatusCode::FORBIDDEN, "missing X-Twilio-Signature");
    };
    // Twilio signs the URL it called, query string included
    let url = match &query {
        Some(q) => format!("{}?{q}", st.settings.url),
        None => st.settings.url.clone(),
    };
    if !signature::valid(&st.settings.token, &url, &params, sig) {
        return refuse(StatusCode::FORBIDDEN, "X-Twilio-Signature does not match (wrong token or --public-url?)");
    }
    let from = field(&params, "From").unwrap_or_default();
    if !st.settings.allow.iter().any(|n| n == from) {
        return refuse(StatusCode::FORBIDDEN, "this number is not allowed (--twilio-allow)");
    }
    let Some(sid) = field(&params, "MessageSid").or_else(|| field(&params, "SmsSid")).filter(|s| !s.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "no MessageSid");
    };
    let text = field(&params, "Body").unwrap_or_default();
    let msg = match route(st.store.as_ref(), &st.settings.human, from, text).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match st.store.post(msg, Some(format!("twilio:{sid}"))).await {
        Ok(m) => {
            tracing::info!(id = %m.id, to = %m.to, "sms reply stored");
            twiml_empty()
        }
        Err(e) => {
            tracing::error!(error = %e, "storing an sms reply failed");
            // not 200: Twilio retries, and the idempotency key keeps the retry to one message
            refuse(StatusCode::SERVICE_UNAVAILABLE, "the bus store is unavailable; Twilio will retry")
        }
    }
}

/// Where a text from `number` goes: `@machine rest` → that machine; else the sender of the latest page
/// to this number in the last day; else everyone. Tagged `sms-reply`, and `re:<id>` of the paged message
/// when there is one.
async fn route(store: &dyn BusStore, human: &str, number: &str, text: &str) -> Result<NewMessage, Response> {
    let since = humantime::format_rfc3339_micros(SystemTime::now() - PAGE_WINDOW).to_string();
    let tag = paged_tag(number);
    let (to, body) = match addressed(text) {
        Some((machine, rest)) => (Some(machine.to_string()), rest.to_string()),
        None => (None, text.trim().to_string()),
    };
    let page = store.inbox().latest_tagged(&tag, to.as_deref(), &since).await.map_err(|e| {
        tracing::error!(error = %e, "looking up the page an sms answers");
        refuse(StatusCode::SERVICE_UNAVAILABLE, "the bus store is unavailable; Twilio will retry")
    })?;
    let mut tags = vec![SMS_REPLY_TAG.to_string()];
    if let Some(p) = &page {
        tags.push(reply_tag(p.id.as_str()));
    }
    let to = to.or_else(|| page.map(|p| p.from)).unwrap_or_else(|| BROADCAST.to_string());
    Ok(NewMessage { from: human.to_string(), to, body, tags })
}

/// `@machine rest of text` → `(machine, rest)`, when the name is one handoff accepts.
fn addressed(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('@')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (name, body) = rest.split_at(end);
    crate::config::validate_machine(name).ok()?;
    Some((name, body.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_prefix_addresses_a_machine_and_anything_else_does_not() {
        assert_eq!(addressed("@linux-box restart it"), Some(("linux-box", "restart it")));
        assert_eq!(addressed("  @mac\n yes"), Some(("mac", "yes")));
        assert_eq!(addressed("@mac"), Some(("mac", "")));
        assert_eq!(addressed("yes @mac"), None);
        assert_eq!(addressed("@any hello"), None, "`any` is not a machine");
        assert_eq!(addressed("@bad/name x"), None);
        assert_eq!(addressed("@ x"), None);
    }

    #[test]
    fn numbers_are_checked_like_sms_recipients() {
        assert!(check_number("+15552223333").is_ok());
        for bad in ["5552223333", "+1", "+0555222333", "+1555222333a", ""] {
            assert!(check_number(bad).is_err(), "{bad}");
        }
    }
}
