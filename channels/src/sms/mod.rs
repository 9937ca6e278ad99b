//! The SMS channel: one-line pages to a human through Twilio's Messages API (issue 6).
//!
//! A page goes to every configured number; each send is a `POST .../Accounts/{AccountSid}/Messages.json`.
//! Numbers are checked (E.164) when the channel is built, bodies before sending (Twilio's 1,600-character
//! limit). A local ledger enforces the page budget and makes a retried page (same idempotency key) skip the
//! numbers it already reached. Credentials come from `TWILIO_SID` / `TWILIO_TOKEN` (or an env file), never
//! from the TOML and never into a message.

pub mod creds;
pub mod ledger;
pub mod page;
pub mod twilio;
pub mod validate;

pub use creds::Credentials;
pub use ledger::{Ledger, OverBudget, Reservation};
pub use page::{BusRef, STANDALONE_CHARS, SUMMARY_CHARS, page_text, render};
pub use twilio::{RetryPolicy, Sender, TwilioClient};

use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default for `[sms] max_pages_per_hour`.
pub const DEFAULT_MAX_PAGES_PER_HOUR: u32 = 5;

/// `[sms]` in handoff's config. Credentials come from `TWILIO_SID` / `TWILIO_TOKEN`, never from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Sending number (E.164), unless `messaging_service_sid` is set.
    #[serde(default)]
    pub from: Option<String>,
    /// Twilio Messaging Service SID, instead of `from`.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Numbers to page (E.164).
    pub to: Vec<String>,
    /// API base URL.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The account (`AC…`) when the credentials are an API key (`SK…`); default: the SID itself, or
    /// `TWILIO_ACCOUNT_SID`.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// An env file holding `TWILIO_SID` / `TWILIO_TOKEN` (`KEY=value` lines) when they are not in the
    /// environment.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// Page budget: at most this many pages per hour from this machine.
    #[serde(default = "default_max_pages")]
    pub max_pages_per_hour: u32,
    /// Among page channels `[route] page` does not order, the higher priority is paged first (default
    /// [`PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts).
pub const NAME: &str = "sms";
/// The SMS channel's own priority among page channels: the first tried by default.
pub const PRIORITY: i32 = 40;

impl crate::registration::ChannelSection for SmsConfig {
    type InitFlags = crate::init::NoInitFlags;

    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Page];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(SmsChannel::from_config(self, ctx)?))
    }

    /// The Twilio token, read as the channel reads it (environment, then `env_file`).
    fn secrets(&self) -> Vec<crate::registration::LoadedSecret> {
        let env_file = self.env_file.as_deref().map(crate::paths::expand_tilde);
        match Credentials::from_env(env_file.as_deref(), self.account_sid.as_deref()) {
            Ok(c) => vec![crate::registration::LoadedSecret {
                value: c.secret().to_string(),
                label: "the Twilio token".into(),
            }],
            Err(_) => Vec::new(),
        }
    }

    fn secret_files(&self) -> Vec<crate::registration::SecretFile> {
        crate::registration::env_file_entry("Twilio env file", self.env_file.as_deref())
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

fn default_max_pages() -> u32 {
    DEFAULT_MAX_PAGES_PER_HOUR
}

/// Why [`SmsChannel::page`] sent nothing (or not everything).
#[derive(Debug)]
pub enum PageError {
    /// Refused before sending: the page budget is spent.
    OverBudget(OverBudget),
    /// Twilio (or the way to it) failed.
    Failed(ChannelError),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::OverBudget(o) => write!(f, "{o}"),
            PageError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<PageError> for ChannelError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::OverBudget(o) => ChannelError::permanent(o.to_string()),
            PageError::Failed(e) => e,
        }
    }
}

/// One recipient reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// The number (E.164).
    pub to: String,
    /// Twilio's message SID.
    pub sid: String,
    /// True when an earlier attempt of the same page already reached this number (nothing sent now).
    pub earlier: bool,
}

/// Pages a human through Twilio.
pub struct SmsChannel {
    /// The client, or why there is none (missing credentials are reported when paging, not at start-up,
    /// so a machine without them can still send everything else).
    client: Result<TwilioClient, String>,
    sender: Sender,
    to: Vec<String>,
    max_per_hour: u32,
    machine: String,
    ledger: Ledger,
}

impl SmsChannel {
    /// Builds the channel from `[sms]`, reading the credentials from the environment (or `env_file`).
    /// Fails on a bad setting; missing or malformed credentials only fail the pages (and `doctor`).
    pub fn from_config(cfg: &SmsConfig, ctx: &Context) -> Result<Self, ChannelError> {
        let env_file = cfg.env_file.as_deref().map(crate::paths::expand_tilde);
        let creds = Credentials::from_env(env_file.as_deref(), cfg.account_sid.as_deref());
        Self::build(cfg, creds, ctx, RetryPolicy::default())
    }

