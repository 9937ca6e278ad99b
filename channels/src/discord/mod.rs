//! The Discord channel: text and pages posted through a channel's webhook. The URL is the secret
//! (`DISCORD_WEBHOOK_URL`, or the env file named in `[discord]`). `content` holds at most 2,000
//! characters (longer text is shortened naming the bus message); mentions are disabled
//! (`allowed_mentions`), so no message can ping `@everyone`; `?wait=true` makes Discord answer with the
//! message it created, whose id goes in the receipt; a `429` is waited out per `retry_after` in the JSON
//! body (or the `X-RateLimit-Reset-After` / `Retry-After` headers); each key is posted at most once.

use crate::sent_ledger::SentLedger;
use crate::webhook::{self, Answer, PostError, WebhookUrl};
use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The environment variable holding the webhook URL.
pub const URL_VAR: &str = "DISCORD_WEBHOOK_URL";
/// Discord's limit on a message's `content`.
pub const MAX_CHARS: usize = 2_000;

/// `[discord]` in handoff's config. The webhook URL is a secret: it comes from `DISCORD_WEBHOOK_URL` or
/// the env file, never from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// An env file with a `DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/…` line (mode 600), read
    /// when the variable is not in the environment.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// The name the messages are posted under (default: the webhook's own name).
    #[serde(default)]
    pub username: Option<String>,
    /// Among page channels `[route] page` does not order, the higher priority is paged first (default [`PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts).
pub const NAME: &str = "discord";
/// This channel's own priority among channels of its latency.
pub const PRIORITY: i32 = 10;

/// The Discord channel's flag of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscordInitFlags {
    /// Post to a Discord webhook (its URL: DISCORD_WEBHOOK_URL).
    #[arg(long)]
    pub discord: bool,
}

impl crate::init::InitFlags for DiscordInitFlags {
    /// `[discord]` with a note where the webhook URL goes (never in the config).
    fn choose(&self, _place: &crate::init::InitPlace<'_>) -> Result<crate::init::InitChoice, ChannelError> {
        Ok(if self.discord {
            crate::init::InitChoice::text(format!(
                "[{NAME}]\n# the webhook URL: {URL_VAR} in the environment or an env_file (never here)\n"
            ))
        } else {
            crate::init::InitChoice::default()
        })
    }
}

impl crate::registration::ChannelSection for DiscordConfig {
    type InitFlags = DiscordInitFlags;

    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Text, crate::ParcelKind::Page];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(DiscordChannel::from_config(self, ctx)?))
    }

    fn secrets(&self) -> Vec<crate::registration::LoadedSecret> {
        self.secret()
            .map(|value| crate::registration::LoadedSecret {
                value,
                label: format!("the Discord webhook URL ({URL_VAR})"),
            })
            .into_iter()
            .collect()
    }

    fn secret_files(&self) -> Vec<crate::registration::SecretFile> {
        crate::registration::env_file_entry("Discord env file", self.env_file.as_deref())
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

impl DiscordConfig {
    /// The webhook URL this section loads (for the secret scanner), when there is one.
    pub fn secret(&self) -> Option<String> {
        webhook_url(self).ok()
    }
}

fn webhook_url(cfg: &DiscordConfig) -> Result<String, ChannelError> {
    let how = "create a webhook (channel settings → Integrations → Webhooks)";
    webhook::configured_url(URL_VAR, cfg.env_file.as_deref(), "discord", how)
}

/// Posts to a Discord channel.
pub struct DiscordChannel {
    url: Result<WebhookUrl, String>,
    username: Option<String>,
    client: reqwest::Client,
    ledger: SentLedger,
}

impl DiscordChannel {
    /// Builds the channel. A missing or malformed URL fails only the posts (and `doctor`), not start-up.
    pub fn from_config(cfg: &DiscordConfig, ctx: &Context) -> Result<Self, ChannelError> {
        if let Some(u) = &cfg.username
            && (u.trim().is_empty() || u.chars().count() > 80 || u.chars().any(char::is_control))
        {
            return Err(ChannelError::permanent("[discord] username must be 1-80 characters on one line"));
        }
        let url = webhook_url(cfg).and_then(|u| WebhookUrl::parse(&u, URL_VAR)).map_err(|e| e.message);
        Ok(Self {
            url,
            username: cfg.username.clone(),
            client: webhook::client()?,
            ledger: SentLedger::new(ctx.data_dir.join("discord").join("sent.sqlite")),
        })
    }

    fn url(&self) -> Result<&WebhookUrl, ChannelError> {
        self.url.as_ref().map_err(|m| ChannelError::permanent(m.clone()))
    }
}

/// How long Discord asks to wait: `retry_after` (seconds) in the JSON body, else the headers.
fn retry_after(a: &Answer) -> Option<std::time::Duration> {
    let body: Option<f64> =
        serde_json::from_str::<serde_json::Value>(&a.body).ok().and_then(|v| v.get("retry_after")?.as_f64());
    body.filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| std::time::Duration::from_secs_f64(s.min(86_400.0)))
        .or_else(|| webhook::header_secs(a, "x-ratelimit-reset-after"))
        .or_else(|| webhook::header_secs(a, "retry-after"))
}

