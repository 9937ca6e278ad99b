//! `handoff sync`: at session start, flush the outbox, read channels that have news (git), fetch unread
//! bus messages for this machine, store them locally *before* acking, then show each once.

use super::Session;
use crate::cli::{SyncArgs, SyncFormat};
use crate::config::Settings;
use crate::exit;
use crate::state::State;
use handoff_channels::bus::{Message, MessageQuery};
use handoff_channels::{Incoming, Pointer};
use serde::Serialize;

/// Claude Code's limit on a SessionStart hook's additional context.
pub const HOOK_LIMIT: usize = 10_000;
/// Most bus pages read per sync (500 messages each).
const MAX_PAGES: usize = 20;

/// One message in the digest.
#[derive(Debug, Serialize)]
pub struct DigestMessage {
    /// Bus id.
    pub id: String,
    /// Bus timestamp.
    pub ts: String,
    /// Sender.
    pub from: String,
    /// Recipient (`any` = broadcast).
    pub to: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Body (decrypted when it came encrypted).
    pub body: String,
    /// It came end-to-end encrypted (and `body` is the decrypted text, unless `error` says otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// Why an encrypted message could not be read (tampered, or not encrypted to this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Parsed pointer, when the message is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<Pointer>,
    /// Command that downloads the pointed-to payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_command: Option<String>,
}

/// Everything `sync` found.
#[derive(Debug, Serialize)]
pub struct Digest {
    /// This machine.
    pub machine: String,
    /// Where the bus is.
    pub bus: String,
    /// Jobs delivered from the outbox first.
    pub flushed: usize,
    /// New bus messages, oldest first.
    pub messages: Vec<DigestMessage>,
    /// New documents and other items from channels read at session start.
    pub documents: Vec<Incoming>,
    /// Problems and remarks.
    pub notes: Vec<String>,
    /// Payloads downloaded by `--fetch`.
    pub fetched: Vec<super::fetch::Fetched>,
}

/// Reads every unread message for `machine`, storing each before acking it. Returns how many were new.
pub async fn pull_bus(s: &Session, state: &State) -> anyhow::Result<usize> {
    let me = &s.settings.machine;
    let bus = s.reg.bus.location();
    let mut new = 0;
    for _ in 0..MAX_PAGES {
        let q =
            MessageQuery { to: Some(me.clone()), unread_by: Some(me.clone()), limit: Some(500), ..Default::default() };
        let page: Vec<Message> = s.reg.bus.messages(&q).await?;
        for m in &page {
            if &m.from != me && state.store(me, &bus, m)? {
                new += 1;
            }
        }
        // stored durably above; only now acknowledge (own broadcasts are acked so they stop showing up)
        for m in &page {
            if let Err(e) = s.reg.bus.ack(&m.id, me).await {
                if e.is_transient() {
                    return Err(e.into());
                }
                tracing::warn!(id = %m.id, error = %e, "ack refused");
            }
        }
        if page.len() < 500 {
            break;
        }
    }
    Ok(new)
}

/// Runs `handoff sync`.
pub async fn run(settings: Settings, a: SyncArgs, json: bool) -> anyhow::Result<i32> {
    let format = if json { SyncFormat::Json } else { a.format };
    let s = Session::open(settings)?;
    let me = s.settings.machine.clone();
    let state = State::open(&s.settings.dirs.data)?;
    let mut notes = Vec::new();
    let mut code = exit::OK;
    let flushed = match s.flush_outbox().await {
        Ok(r) => r.len(),
        Err(e) => {
            notes.push(format!("outbox: {e:#}"));
            0
        }
    };
    if !s.outbox.is_empty() {
        notes.push(format!("{} job(s) still waiting in the outbox (`handoff flush` retries)", s.outbox.len()));
    }
    let mut documents = Vec::new();
    for (name, ch) in &s.reg.channels {
        if name == "bus" || !ch.capability().can_receive {
            continue;
        }
        let cursor = state.cursor(&me, name)?;
        match ch.sync(cursor.as_deref()).await {
            Ok(rep) => {
                documents.extend(rep.items);
                notes.extend(rep.notes);
                if let Some(c) = rep.cursor {
                    state.set_cursor(&me, name, &c)?;
                }
            }
            Err(e) => {
                notes.push(format!("{name}: {e}"));
                code = exit::worst(code, exit::of_kind(e.kind));
            }
        }
    }
    if let Err(e) = pull_bus(&s, &state).await {
        notes.push(format!("bus: {e:#}"));
        code = exit::worst(code, exit::code_of(&e));
    }
    let bus = s.reg.bus.location();
    let unshown = state.unshown(&me, &bus)?;
    let (messages, bad) = open_messages(&s, &state, &unshown, &mut notes)?;
    let bad = bad + open_documents(&s, &mut documents, &mut notes)?;
    if bad > 0 {
        code = exit::worst(code, exit::DATA);
    }
    let mut fetched = Vec::new();
    let mut fetched_ids = Vec::new();
    if a.fetch {
        let base = a.out.clone();
        let cap = s.settings.file.route.fetch_max.as_u64();
        let pending: Vec<_> = messages
            .iter()
            .filter_map(|m| {
                let origin = super::fetch::Origin { id: Some(m.id.clone()), from: Some(m.from.clone()) };
                m.pointer.as_ref().map(|pointer| super::fetch::Pending { origin, pointer })
            })
            .collect();
        let base = base.unwrap_or_else(|| s.settings.dirs.data.join("inbox"));
        let (got, fetch_code) = super::fetch::fetch_for_sync(&s, &pending, &base, cap, &mut notes).await;
        for m in &pending {
            let id = m.origin.id.clone().unwrap_or_default();
            let dir = base.join(handoff_channels::names::safe_file_name(&id));
            if got.iter().any(|f| f.path.starts_with(&dir)) {
                fetched_ids.push(id);
            }
        }
        fetched = got;
        code = exit::worst(code, fetch_code);
    }
    // what was fetched is listed once, as fetched, not again as something to fetch
    let mut messages = messages;
    for m in messages.iter_mut().filter(|m| fetched_ids.contains(&m.id)) {
        m.fetch_command = None;
    }
    let digest = Digest { machine: me.clone(), bus: bus.clone(), flushed, messages, documents, notes, fetched };
    match format {
        SyncFormat::Json => crate::output::json("sync", code, serde_json::json!({ "sync": digest })),
        SyncFormat::Text => crate::out!("{}", render_text(&digest)),
        SyncFormat::ClaudeHook => {
            crate::outln!("{}", serde_json::to_string(&hook_output(&digest, &s.settings.dirs.data)?)?)
        }
    }
    let ids: Vec<_> = unshown.iter().map(|r| r.message.id.clone()).collect();
    state.mark_shown(&me, &bus, &ids)?;
    state.set_cursor(&me, super::status::LAST_SYNC, &handoff_channels::bus::store::now_ts())?;
    Ok(code)
}

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
        });
    }
    Ok((out, bad))
}

