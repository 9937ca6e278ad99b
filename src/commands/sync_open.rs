//! Turning what `sync` read into digest entries: stored bus messages opened (key announcements
//! recorded, encrypted bodies decrypted or reported), encrypted documents decrypted, and each pointer linked
//! to the git documents it brought, so a document is shown once.

use super::Session;
use super::sync::DigestMessage;
use crate::state::State;
use handoff_channels::{Incoming, Pointer};

/// Turns stored messages into digest entries: key announcements are recorded (trust on first use) and
/// become notes; encrypted bodies are decrypted, and one that cannot be is shown as an error naming the
/// message, never as text. Returns the entries and how many could not be decrypted.
pub fn open_messages(
    s: &Session,
    state: &State,
    unshown: &[crate::state::Received],
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<DigestMessage>, usize)> {
    use crate::crypto::keys::{KEY_TAG, KeyAnnouncement, KeyStore, Recorded};
    let me = &s.settings.machine;
    let store = KeyStore::new(state, me)?;
    let mut identity: Option<Option<age::x25519::Identity>> = None;
    let mut out = Vec::new();
    let mut bad = 0;
    for r in unshown {
        let m = &r.message;
        if m.tags.iter().any(|t| t == KEY_TAG)
            && let Some(a) = KeyAnnouncement::from_body(&m.body)
        {
            if a.machine != m.from {
                notes.push(format!(
                    "ignored key message {}: it names machine {} but was sent by {}",
                    m.id, a.machine, m.from
                ));
                continue;
            }
            let source = format!("bus msg {} at {}", m.id, m.ts);
            match store.record(&a.machine, &a.recipient, &source)? {
                Recorded::New => notes.push(format!("learnt machine {}'s public key {} (msg {})", a.machine, a.recipient, m.id)),
                Recorded::Same => {}
                Recorded::Changed { pinned } => notes.push(format!(
                    "WARNING: machine {} published a DIFFERENT key {} (msg {}); still encrypting to the pinned {pinned}. If {} really made a new key, accept it with `handoff keys trust {}`",
                    a.machine, a.recipient, m.id, a.machine, a.machine
                )),
            }
            continue;
        }
        let encrypted =
            m.tags.iter().any(|t| t == crate::crypto::ENCRYPTED_TAG) || crate::crypto::is_sealed_text(&m.body);
        let (body, error) = if encrypted {
            let id = match &identity {
                Some(i) => i.clone(),
                None => {
                    let i = crate::crypto::keys::load_identity(&s.settings.dirs.data)?;
                    identity = Some(i.clone());
                    i
                }
            };
            let opened = match &id {
                Some(id) => crate::crypto::open_text(&m.body, id).map_err(|e| e.to_string()),
                None => Err("this machine has no key (run `handoff keys`, then ask the sender to send again)".into()),
            };
            match opened {
                Ok(b) => (b, None),
                Err(e) => {
                    bad += 1;
                    let e = format!("encrypted message {} from {} could not be decrypted: {e}", m.id, m.from);
                    notes.push(e.clone());
                    (format!("[{e}]"), Some(e))
                }
            }
        } else {
            (m.body.clone(), None)
        };
        let pointer = if error.is_none() { Pointer::from_body(&body) } else { None };
        out.push(DigestMessage {
            id: m.id.0.clone(),
            ts: m.ts.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            tags: m.tags.clone(),
            body,
            encrypted,
            error,
            fetch_command: pointer.as_ref().map(|_| format!("handoff fetch {}", m.id)),
            pointer,
            thread: super::log::thread_of(&m.tags),
            urgent: m.tags.iter().any(|t| t == handoff_channels::bus::tags::URGENT_TAG),
            documents: Vec::new(),
            answers: None,
            row: r.row,
        });
    }
    Ok((out, bad))
}

/// Links each pointer to the git documents this same sync brought (a document sent with a pointer arrives
/// both ways): the message names their locations and the digest shows each document once, with its
/// message. A pointer only claims a document from its own sender (or one with no recorded sender).
pub(super) fn link_documents(messages: &mut [DigestMessage], documents: &[Incoming]) {
    let mut taken = vec![false; documents.len()];
    for m in messages.iter_mut() {
        let Some(p) = &m.pointer else { continue };
        for item in p.items.iter().filter(|i| i.channel == "git") {
            let Some(uri) = item.uri.strip_prefix("git:") else { continue };
            let path = uri.rsplit_once('@').map(|(p, _)| p).unwrap_or(uri);
            if path.is_empty() {
                continue;
            }
            let found = documents.iter().enumerate().find(|(k, d)| {
                !taken[*k]
                    && d.channel == "git"
                    && d.from.as_deref().is_none_or(|f| f == m.from)
                    && std::path::Path::new(&d.location).ends_with(path)
            });
            if let Some((k, d)) = found {
                taken[k] = true;
                m.documents.push(d.location.clone());
            }
        }
    }
}