/// What an error answer from Discord means, with the fix. Discord's errors are JSON `{code, message}`.
fn refusal(a: &Answer, host: &str) -> ChannelError {
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    let code = v.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
    let msg = crate::untrusted::inline(v.get("message").and_then(|m| m.as_str()).unwrap_or(a.body.trim()));
    let fix = format!("create a new webhook (channel settings → Integrations → Webhooks) and put its URL in {URL_VAR}");
    match a.status {
        404 => ChannelError::permanent(format!(
            "the Discord webhook at {host} was deleted (404 {msg}, code {code}): {fix}"
        )),
        401 | 403 => ChannelError::auth(format!(
            "Discord refused the webhook at {host} ({} {msg}, code {code}): {fix}",
            a.status
        )),
        s if s >= 500 => ChannelError::transient(format!("Discord answered {s} {msg}; left in the outbox for later")),
        s => ChannelError::permanent(format!("Discord refused the message ({s} {msg}, code {code})")),
    }
}

/// The webhook URL with `wait=true` added (Discord then answers with the created message).
fn with_wait(url: &WebhookUrl) -> Result<WebhookUrl, ChannelError> {
    let sep = if url.expose().contains('?') { '&' } else { '?' };
    WebhookUrl::parse(&format!("{}{sep}wait=true", url.expose()), URL_VAR)
}

#[async_trait]
impl Channel for DiscordChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::pager(None, true, PRIORITY)
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let url = with_wait(self.url()?)?;
        let content = webhook::shorten(&parcel.body, MAX_CHARS, "Discord", webhook::bus_id(parcel));
        let mut payload = serde_json::json!({ "content": content, "allowed_mentions": { "parse": [] } });
        if let Some(u) = &self.username {
            payload["username"] = u.clone().into();
        }
        crate::sent_ledger::once(&self.ledger, NAME, parcel, || async {
            let a = webhook::post_json(&self.client, &url, "Discord", &payload, retry_after).await?;
            if a.status != 200 {
                return Err(PostError::NotSent(refusal(&a, url.host())));
            }
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
            match v.get("id").and_then(|i| i.as_str()) {
                Some(id) => Ok(format!("Discord message {}", crate::untrusted::inline(id))),
                None => Ok("posted to Discord (no message id in the answer)".into()),
            }
        })
        .await
    }

    /// `GET` on the webhook URL: Discord answers with the webhook (its channel id) for a live one and
    /// `404 Unknown Webhook` for a deleted one; nothing is posted.
    async fn health(&self) -> Result<Health, ChannelError> {
        let url = self.url()?;
        let r =
            self.client.get(url.expose()).send().await.map_err(|e| {
                ChannelError::transient(format!("Discord webhook at {}: {}", url.host(), e.without_url()))
            })?;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status != 200 {
            return Err(refusal(&Answer { status, headers: Default::default(), body }, url.host()));
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let channel = v.get("channel_id").and_then(|c| c.as_str()).map(crate::untrusted::inline);
        Ok(Health {
            check: format!("Discord webhook at {} is live", url.host()),
            detail: channel.map(|c| format!("posts to channel {c}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut h = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Answer { status: 429, headers: h, body: body.into() }
    }

    #[test]
    fn the_wait_comes_from_the_body_then_the_headers() {
        let a = answer(
            r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#,
            &[("retry-after", "9")],
        );
        assert_eq!(retry_after(&a), Some(std::time::Duration::from_millis(250)));
        let a = answer("{}", &[("x-ratelimit-reset-after", "1.5"), ("retry-after", "9")]);
        assert_eq!(retry_after(&a), Some(std::time::Duration::from_millis(1500)));
        let a = answer(r#"{"retry_after": -1}"#, &[("retry-after", "2")]);
        assert_eq!(retry_after(&a), Some(std::time::Duration::from_secs(2)));
    }
}