/// Decrypts documents whose content is an age message (encrypted documents in the git repo). One that is
/// encrypted to other machines is skipped with a note; one that fails authentication is reported loudly
/// and counted (returned), its content never shown.
fn open_documents(s: &Session, documents: &mut [Incoming], notes: &mut Vec<String>) -> anyhow::Result<usize> {
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

/// The digest for people (also the hook's context). Every field written by another machine is escaped.
pub fn render_text(d: &Digest) -> String {
    use handoff_channels::untrusted::{body as esc_body, inline};
    let mut out = String::new();
    if d.messages.is_empty() && d.documents.is_empty() {
        out.push_str(&format!("handoff: nothing new for {}\n", d.machine));
    } else {
        out.push_str(&format!(
            "handoff: {} new message(s), {} new document(s) for {}\n",
            d.messages.len(),
            d.documents.len(),
            d.machine
        ));
    }
    for m in &d.messages {
        let to = if m.to == handoff_channels::bus::BROADCAST { "everyone".to_string() } else { inline(&m.to) };
        let tags = if m.tags.is_empty() { String::new() } else { format!(" [{}]", inline(&m.tags.join(", "))) };
        let lock = if m.encrypted && m.error.is_none() { " (end-to-end encrypted)" } else { "" };
        let (id, from, ts) = (inline(&m.id), inline(&m.from), inline(&m.ts));
        out.push_str(&format!("\n── msg {id} from {from} to {to} at {ts}{tags}{lock}\n"));
        let shown = match &m.pointer {
            Some(_) => m
                .body
                .lines()
                .filter(|l| !l.starts_with(handoff_channels::pointer::POINTER_PREFIX) && !l.starts_with("fetch with:"))
                .collect::<Vec<_>>()
                .join("\n"),
            None => m.body.clone(),
        };
        for l in esc_body(&shown).lines() {
            out.push_str(&format!("  {l}\n"));
        }
        if let Some(c) = &m.fetch_command {
            out.push_str(&format!("  → fetch: {}\n", inline(c)));
        }
    }
    for doc in &d.documents {
        out.push_str(&format!(
            "\n── document \"{}\"{}{} ({})\n",
            inline(&doc.title),
            doc.from.as_deref().map(|f| format!(" from {}", inline(f))).unwrap_or_default(),
            doc.ts.as_deref().map(|t| format!(" at {}", inline(t))).unwrap_or_default(),
            inline(&doc.location)
        ));
        if let Some(c) = &doc.content {
            for l in esc_body(c).lines() {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    for f in &d.fetched {
        out.push_str(&format!("fetched {} -> {}\n", inline(&f.name), f.path.display()));
    }
    for n in &d.notes {
        out.push_str(&format!("note: {}\n", inline(n)));
    }
    out
}

/// The SessionStart hook JSON, within the hook's size limit; the full digest goes to a file it names.
pub fn hook_output(d: &Digest, data_dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let full = render_text(d);
    let context = if full.chars().count() <= HOOK_LIMIT {
        full
    } else {
        let path = data_dir.join("sync").join(format!("{}-last-sync.md", d.machine));
        crate::outbox::write_atomic(&path, full.as_bytes())?;
        let tail = format!("\n… (truncated; the full digest is in {} — read it)\n", path.display());
        let keep = HOOK_LIMIT - tail.chars().count();
        let mut s: String = full.chars().take(keep).collect();
        s.push_str(&tail);
        s
    };
    Ok(serde_json::json!({ "hookSpecificOutput": { "hookEventName": "SessionStart", "additionalContext": context } }))
}