/// Most distinct earlier messages one sync looks up for [`recall_parents`] (each is a local lookup).
const RECALL_MAX: usize = 16;

/// For each reply whose message is not in this digest, says what that message was, from this machine's
/// own history (`handoff show`'s lookup): `you sent: "first line"` or `from X: "first line"`. A reply to
/// an id this machine never saw says nothing more; at most [`RECALL_MAX`] ids are looked up.
pub(super) fn recall_parents(settings: &crate::config::Settings, messages: &mut [DigestMessage]) {
    use handoff_channels::untrusted::inline;
    let here: std::collections::HashSet<String> = messages.iter().map(|m| m.id.clone()).collect();
    let mut known: std::collections::HashMap<String, Option<String>> = std::collections::HashMap::new();
    for m in messages.iter_mut() {
        let Some(parent) = m.thread.clone().filter(|t| !here.contains(t)) else { continue };
        if !known.contains_key(&parent) && known.len() >= RECALL_MAX {
            continue;
        }
        let said = known.entry(parent.clone()).or_insert_with(|| {
            let shown = super::show::find(settings, &parent).ok().flatten()?;
            let text = if crate::crypto::is_sealed_text(&shown.body) { "[encrypted]" } else { shown.body.as_str() };
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            let (line, cut) = super::digest::excerpt(line, 80);
            let who = if shown.direction == "sent" {
                "you sent".to_string()
            } else {
                format!("from {}", inline(&shown.from))
            };
            Some(format!("{who}: \"{}{}\"", inline(&line), if cut { "…" } else { "" }))
        });
        m.answers = said.clone();
    }
}

/// Decrypts documents whose content is an age message (encrypted documents in the git repo). One that is
/// encrypted to other machines is skipped with a note; one that fails authentication is reported loudly
/// and counted (returned), its content never shown.
pub(super) fn open_documents(
    s: &Session,
    documents: &mut [Incoming],
    notes: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut bad = 0;
    let mut identity = None;
    for d in documents.iter_mut() {
        let Some(sealed) = d.content.as_deref().filter(|c| crate::crypto::is_sealed_text(c)) else { continue };
        if identity.is_none() {
            identity = Some(crate::crypto::keys::load_identity(&s.settings.dirs.data)?);
        }
        let Some(Some(id)) = &identity else {
            notes.push(format!("document {} is encrypted and this machine has no key (`handoff keys`)", d.location));
            d.content = None;
            continue;
        };
        match crate::crypto::open_text(sealed, id) {
            Ok(text) => {
                if d.title == crate::crypto::seal::SEALED_TITLE
                    && let Some(h) = text.lines().find_map(|l| l.strip_prefix("# "))
                {
                    d.title = h.trim().to_string();
                }
                d.content = Some(text);
            }
            Err(crate::crypto::OpenError::NotForUs) => {
                notes.push(format!("document {} is encrypted to other machines; not shown", d.location));
                d.content = None;
            }
            Err(e) => {
                bad += 1;
                notes.push(format!("encrypted document {} could not be decrypted: {e}", d.location));
                d.content = None;
            }
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(from: Option<&str>, location: &str) -> Incoming {
        Incoming {
            channel: "git".into(),
            title: "Plan".into(),
            from: from.map(str::to_string),
            ts: None,
            location: location.into(),
            content: None,
        }
    }

    fn pointer_msg(from: &str, uri: &str) -> DigestMessage {
        let p = Pointer {
            title: None,
            note: None,
            items: vec![handoff_channels::pointer::PointerItem {
                channel: "git".into(),
                name: "Plan.md".into(),
                size: 1,
                sha256: "0".repeat(64),
                uri: uri.into(),
                plain: None,
            }],
        };
        DigestMessage { id: "1".into(), from: from.into(), pointer: Some(p), ..Default::default() }
    }

    #[test]
    fn a_pointer_claims_only_its_own_senders_document_by_its_whole_path() {
        let docs = vec![doc(Some("desk"), "/c/handoffs/2026/plan.md"), doc(Some("desk"), "/c/handoffs/2026/other.md")];
        let mut ms = vec![
            pointer_msg("desk", "git:handoffs/2026/plan.md@abc"),
            // another sender copying desk's pointer, an empty path, a path that is only a suffix of a name
            pointer_msg("mallory", "git:handoffs/2026/other.md@abc"),
            pointer_msg("desk", "git:@abc"),
            pointer_msg("desk", "git:her.md@abc"),
        ];
        link_documents(&mut ms, &docs);
        assert_eq!(ms[0].documents, vec!["/c/handoffs/2026/plan.md".to_string()]);
        assert!(ms[1..].iter().all(|m| m.documents.is_empty()));
    }
}
