//! The Slack channel: text and pages posted to a channel through an incoming webhook, a chronological log
//! a person reads. The webhook URL is the secret (`SLACK_WEBHOOK_URL`, or the env file named in
//! `[slack]`); text goes as mrkdwn with `&`, `<` and `>` escaped (so no message can mention `@channel` or
//! forge a link); text over Slack's limit is shortened naming the bus message; a `429` is waited out per
//! its `Retry-After`; each idempotency key is posted at most once ([`crate::webhook::once`]).

use crate::sent_ledger::SentLedger;
use crate::webhook::{self, Answer, PostError, WebhookUrl};
use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The environment variable holding the webhook URL.
pub const URL_VAR: &str = "SLACK_WEBHOOK_URL";
/// Slack truncates a message's `text` past 40,000 characters: handoff shortens it first, saying so.
pub const MAX_CHARS: usize = 40_000;

/// `[slack]` in handoff's config. The webhook URL is a secret: it comes from `SLACK_WEBHOOK_URL` or the
/// env file, never from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// An env file with a `SLACK_WEBHOOK_URL=https://hooks.slack.com/services/…` line (mode 600), read when
    /// the variable is not in the environment.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// Among page channels `[route] page` does not order, the higher priority is paged first (default [`PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts).
pub const NAME: &str = "slack";
/// This channel's own priority among channels of its latency.
pub const PRIORITY: i32 = 20;

/// The Slack channel's flag of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct SlackInitFlags {
    /// Post to a Slack incoming webhook (its URL: SLACK_WEBHOOK_URL).
    #[arg(long)]
    pub slack: bool,
}

impl crate::init::InitFlags for SlackInitFlags {
    /// `[slack]` with a note where the webhook URL goes (never in the config).
    fn choose(&self, _place: &crate::init::InitPlace<'_>) -> Result<crate::init::InitChoice, ChannelError> {
        Ok(if self.slack {
            crate::init::InitChoice::text(format!(
                "[{NAME}]\n# the webhook URL: {URL_VAR} in the environment or an env_file (never here)\n"
            ))
        } else {
            crate::init::InitChoice::default()
        })
    }
}

impl crate::registration::ChannelSection for SlackConfig {
    type InitFlags = SlackInitFlags;

    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Text, crate::ParcelKind::Page];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(SlackChannel::from_config(self, ctx)?))
    }

    fn secrets(&self) -> Vec<crate::registration::LoadedSecret> {
        self.secret()
            .map(|value| crate::registration::LoadedSecret {
                value,
                label: format!("the Slack webhook URL ({URL_VAR})"),
            })
            .into_iter()
            .collect()
    }

    fn secret_files(&self) -> Vec<crate::registration::SecretFile> {
        crate::registration::env_file_entry("Slack env file", self.env_file.as_deref())
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

impl SlackConfig {
    /// The webhook URL this section loads (for the secret scanner), when there is one.
    pub fn secret(&self) -> Option<String> {
        webhook_url(self).ok()
    }
}

fn webhook_url(cfg: &SlackConfig) -> Result<String, ChannelError> {
    webhook::configured_url(URL_VAR, cfg.env_file.as_deref(), "slack", "create an incoming webhook in Slack")
}

/// Posts to a Slack channel.
pub struct SlackChannel {
    url: Result<WebhookUrl, String>,
    client: reqwest::Client,
    ledger: SentLedger,
}

impl SlackChannel {
    /// Builds the channel. A missing or malformed URL fails only the posts (and `doctor`), not start-up.
    pub fn from_config(cfg: &SlackConfig, ctx: &Context) -> Result<Self, ChannelError> {
        let url = webhook_url(cfg).and_then(|u| WebhookUrl::parse(&u, URL_VAR)).map_err(|e| e.message);
        Ok(Self {
            url,
            client: webhook::client()?,
            ledger: SentLedger::new(ctx.data_dir.join("slack").join("sent.sqlite")),
        })
    }

    fn url(&self) -> Result<&WebhookUrl, ChannelError> {
        self.url.as_ref().map_err(|m| ChannelError::permanent(m.clone()))
    }
}

/// Escapes the three characters Slack's mrkdwn reserves (`&`, `<`, `>`), as Slack's formatting guide says.
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn retry_after(a: &Answer) -> Option<std::time::Duration> {
    webhook::header_secs(a, "retry-after")
}

/// What a non-200 answer from a Slack webhook means, with the fix.
fn refusal(a: &Answer, host: &str) -> ChannelError {
    let why = crate::untrusted::inline(a.body.trim());
    let fix = format!("create a new incoming webhook in Slack and put its URL in {URL_VAR}");
    match (a.status, a.body.trim()) {
        (404, _)
        | (410, _)
        | (_, "no_service")
        | (_, "no_team")
        | (_, "channel_is_archived")
        | (_, "channel_not_found") => {
            ChannelError::permanent(format!("the Slack webhook at {host} no longer works ({} {why}): {fix}", a.status))
        }
        (401 | 403, _) => {
            ChannelError::auth(format!("Slack refused the webhook at {host} ({} {why}): {fix}", a.status))
        }
        (s, _) if s >= 500 => {
            ChannelError::transient(format!("Slack answered {s} {why}; left in the outbox for later"))
        }
        (s, _) => ChannelError::permanent(format!("Slack refused the message ({s} {why})")),
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::pager(None, true, PRIORITY)
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let url = self.url()?;
        let text = webhook::shorten(&escape_mrkdwn(&parcel.body), MAX_CHARS, "Slack", webhook::bus_id(parcel));
        let payload = serde_json::json!({ "text": text, "mrkdwn": true });
        crate::sent_ledger::once(&self.ledger, NAME, parcel, || async {
            let a = webhook::post_json(&self.client, url, "Slack", &payload, retry_after).await?;
            if a.status == 200 {
                Ok(format!("posted to Slack via {}", url.host()))
            } else {
                Err(PostError::NotSent(refusal(&a, url.host())))
            }
        })
        .await
    }

    /// Posts an empty payload: Slack answers `400 no_text` for a live webhook (nothing is shown) and
    /// `404`/`403` for a deleted or revoked one.
    async fn health(&self) -> Result<Health, ChannelError> {
        let url = self.url()?;
        let sent = self.client.post(url.expose()).json(&serde_json::json!({})).send().await;
        let r =
            sent.map_err(|e| ChannelError::transient(format!("Slack webhook at {}: {}", url.host(), e.without_url())))?;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        match (status, body.trim()) {
            (400, "no_text") | (400, "invalid_payload") => {
                Ok(Health { check: format!("Slack webhook at {} is live", url.host()), detail: None })
            }
            _ => Err(refusal(&Answer { status, headers: Default::default(), body }, url.host())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        assert_eq!(escape_mrkdwn("<!channel> a&b <https://x|y>"), "&lt;!channel&gt; a&amp;b &lt;https://x|y&gt;");
    }

    #[test]
    fn config_has_no_place_for_the_url() {
        let e = toml_like(r#"{"url": "https://hooks.slack.com/services/x"}"#);
        assert!(e.contains("unknown field"), "{e}");
    }

    fn toml_like(json: &str) -> String {
        serde_json::from_str::<SlackConfig>(json).unwrap_err().to_string()
    }
}