    /// Builds the channel with explicit credentials and retry policy, checking every setting.
    pub fn new(cfg: &SmsConfig, creds: Credentials, ctx: &Context, policy: RetryPolicy) -> Result<Self, ChannelError> {
        Self::build(cfg, Ok(creds), ctx, policy)
    }

    fn build(
        cfg: &SmsConfig,
        creds: Result<Credentials, ChannelError>,
        ctx: &Context,
        policy: RetryPolicy,
    ) -> Result<Self, ChannelError> {
        let base = validate::base_url(&cfg.base_url)?;
        let sender = match (&cfg.from, &cfg.messaging_service_sid) {
            (_, Some(mg)) => {
                validate::sid("[sms] messaging_service_sid", mg, &["MG"])?;
                Sender::Service(mg.clone())
            }
            (Some(from), None) => Sender::Number(validate::e164("[sms] from", from)?),
            (None, None) => {
                return Err(ChannelError::permanent(
                    "[sms] needs a sender: `from = \"+1555…\"` (your Twilio number) or `messaging_service_sid = \"MG…\"`",
                ));
            }
        };
        if cfg.to.is_empty() {
            return Err(ChannelError::permanent("[sms] `to` lists no numbers to page; e.g. to = [\"+15552223333\"]"));
        }
        let mut to = Vec::new();
        for n in &cfg.to {
            let n = validate::e164("[sms] to", n)?;
            if !to.contains(&n) {
                to.push(n);
            }
        }
        if cfg.max_pages_per_hour == 0 {
            return Err(ChannelError::permanent(
                "[sms] max_pages_per_hour = 0 would refuse every page; remove [sms] to turn paging off",
            ));
        }
        Ok(Self {
            client: match creds {
                Ok(c) => Ok(TwilioClient::new(base, c, policy)?),
                Err(e) => Err(e.message),
            },
            sender,
            to,
            max_per_hour: cfg.max_pages_per_hour,
            machine: ctx.machine.clone(),
            ledger: Ledger::new(ctx.data_dir.join("sms").join("pages.sqlite")),
        })
    }

    /// The client; missing or malformed credentials are the user's configuration to fix (exit 78).
    fn client(&self) -> Result<&TwilioClient, ChannelError> {
        self.client.as_ref().map_err(|m| ChannelError::config(m.clone()))
    }

    /// The secret the channel loaded (the Twilio token), for handoff's outgoing-content scanner.
    pub fn secret(&self) -> Option<&str> {
        self.client.as_ref().ok().map(|c| c.secret())
    }

    /// The numbers paged.
    pub fn recipients(&self) -> &[String] {
        &self.to
    }

    /// The page ledger (budget and sent records).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Sends `body` to every number, once per idempotency `key`: counts it against the budget (refusing
    /// when spent), skips numbers an earlier attempt with the same key reached, and reports who got it.
    /// When some numbers fail, the error names both the failures and who was reached.
    pub async fn page(&self, key: &str, body: &str) -> Result<Vec<Delivered>, PageError> {
        validate::body(body).map_err(PageError::Failed)?;
        let client = self.client().map_err(PageError::Failed)?;
        let (ledger, machine, k, limit) =
            (self.ledger.clone(), self.machine.clone(), key.to_string(), self.max_per_hour);
        let reservation = tokio::task::spawn_blocking(move || ledger.reserve(&machine, &k, limit))
            .await
            .map_err(|e| PageError::Failed(ChannelError::permanent(format!("page ledger task failed: {e}"))))?
            .map_err(PageError::Failed)?;
        if let Reservation::Refused(o) = reservation {
            return Err(PageError::OverBudget(o));
        }
        let mut done = Vec::new();
        let mut failed: Vec<ChannelError> = Vec::new();
        for to in &self.to {
            if let Some(sid) = self.ledger.sent(key, to).map_err(PageError::Failed)? {
                done.push(Delivered { to: to.clone(), sid, earlier: true });
                continue;
            }
            // An attempt recorded by an earlier run without its result may have gone out: look first.
            let tried_before = self.ledger.attempt(key, to).map_err(PageError::Failed)?;
            match client.send(&self.sender, to, body, tried_before).await {
                Ok(m) => {
                    tracing::info!(to = %validate::mask(to), sid = %m.sid, status = ?m.status, "page sent");
                    // Not recording would only risk a second text on a retry; the page itself went out.
                    if let Err(e) = self.ledger.record(key, to, &m.sid) {
                        tracing::warn!(error = %e, "could not record a sent page");
                    }
                    done.push(Delivered { to: to.clone(), sid: m.sid, earlier: false });
                }
                Err(e) => {
                    let fatal = e.kind == crate::ErrorKind::Auth;
                    failed.push(e);
                    if fatal {
                        break; // the same credentials will fail for every number
                    }
                }
            }
        }
        if failed.is_empty() {
            return Ok(done);
        }
        if done.is_empty() && reservation == Reservation::New {
            let _ = self.ledger.release(&self.machine, key);
        }
        Err(PageError::Failed(combine(failed, &done)))
    }

