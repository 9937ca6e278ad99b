//! A small client for the two Twilio API v2010 calls handoff makes: create a Message, fetch the Account.
//! Retries 429 (and Twilio code 20429) and 5xx with backoff; other 4xx are final; 401/403 are auth errors.

use super::creds::Credentials;
use super::validate::{mask, mask_sid};
use crate::ChannelError;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// Timeouts and retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts for a retryable failure (1 = no retry).
    pub attempts: u32,
    /// First backoff delay; doubled after each attempt.
    pub backoff: Duration,
    /// Longest single wait, also the cap on a server's `Retry-After`.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(20),
        }
    }
}

/// Twilio's error body: `{"code": 21211, "message": "...", "more_info": "https://...", "status": 400}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TwilioError {
    /// Twilio error code (e.g. 21211 invalid To, 20003 authentication, 20429 too many requests).
    #[serde(default)]
    pub code: Option<u64>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Link to Twilio's page about the error.
    #[serde(default)]
    pub more_info: Option<String>,
}

impl TwilioError {
    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.code {
            s.push_str(&format!("Twilio error {c}"));
        }
        if let Some(m) = &self.message {
            s.push_str(if s.is_empty() { "" } else { ": " });
            s.push_str(m);
        }
        if let Some(u) = &self.more_info {
            s.push_str(&format!(" (see {u})"));
        }
        s
    }
}

/// The fields of a created Message that handoff uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessage {
    /// Message SID (`SM…`).
    pub sid: String,
    /// Twilio's status (`queued`, `accepted`, ...).
    #[serde(default)]
    pub status: Option<String>,
    /// The text as Twilio stored it.
    #[serde(default)]
    pub body: Option<String>,
}

/// A page of `GET .../Messages.json`.
#[derive(Debug, Deserialize)]
struct MessageList {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

/// A failed attempt: the error, the server's `Retry-After`, and whether the request may have been
/// carried out anyway (its answer lost).
struct Failure {
    error: ChannelError,
    retry_after: Option<Duration>,
    ambiguous: bool,
}

/// The retry side of a [`RetryPolicy`], shared by every Twilio call: how many tries are left and how long
/// to wait before the next.
struct Backoff {
    attempts: u32,
    tried: u32,
    delay: Duration,
    max_wait: Duration,
}

impl Backoff {
    fn new(policy: &RetryPolicy) -> Self {
        Self { attempts: policy.attempts.max(1), tried: 0, delay: policy.backoff, max_wait: policy.max_wait }
    }

