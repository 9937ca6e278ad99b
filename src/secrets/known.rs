//! The secret values handoff itself has loaded, gathered for the scanner: the bus password, Twilio's
//! token, rclone passwords and keys of the configured remote, and the secret-holding variables of the
//! environment. None of them may leave the machine in content.

use super::KnownSecret;
use crate::config::{Settings, expand_home};

/// Environment variables that hold secrets handoff (or a tool it drives) uses.
pub const SECRET_VARS: [&str; 11] = [
    "BUS_PASS",
    "TWILIO_TOKEN",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_SECRET",
    "RCLONE_CONFIG_PASS",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "HANDOFF_IMAP_PASSWORD",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
];

/// rclone.conf keys that hold secrets (`pass`/`password2` are obscured and revealed first).
#[cfg(feature = "drive")]
const RCLONE_SECRET_KEYS: [&str; 9] = [
    "pass",
    "password",
    "password2",
    "secret_access_key",
    "client_secret",
    "token",
    "key",
    "account_key",
    "session_token",
];

/// Every secret value `settings` and the environment hold. Lookup failures are ignored: a channel that
/// cannot load its credentials cannot leak them either.
pub fn gather(settings: &Settings) -> Vec<KnownSecret> {
    let mut out = Vec::new();
    for v in &settings.secrets {
        out.push(KnownSecret { value: v.clone(), label: "the bus password (BUS_PASS)".into() });
    }
    if let crate::config::BusTarget::Http { url, user, password, .. } = &settings.bus {
        // the bus's own credentials as an `Authorization: Basic` header carries them
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        out.push(KnownSecret { value: basic, label: "the bus credentials in base64 (BUS_USER:BUS_PASS)".into() });
        if let Some(pw) = url_password(url) {
            out.push(KnownSecret { value: pw, label: "the password in BUS_URL".into() });
        }
    }
    for var in SECRET_VARS {
        if let Ok(v) = std::env::var(var) {
            out.push(KnownSecret { value: v, label: format!("the value of ${var}") });
        }
    }
    #[cfg(feature = "sms")]
    if let Some(sms) = &settings.file.sms {
        let env_file = sms.env_file.as_deref().map(|p| expand_home(p, &settings.dirs.home));
        if let Ok(c) = handoff_channels::sms::Credentials::from_env(env_file.as_deref(), sms.account_sid.as_deref()) {
            out.push(KnownSecret { value: c.secret().to_string(), label: "the Twilio token".into() });
        }
    }
    #[cfg(feature = "drive")]
    if let Some(drive) = &settings.file.drive {
        let explicit = drive.rclone_config.as_deref().map(|p| expand_home(p, &settings.dirs.home));
        let conf = handoff_channels::drive::rclone_conf::RcloneConf::load(explicit.as_deref()).ok();
        if let Some(remote) = conf.as_ref().and_then(|c| c.remote(&drive.remote).ok()) {
            for k in RCLONE_SECRET_KEYS {
                let v = if matches!(k, "pass" | "password2") {
                    remote.revealed(k).ok().flatten()
                } else {
                    remote.get(k).map(str::to_string)
                };
                if let Some(v) = v {
                    out.push(KnownSecret { value: v, label: format!("rclone's `{k}` of remote {}", drive.remote) });
                }
            }
        }
    }
    #[cfg(feature = "email")]
    if let Some(v) = settings.file.email.as_ref().and_then(|c| c.secret()) {
        out.push(KnownSecret { value: v, label: "the IMAP password (HANDOFF_IMAP_PASSWORD)".into() });
    }
    #[cfg(feature = "slack")]
    if let Some(v) = settings.file.slack.as_ref().and_then(|c| c.secret()) {
        out.push(KnownSecret { value: v, label: "the Slack webhook URL (SLACK_WEBHOOK_URL)".into() });
    }
    #[cfg(feature = "discord")]
    if let Some(v) = settings.file.discord.as_ref().and_then(|c| c.secret()) {
        out.push(KnownSecret { value: v, label: "the Discord webhook URL (DISCORD_WEBHOOK_URL)".into() });
    }
    let _ = expand_home;
    out
}

/// The password part of `scheme://user:password@host…`, percent-decoded.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let pw = userinfo.split_once(':')?.1;
    Some(percent_encoding::percent_decode_str(pw).decode_utf8_lossy().into_owned())
}
