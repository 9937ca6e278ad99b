//! `handoff keys`: this machine's age identity (created on first use and published on the bus), the
//! keys of other machines (pinned on first use by `sync`), and accepting a changed key.

use super::Session;
use crate::cli::{KeysArgs, KeysCommand};
use crate::config::Settings;
use crate::crypto::keys::{KEY_TAG, KeyAnnouncement, KeyStore, ensure_identity, require_identity};
use crate::exit;
use crate::state::State;
use handoff_channels::bus::{BROADCAST, NewMessage};

/// Posts this machine's public key on the bus (to `any`). Returns the bus message id.
pub async fn publish(s: &Session, recipient: &str) -> anyhow::Result<String> {
    let a = KeyAnnouncement { machine: s.settings.machine.clone(), recipient: recipient.to_string() };
    let msg = NewMessage {
        from: s.settings.machine.clone(),
        to: BROADCAST.into(),
        body: a.to_body(),
        tags: vec![KEY_TAG.into()],
    };
    // one key, one message: republishing the same key is deduplicated by the bus
    let key = format!("handoff-key-{}-{}", s.settings.machine, &recipient[recipient.len().saturating_sub(16)..]);
    let m = s.reg.bus.post(&msg, &key).await.map_err(|e| {
        anyhow::anyhow!("publishing the key on the bus failed: {e} (run `handoff keys publish` when the bus is back)")
    })?;
    Ok(m.id.0)
}

/// Runs `handoff keys`.
pub async fn run(settings: Settings, a: KeysArgs, json: bool) -> anyhow::Result<i32> {
    let data = settings.dirs.data.clone();
    let me = settings.machine.clone();
    match a.command {
        None => {
            let (id, created) = ensure_identity(&data)?;
            let recipient = id.to_public().to_string();
            // published once per key: a publish that failed (bus down) is retried by the next `handoff keys`
            let marker = data.join("keys").join("published");
            let done = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == recipient);
            let published = if done {
                None
            } else {
                let s = Session::open(settings)?;
                let id = publish(&s, &recipient).await.map_err(|e| exit::with_code(exit::QUEUED, e))?;
                handoff_channels::fsutil::write_atomic_private(&marker, recipient.as_bytes())?;
                Some(id)
            };
            let path = crate::crypto::keys::identity_path(&data);
            if json {
                crate::output::json(
                    "keys",
                    exit::OK,
                    serde_json::json!({ "machine": me, "recipient": recipient, "created": created,
                        "identity": path, "published_msg": published }),
                );
            } else {
                if created {
                    crate::outln!("created this machine's key ({}, mode 0600; back it up)", path.display());
                }
                if let Some(id) = &published {
                    crate::outln!(
                        "published on the bus (msg {id}): other machines learn it on their next `handoff sync`"
                    );
                }
                crate::outln!("{me}: {recipient}");
            }
            Ok(exit::OK)
        }
        Some(KeysCommand::Show) => {
            let recipient = require_identity(&data)?.to_public().to_string();
            if json {
                crate::output::json("keys", exit::OK, serde_json::json!({ "machine": me, "recipient": recipient }));
            } else {
                crate::outln!("{recipient}");
            }
            Ok(exit::OK)
        }
        Some(KeysCommand::Publish) => {
            let recipient = require_identity(&data)?.to_public().to_string();
            let s = Session::open(settings)?;
            let id = publish(&s, &recipient).await?;
            handoff_channels::fsutil::write_atomic_private(&data.join("keys").join("published"), recipient.as_bytes())?;
            if json {
                crate::output::json(
                    "keys",
                    exit::OK,
                    serde_json::json!({ "recipient": recipient, "published_msg": id }),
                );
            } else {
                crate::outln!("published {recipient} (bus msg {id})");
            }
            Ok(exit::OK)
        }
        Some(KeysCommand::List) => {
            let state = State::open(&data)?;
            let store = KeyStore::new(&state, &me)?;
            let known = store.all()?;
            let own = crate::crypto::keys::load_identity(&data)?.map(|i| i.to_public().to_string());
            if json {
                crate::output::json("keys", exit::OK, serde_json::json!({ "machine": me, "own": own, "keys": known }));
            } else {
                match &own {
                    Some(r) => crate::outln!("{me} (this machine): {r}"),
                    None => crate::outln!("{me} (this machine): no key yet (run `handoff keys`)"),
                }
                if known.is_empty() {
                    crate::outln!(
                        "no other machine's key known yet: run `handoff keys` there, then `handoff sync` here"
                    );
                }
                for k in &known {
                    use handoff_channels::untrusted::inline;
                    crate::outln!(
                        "{}: {} (from {}, pinned {})",
                        inline(&k.machine),
                        inline(&k.recipient),
                        inline(&k.source),
                        k.pinned_at
                    );
                    if let Some(c) = &k.changed_to {
                        crate::outln!(
                            "  ! changed to {c} ({}); not used until `handoff keys trust {}`",
                            k.changed_source.as_deref().unwrap_or("?"),
                            k.machine
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        Some(KeysCommand::Trust { peer: machine, recipient }) => {
            crate::config::validate_machine(&machine)
                .map_err(|e| exit::with_code(exit::USAGE, anyhow::anyhow!("machine: {e}")))?;
            if let Some(r) = &recipient {
                crate::crypto::parse_recipient(r).map_err(|e| exit::with_code(exit::USAGE, anyhow::anyhow!(e)))?;
            }
            let state = State::open(&data)?;
            let store = KeyStore::new(&state, &me)?;
            let now = store.trust(&machine, recipient.as_deref()).map_err(|e| exit::with_code(exit::DATA, e))?;
            if json {
                crate::output::json("keys", exit::OK, serde_json::json!({ "machine": machine, "recipient": now }));
            } else {
                crate::outln!("{machine}: now encrypting to {now}");
            }
            Ok(exit::OK)
        }
    }
}