    /// After a failed attempt: `Err` with the error when it is not worth retrying or the tries are spent,
    /// else waits (the server's `Retry-After`, else the doubling delay, at most `max_wait`) and returns.
    async fn wait_after(&mut self, f: Failure) -> Result<(), ChannelError> {
        self.tried += 1;
        if !f.error.is_transient() {
            return Err(f.error);
        }
        tracing::debug!(attempt = self.tried, error = %f.error, ambiguous = f.ambiguous, "Twilio request failed");
        if self.tried >= self.attempts {
            return Err(f.error.context(format!("gave up after {} attempts", self.attempts)));
        }
        tokio::time::sleep(f.retry_after.unwrap_or(self.delay).min(self.max_wait)).await;
        self.delay = (self.delay * 2).min(self.max_wait);
        Ok(())
    }
}

/// The fields of an Account that `doctor` shows (never its `auth_token`).
#[derive(Debug, Clone, Deserialize)]
pub struct AccountInfo {
    /// `active`, `suspended` or `closed`.
    #[serde(default)]
    pub status: Option<String>,
    /// `Trial` or `Full`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// Who sends: a number or a Messaging Service.
#[derive(Debug, Clone)]
pub enum Sender {
    /// A Twilio number (E.164) as `From`.
    Number(String),
    /// A Messaging Service SID (`MG…`) as `MessagingServiceSid`.
    Service(String),
}

/// The HTTP side of the SMS channel.
pub struct TwilioClient {
    base: String,
    creds: Credentials,
    policy: RetryPolicy,
    http: reqwest::Client,
}

impl TwilioClient {
    /// A client for `base` (already checked by [`super::validate::base_url`]).
    pub fn new(base: String, creds: Credentials, policy: RetryPolicy) -> Result<Self, ChannelError> {
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("handoff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { base, creds, policy, http })
    }

    /// The API base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The secret in use (for the outgoing-content scanner only; never print it).
    pub fn secret(&self) -> &str {
        self.creds.secret()
    }

    /// The account acted on.
    pub fn account_sid(&self) -> &str {
        &self.creds.account_sid
    }

    /// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with `To`, `From`/`MessagingServiceSid`, `Body`.
    ///
    /// Twilio has no idempotency key for Messages, so a retry after an attempt whose answer was lost (a
    /// timeout, a dropped connection) first looks the message up ([`Self::find_sent`]) instead of sending
    /// it again. `check_first` does that before the first attempt too (an earlier run's attempt was lost).
    pub async fn send(
        &self,
        sender: &Sender,
        to: &str,
        body: &str,
        check_first: bool,
    ) -> Result<SentMessage, ChannelError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base, self.creds.account_sid);
        let sender_field = match sender {
            Sender::Number(n) => ("From", n.as_str()),
            Sender::Service(s) => ("MessagingServiceSid", s.as_str()),
        };
        let form = [("To", to), sender_field, ("Body", body)];
        let what = format!("SMS to {}", mask(to));
        let mut backoff = Backoff::new(&self.policy);
        let mut check = check_first;
        loop {
            if check {
                let found = self.find_sent(to, body).await.map_err(|e| {
                    e.context(format!(
                        "{what}: an earlier attempt may have gone out, and looking it up failed (not sending twice)"
                    ))
                })?;
                if let Some(m) = found {
                    tracing::info!(sid = %m.sid, "an earlier attempt had gone out; not sending again");
                    return Ok(m);
                }
            }
            match self.attempt(&what, self.http.post(&url).form(&form)).await {
                Ok(resp) => return parse(&what, resp).await,
                Err(f) => {
                    // a lost answer may mean the text went out: look before sending again
                    check = f.ambiguous;
                    backoff.wait_after(f).await?;
                }
            }
        }
    }

