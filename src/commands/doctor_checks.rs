//! The checks `doctor` adds around the channels' own health probes: secret file permissions, the fix for
//! a failed bus check, and the `--send-test` round trip on a scratch tag.

use super::Session;
use super::doctor::Check;
use crate::config::{BusTarget, Settings, expand_home};
use handoff_channels::ChannelError;
use handoff_channels::bus::{MessageQuery, NewMessage};
use handoff_channels::env_file::default_bus_env_file;
use std::path::{Path, PathBuf};

/// Tag of `doctor --send-test`'s message (the message goes from this machine to itself).
pub const SCRATCH_TAG: &str = "handoff-doctor";

/// The bus env file these settings read (configured or the conventional one), when it exists.
pub fn bus_env_file(s: &Settings) -> Option<PathBuf> {
    let section = s.file.bus.clone().unwrap_or_default();
    let p = match section.env_file.as_deref() {
        Some(p) => expand_home(p, &s.dirs.home),
        None => default_bus_env_file(&s.dirs.home),
    };
    p.exists().then_some(p)
}

/// Files that hold secrets and that this machine's setup reads.
fn secret_paths(settings: Option<&Settings>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Some(s) = settings else {
        if let Ok(d) = crate::config::Dirs::platform() {
            let p = default_bus_env_file(&d.home);
            if p.exists() {
                out.push(("bus env file".into(), p));
            }
        }
        return out;
    };
    if let Some(p) = bus_env_file(s) {
        out.push(("bus env file".into(), p));
    }
    let identity = crate::crypto::keys::identity_path(&s.dirs.data);
    if identity.exists() {
        out.push(("encryption identity".into(), identity));
    }
    // each configured channel's own (its registration's `secret_files`)
    for f in s.file.channels.secret_files() {
        out.push((f.label, f.path));
    }
    out
}

/// One check per secret-holding file: readable by its owner only.
pub fn secret_files(settings: Option<&Settings>) -> Vec<Check> {
    secret_paths(settings)
        .into_iter()
        .map(|(label, p)| {
            let name = format!("secrets: {label}");
            match handoff_channels::private_file::access(&p) {
                Ok(a) if a.private => {
                    Check { check: name, ok: true, detail: format!("{} is {}", p.display(), a.detail), fix: None }
                }
                Ok(a) => Check {
                    check: name,
                    ok: false,
                    detail: format!("{} holds secrets but is readable by others ({})", p.display(), a.detail),
                    fix: Some(handoff_channels::private_file::make_private_command(&p)),
                },
                Err(e) => {
                    let fix = format!(
                        "make it yours and private: {} (check its owner)",
                        handoff_channels::private_file::make_private_command(&p)
                    );
                    Check {
                        check: name,
                        ok: false,
                        detail: format!("cannot read {}: {e}", p.display()),
                        fix: Some(fix),
                    }
                }
            }
        })
        .collect()
}

/// The fix for a failed bus check, naming the env file the credentials and URL come from.
pub fn bus_fix(e: &ChannelError, s: &Settings, env_file: Option<&Path>) -> String {
    let env =
        env_file.map(|p| p.display().to_string()).unwrap_or_else(|| "the environment (BUS_URL / BUS_PASS)".into());
    let url = match &s.bus {
        BusTarget::Http { url, .. } => handoff_channels::untrusted::redact_url(url),
        BusTarget::Local { path } => path.display().to_string(),
    };
    match e.kind {
        handoff_channels::ErrorKind::Auth => format!(
            "the password was refused: correct BUS_USER / BUS_PASS in {env} (the bus's own env file holds the right one)"
        ),
        handoff_channels::ErrorKind::Transient => {
            format!(
                "start the bus (`handoff bus serve`, or its systemd service) or correct BUS_URL in {env}; try `curl {url}/health`"
            )
        }
        handoff_channels::ErrorKind::Permanent
        | handoff_channels::ErrorKind::Refused
        | handoff_channels::ErrorKind::Config => {
            format!("check BUS_URL in {env}: {url} does not answer like a handoff bus")
        }
    }
}

/// `--send-test`: posts a message from this machine to itself on a scratch tag, reads it back unread,
/// acknowledges it and checks it is no longer unread.
pub async fn send_test(s: &Session) -> Check {
    let me = s.settings.machine.clone();
    let started = std::time::Instant::now();
    let key = uuid::Uuid::now_v7().to_string();
    let msg = NewMessage {
        from: me.clone(),
        to: me.clone(),
        body: format!("handoff doctor --send-test {key} (safe to ignore)"),
        tags: vec![SCRATCH_TAG.into()],
    };
    let result: Result<String, String> = async {
        let posted = s.reg.bus.post(&msg, &format!("doctor-{key}")).await.map_err(|e| format!("post: {e}"))?;
        let q = MessageQuery {
            to: Some(me.clone()),
            from: Some(me.clone()),
            unread_by: Some(me.clone()),
            limit: Some(500),
            ..Default::default()
        };
        let unread = s.reg.bus.messages(&q).await.map_err(|e| format!("read back: {e}"))?;
        if !unread.iter().any(|m| m.id == posted.id) {
            return Err(format!("message {} was posted but is not listed as unread for {me}", posted.id));
        }
        s.reg.bus.ack(&posted.id, &me).await.map_err(|e| format!("ack: {e}"))?;
        let after = s.reg.bus.messages(&q).await.map_err(|e| format!("read after ack: {e}"))?;
        if after.iter().any(|m| m.id == posted.id) {
            return Err(format!("message {} is still unread after its ack", posted.id));
        }
        Ok(posted.id.0)
    }
    .await;
    match result {
        Ok(id) => Check {
            check: "send test".into(),
            ok: true,
            detail: format!(
                "posted message {id} on tag {SCRATCH_TAG}, read it back and acked it in {} ms",
                started.elapsed().as_millis()
            ),
            fix: None,
        },
        Err(e) => Check {
            check: "send test".into(),
            ok: false,
            detail: e,
            fix: Some("see the bus check above; `handoff -vv doctor --send-test` shows each request".into()),
        },
    }
}

/// With `encrypt = "always"`: this machine has its key (else every send would be refused).
pub fn encryption(settings: Option<&Settings>) -> Option<Check> {
    let s = settings?;
    if s.file.encrypt != crate::config::EncryptMode::Always {
        return None;
    }
    Some(match crate::crypto::keys::load_identity(&s.dirs.data) {
        Ok(Some(id)) => Check {
            check: "encryption".into(),
            ok: true,
            detail: format!("encrypt = \"always\"; this machine's key is {}", id.to_public()),
            fix: None,
        },
        Ok(None) => Check {
            check: "encryption".into(),
            ok: false,
            detail: "encrypt = \"always\" but this machine has no key".into(),
            fix: Some("run `handoff keys` (it creates the key and publishes it on the bus)".into()),
        },
        Err(e) => Check {
            check: "encryption".into(),
            ok: false,
            detail: format!("{e:#}"),
            fix: Some("the key file named above is unreadable: fix its permissions, or move it away and run `handoff keys` to make a new key".into()),
        },
    })
}
