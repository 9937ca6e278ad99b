//! What the Slack and Discord channels share: an incoming-webhook URL that is itself the secret, a JSON
//! POST that waits out a `429` (within a bound) and never leaks the URL in an error, text shortened to the
//! service's limit naming the bus message, and at most one attempt per idempotency key
//! ([`crate::sent_ledger`]), because neither service deduplicates.

use crate::{ChannelError, Parcel};
use std::time::Duration;

/// Longest single wait for a rate limit; a longer one leaves the parcel in the outbox for later.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// How many `429`s in a row are waited out before giving up for now.
pub const RATE_LIMIT_TRIES: usize = 4;

/// A webhook URL: a secret, shown only as its host.
#[derive(Clone)]
pub struct WebhookUrl(String);

/// The webhook URL a `[section]` names: `var` from the environment, else from the section's env file.
/// When neither has it, the error says `how` to create a webhook and where to put its URL.
pub fn configured_url(
    var: &str,
    env_file: Option<&std::path::Path>,
    section: &str,
    how: &str,
) -> Result<String, ChannelError> {
    crate::secret_source::lookup(var, env_file, &format!("[{section}] env_file"))?.ok_or_else(|| {
        ChannelError::permanent(format!(
            "[{section}] is configured but {var} is not set: {how} and put its URL in {var} (or in the env file \
             named by `env_file` in [{section}])"
        ))
    })
}

/// The HTTP client a webhook channel posts with (20 s per request).
pub fn client() -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| ChannelError::permanent(format!("HTTP client: {e}")))
}

impl WebhookUrl {
    /// Checks `url`: https (or http to loopback, for tests), with a path. `var` names where it came from.
    pub fn parse(url: &str, var: &str) -> Result<Self, ChannelError> {
        let ok_scheme = url.starts_with("https://")
            || ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p));
        let path = url.split("://").nth(1).and_then(|r| r.split_once('/')).map(|(_, p)| p).unwrap_or("");
        if !ok_scheme || path.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(ChannelError::permanent(format!(
                "{var} is not a webhook URL (expected https://…/…); copy it again from the service's settings"
            )));
        }
        Ok(Self(url.to_string()))
    }

    /// The URL itself (the secret): only for the request and the secret scanner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The host, safe to print.
    pub fn host(&self) -> &str {
        self.0.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("?")
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({}/<redacted>)", self.host())
    }
}

/// An answer from the service (any status).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
}

pub use crate::sent_ledger::AttemptError as PostError;

/// POSTs `payload` to `url`, waiting out `429`s: `wait_of` reads how long from the answer (capped by
/// [`MAX_RATE_LIMIT_WAIT`]; a longer demand is returned as [`PostError::NotSent`], transient).
pub async fn post_json(
    client: &reqwest::Client,
    url: &WebhookUrl,
    service: &str,
    payload: &serde_json::Value,
    wait_of: fn(&Answer) -> Option<Duration>,
) -> Result<Answer, PostError> {
    for _ in 0..RATE_LIMIT_TRIES {
        let sent = client.post(url.expose()).json(payload).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let e = e.without_url();
                let msg = format!("{service} webhook at {}: {e}", url.host());
                return Err(if e.is_connect() || e.is_builder() {
                    PostError::NotSent(ChannelError::transient(msg))
                } else {
                    PostError::Uncertain(ChannelError::transient(msg))
                });
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) if status < 300 => {
                return Err(PostError::Uncertain(ChannelError::transient(format!(
                    "{service} webhook at {}: the answer was cut off: {}",
                    url.host(),
                    e.without_url()
                ))));
            }
            Err(_) => String::new(),
        };
        let answer = Answer { status, headers, body };
        if status != 429 {
            return Ok(answer);
        }
        let wait = wait_of(&answer).unwrap_or(Duration::from_secs(1));
        if wait > MAX_RATE_LIMIT_WAIT {
            return Err(PostError::NotSent(ChannelError::transient(format!(
                "{service} rate-limits this webhook for {}s; left in the outbox for later",
                wait.as_secs()
            ))));
        }
        tracing::info!(service, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
        tokio::time::sleep(wait).await;
    }
    Err(PostError::NotSent(ChannelError::transient(format!(
        "{service} kept answering 429 (rate limited) {RATE_LIMIT_TRIES} times; left in the outbox for later"
    ))))
}

/// A header's value as seconds (fractions allowed).
pub fn header_secs(a: &Answer, name: &str) -> Option<Duration> {
    let v = a.headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}

/// The bus message a parcel is about: its `re:<id>` tag (set on pages once the bus post is known).
pub fn bus_id(parcel: &Parcel) -> Option<&str> {
    parcel.tags.iter().find_map(|t| t.strip_prefix("re:")).filter(|id| !id.is_empty())
}

/// `text` cut to at most `max` characters; when cut, it ends saying so and naming the bus message that
/// holds the whole text (or, without one, the limit).
pub fn shorten(text: &str, max: usize, service: &str, bus: Option<&str>) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let tail = match bus {
        Some(id) => format!("… [cut to fit {service}; the full text is bus message {id}]"),
        None => format!("… [cut to fit {service}'s {max}-character limit]"),
    };
    let room = max.saturating_sub(tail.chars().count());
    let mut out: String = text.chars().take(room).collect();
    out.push_str(&tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_configured_url_comes_from_a_private_env_file_or_the_error_says_how() {
        use std::os::unix::fs::PermissionsExt;
        const VAR: &str = "HANDOFF_TEST_WEBHOOK_URL_NEVER_SET";
        let e = configured_url(VAR, None, "chat", "create one in Chat").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "[chat] is configured but {VAR} is not set: create one in Chat and put its URL in {VAR} (or in the env \
                 file named by `env_file` in [chat])"
            )
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("chat.env");
        std::fs::write(&p, format!("{VAR}=https://hooks.example/x\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = configured_url(VAR, Some(&p), "chat", "x").unwrap_err();
        assert!(e.message.contains("[chat] env_file") && e.message.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(configured_url(VAR, Some(&p), "chat", "x").unwrap(), "https://hooks.example/x");
    }

    #[test]
    fn shortening_names_the_bus_message_and_respects_the_limit() {
        assert_eq!(shorten("short", 10, "Slack", Some("4")), "short");
        let long = "é".repeat(5000);
        let s = shorten(&long, 2000, "Discord", Some("42"));
        assert_eq!(s.chars().count(), 2000);
        assert!(s.ends_with("the full text is bus message 42]"), "{s}");
        let s = shorten(&long, 2000, "Discord", None);
        assert!(s.chars().count() <= 2000 && s.contains("2000-character limit"));
    }

    #[test]
    fn webhook_urls_are_checked_and_never_printed() {
        let u = WebhookUrl::parse("https://hooks.slack.com/services/T1/B2/secretpart", "SLACK_WEBHOOK_URL").unwrap();
        assert_eq!(u.host(), "hooks.slack.com");
        assert!(!format!("{u:?}").contains("secretpart"));
        for bad in ["http://hooks.slack.com/x", "hooks.slack.com/x", "https://host", "https://h/ x"] {
            let e = WebhookUrl::parse(bad, "SLACK_WEBHOOK_URL").unwrap_err();
            assert!(e.message.contains("SLACK_WEBHOOK_URL") && !e.message.contains(bad), "{e}");
        }
    }
}