    /// Looks for a message with exactly this body among the latest sent to `to` (not failed or
    /// undelivered): `GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=...&PageSize=20`.
    pub async fn find_sent(&self, to: &str, body: &str) -> Result<Option<SentMessage>, ChannelError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base, self.creds.account_sid);
        let what = format!("looking up recent SMS to {}", mask(to));
        let query = [("To", to), ("PageSize", "20")];
        let resp = self.request(&what, || self.http.get(&url).query(&query)).await?;
        let list: MessageList = parse(&what, resp).await?;
        Ok(list.messages.into_iter().find(|m| {
            m.body.as_deref() == Some(body)
                && !matches!(m.status.as_deref(), Some("failed" | "undelivered" | "canceled"))
        }))
    }

    /// `GET /2010-04-01/Accounts/{Sid}.json`: checks the credentials without sending anything.
    pub async fn account(&self) -> Result<AccountInfo, ChannelError> {
        let url = format!("{}/2010-04-01/Accounts/{}.json", self.base, self.creds.account_sid);
        let what = format!("Twilio account {}", mask_sid(&self.creds.account_sid));
        let resp = self.request(&what, || self.http.get(&url)).await?;
        parse(&what, resp).await
    }

    /// One call with retries (for reads: repeating them is harmless); `build` makes each attempt's request.
    async fn request<F>(&self, what: &str, build: F) -> Result<reqwest::Response, ChannelError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut backoff = Backoff::new(&self.policy);
        loop {
            match self.attempt(what, build()).await {
                Ok(resp) => return Ok(resp),
                Err(f) => backoff.wait_after(f).await?,
            }
        }
    }

    /// One authenticated request, its failure classified.
    async fn attempt(&self, what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        match req.basic_auth(&self.creds.username, Some(self.creds.secret())).send().await {
            Ok(resp) if resp.status().is_success() => Ok(resp),
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let error = self.status_error(what, resp).await;
                Err(Failure { error, retry_after, ambiguous: false })
            }
            Err(e) => Err(Failure {
                error: ChannelError::transient(format!(
                    "{what}: cannot reach Twilio at {}: {}",
                    self.base,
                    describe(&e)
                )),
                retry_after: None,
                // a refused connection sent nothing; a timeout or a cut-off answer may have
                ambiguous: !e.is_connect() && !e.is_builder(),
            }),
        }
    }

    /// Turns a failure status into an error of the right kind, with Twilio's code, message and link.
    async fn status_error(&self, what: &str, resp: reqwest::Response) -> ChannelError {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let twilio: TwilioError = serde_json::from_str(&text).unwrap_or_default();
        let mut detail = twilio.describe();
        if detail.is_empty() {
            let t = text.trim();
            if !t.is_empty() && t.len() <= 200 && !t.contains(self.creds.secret()) {
                detail = t.to_string();
            }
        }
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        let head = format!("{what}: Twilio answered {}{detail}", status_text(status));
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ChannelError::auth(format!(
                "{head}; check TWILIO_SID / TWILIO_TOKEN (user {})",
                mask_sid(&self.creds.username)
            )),
            s if s == StatusCode::TOO_MANY_REQUESTS || twilio.code == Some(20429) || s.is_server_error() => {
                ChannelError::transient(head)
            }
            _ => ChannelError::permanent(head),
        }
    }
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

async fn parse<T: serde::de::DeserializeOwned>(what: &str, resp: reqwest::Response) -> Result<T, ChannelError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ChannelError::transient(format!("{what}: reading Twilio's answer: {}", describe(&e))))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ChannelError::permanent(format!(
            "{what}: Twilio's answer is not what its API documents ({e}); is [sms] base_url right?"
        ))
    })
}

/// A reqwest error, short, without the URL.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut s = if e.is_connect() {
        "connection failed".to_string()
    } else {
        match e.url() {
            Some(u) => e.to_string().replace(u.as_str(), ""),
            None => e.to_string(),
        }
    };
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(error: ChannelError, retry_after: Option<Duration>) -> Failure {
        Failure { error, retry_after, ambiguous: false }
    }

    #[tokio::test]
    async fn backoff_gives_up_after_the_attempts_and_at_once_on_a_final_error() {
        let policy = |attempts| RetryPolicy {
            attempts,
            backoff: Duration::ZERO,
            max_wait: Duration::ZERO,
            ..Default::default()
        };
        // a server asking for an hour is capped at max_wait (zero here): the test would hang otherwise
        let hour = Some(Duration::from_secs(3600));
        let run = async {
            let mut b = Backoff::new(&policy(3));
            assert!(b.wait_after(failure(ChannelError::transient("503"), hour)).await.is_ok());
            assert!(b.wait_after(failure(ChannelError::transient("503"), hour)).await.is_ok());
            let e = b.wait_after(failure(ChannelError::transient("503"), hour)).await.unwrap_err();
            assert_eq!(e.message, "gave up after 3 attempts: 503");
            assert!(e.is_transient());
            // attempts = 0 in a policy still means one try, then giving up
            let e = Backoff::new(&policy(0)).wait_after(failure(ChannelError::transient("x"), None)).await.unwrap_err();
            assert_eq!(e.message, "gave up after 1 attempts: x");
            // a refusal is final on the first try, with its own message and kind
            let e = Backoff::new(&policy(5)).wait_after(failure(ChannelError::auth("401"), None)).await.unwrap_err();
            assert_eq!((e.kind, e.message.as_str()), (crate::ErrorKind::Auth, "401"));
        };
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("the waits are capped at max_wait");
    }
}
