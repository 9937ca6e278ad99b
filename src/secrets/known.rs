//! The secret values handoff itself has loaded, gathered for the scanner: the bus password, what each
//! configured channel declares it loaded (its registration's `secrets`), and the secret-holding variables
//! of the environment. None of them may leave the machine in content.

use super::KnownSecret;
use crate::config::Settings;

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
    // what each configured channel loaded (Twilio's token, rclone's keys, webhook URLs, the IMAP password)
    for secret in settings.file.channels.secrets() {
        out.push(KnownSecret { value: secret.value, label: secret.label });
    }
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