    /// Checks the account (GET `Accounts/{Sid}.json`) without sending anything.
    pub async fn check_account(&self) -> Result<Health, ChannelError> {
        let client = self.client()?;
        let a = client.account().await?;
        let status = a.status.unwrap_or_else(|| "unknown".into());
        if status != "active" {
            return Err(ChannelError::permanent(format!(
                "Twilio account {} is {status}, not active; pages would fail",
                validate::mask_sid(client.account_sid())
            )));
        }
        let used = self.ledger.used(&self.machine).unwrap_or(0);
        Ok(Health {
            check: format!(
                "Twilio account {} reachable at {}",
                validate::mask_sid(client.account_sid()),
                client.base()
            ),
            detail: Some(format!(
                "{status}{}, {} number(s) to page, {used}/{} pages used this hour",
                a.kind.map(|k| format!(" ({k})")).unwrap_or_default(),
                self.to.len(),
                self.max_per_hour
            )),
        })
    }
}

/// One error for several failed numbers: the most serious kind wins ([`crate::ErrorKind::most_serious`]).
fn combine(failed: Vec<ChannelError>, done: &[Delivered]) -> ChannelError {
    let kind = crate::ErrorKind::most_serious(failed.iter().map(|e| e.kind)).unwrap_or(crate::ErrorKind::Transient);
    let mut msg = failed.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
    if !done.is_empty() {
        let reached: Vec<String> = done.iter().map(|d| validate::mask(&d.to)).collect();
        msg.push_str(&format!(" (the page did reach {})", reached.join(", ")));
    }
    ChannelError { kind, message: msg }
}

#[async_trait]
impl Channel for SmsChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::pager(Some(validate::MAX_BODY_CHARS as u64), false, PRIORITY)
    }

    /// The SMS wording: one line within Twilio's limit ([`page::render`]).
    fn render_page(&self, note: &crate::PageNote) -> String {
        page::render(note)
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let done = self.page(&parcel.key, &parcel.body).await?;
        let detail = done
            .iter()
            .map(|d| format!("{} to {}{}", d.sid, validate::mask(&d.to), if d.earlier { " (earlier)" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Receipt { channel: NAME.into(), uri: None, message_id: None, detail: Some(detail), sha256: None })
    }

    async fn health(&self) -> Result<Health, ChannelError> {
        self.check_account().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_checks() {
        let cfg: SmsConfig =
            serde_json::from_value(serde_json::json!({"from": "+15550001111", "to": ["+15552223333"]})).unwrap();
        assert_eq!(cfg.base_url, "https://api.twilio.com");
        assert_eq!(cfg.max_pages_per_hour, DEFAULT_MAX_PAGES_PER_HOUR);
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::quiet("m", dir.path().to_path_buf());
        let creds = Credentials::new(&format!("AC{}", "a".repeat(32)), "t", None).unwrap();
        let ok = SmsChannel::new(&cfg, creds.clone(), &ctx, RetryPolicy::default()).unwrap();
        assert_eq!(ok.recipients(), ["+15552223333"]);
        for (patch, needle) in [
            (serde_json::json!({"to": ["5552223333"]}), "[sms] to"),
            (serde_json::json!({"to": []}), "no numbers"),
            (serde_json::json!({"from": null}), "needs a sender"),
            (serde_json::json!({"from": "+1"}), "[sms] from"),
            (serde_json::json!({"messaging_service_sid": "MG12"}), "messaging_service_sid"),
            (serde_json::json!({"base_url": "http://api.twilio.com"}), "https"),
            (serde_json::json!({"max_pages_per_hour": 0}), "max_pages_per_hour"),
        ] {
            let mut v = serde_json::to_value(&cfg).unwrap();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            let bad: SmsConfig = serde_json::from_value(v).unwrap();
            let e = SmsChannel::new(&bad, creds.clone(), &ctx, RetryPolicy::default()).err().expect("refused");
            assert!(e.message.contains(needle), "{patch}: {e}");
        }
    }
}
