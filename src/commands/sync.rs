//! `handoff sync`: at session start, flush the outbox, read channels that have news (git), fetch unread
//! bus messages for this machine, store them locally *before* acking, then show each once.

use super::Session;
use crate::cli::{SyncArgs, SyncFormat};
use crate::config::Settings;
use crate::executor::FlushOutcome;
use crate::exit;
use crate::state::State;
use handoff_channels::bus::{Message, MessageQuery};
use handoff_channels::{ChannelError, Incoming, Pointer};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

pub use super::digest::{HOOK_LIMIT, render_text};
pub use super::sync_open::open_messages;
use super::sync_open::{link_documents, open_documents, recall_parents};

/// Most bus pages read per sync (500 messages each).
const MAX_PAGES: usize = 20;
/// Longest a sync without a budget waits for another sync of the same machine to finish.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Kept back from the hook's budget for writing the answer.
const ANSWER_RESERVE: Duration = Duration::from_millis(400);

/// One message in the digest.
#[derive(Debug, Default, Serialize)]
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
    /// The message it replies to (its `re:ID` tag): a thread is shown together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// What the message it replies to is, when that one is not in this digest (sent from here, or shown by
    /// an earlier sync): who and its first line, from this machine's own history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<String>,
    /// Sent with `--urgent` (a person was paged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// Locations of the documents in [`Digest::documents`] this pointer points to (a git document that
    /// came both ways): shown with this message, not listed a second time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<String>,
    /// Row in the local state (what "shown" is recorded on).
    #[serde(skip)]
    pub row: i64,
}

/// Everything `sync` found.
#[derive(Debug, Serialize)]
pub struct Digest {
    /// What could not be read or delivered (bus, git, outbox): said first, in every format.
    pub problems: Vec<String>,
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
    /// Remarks.
    pub notes: Vec<String>,
    /// Payloads downloaded by `--fetch`.
    pub fetched: Vec<super::fetch::FetchedFile>,
}

/// The time a sync may take: none (text, JSON) or the hook's budget, split between its phases.
#[derive(Clone, Copy)]
struct Budget {
    start: Instant,
    total: Option<Duration>,
}

impl Budget {
    /// The deadline of a phase that may run until `share` of the budget has passed.
    fn until(&self, share: f64) -> Option<Instant> {
        self.total.map(|t| {
            self.start + t.mul_f64(share).saturating_sub(if share >= 1.0 { ANSWER_RESERVE } else { Duration::ZERO })
        })
    }
}

/// Runs `fut` until `deadline` (forever without one); `None` when the deadline passed first.
async fn within<T>(deadline: Option<Instant>, fut: impl std::future::Future<Output = T>) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Which bus instance this is: the instance id `handoff bus serve` reports, else (the original bus) the
/// first message's id and timestamp. A change from what this machine saw last time is a reset, noted in
/// `problems`; messages are kept per instance, so a reset bus's reused ids are new messages.
async fn bus_identity(s: &Session, state: &State, problems: &mut Vec<String>) -> Result<String, ChannelError> {
    let me = &s.settings.machine;
    let location = s.reg.bus.location();
    let health = s.reg.bus.health().await?;
    let ident = match health.instance() {
        Some(i) => format!("instance {i}"),
        None => {
            let q = MessageQuery { limit: Some(1), ..Default::default() };
            match s.reg.bus.messages(&q).await?.first() {
                Some(m) => format!("first {} {}", m.id, m.ts),
                None => "empty".to_string(),
            }
        }
    };
    let key = format!("bus-identity:{location}");
    let before = state.cursor(me, &key).map_err(|e| ChannelError::permanent(format!("local state: {e:#}")))?;
    if let Some(b) = before.as_deref()
        && b != ident
        && b != "empty"
    {
        problems.push(format!(
            "the bus at {} was reset or replaced since the last sync ({b} → {ident}): its messages are read afresh",
            handoff_channels::untrusted::redact_url(&location)
        ));
    }
    if before.as_deref() != Some(ident.as_str()) {
        state.set_cursor(me, &key, &ident).map_err(|e| ChannelError::permanent(format!("local state: {e:#}")))?;
    }
    Ok(format!("{location}#{ident}"))
}

/// Reads every unread message for `machine`, storing each before acking it (one batch ack per page where
/// the bus offers it). Counts the new ones in `new` as it goes (so a cut-short pull still counts).
pub async fn pull_bus(
    s: &Session,
    state: &State,
    problems: &mut Vec<String>,
    new: &mut usize,
) -> Result<(), ChannelError> {
    let me = &s.settings.machine;
    let bus = bus_identity(s, state, problems).await?;
    let local = |e: anyhow::Error| ChannelError::permanent(format!("local state: {e:#}"));
    for _ in 0..MAX_PAGES {
        let q =
            MessageQuery { to: Some(me.clone()), unread_by: Some(me.clone()), limit: Some(500), ..Default::default() };
        let page: Vec<Message> = s.reg.bus.messages(&q).await?;
        *new += state.store_page(me, &bus, &page, |m| &m.from == me).map_err(local)?;
        // stored durably above; only now acknowledge (own broadcasts are acked so they stop showing up)
        let ids: Vec<_> = page.iter().map(|m| m.id.clone()).collect();
        for (id, e) in s.reg.bus.ack_many(&ids, me).await? {
            tracing::warn!(id = %id, error = %e, "ack refused");
        }
        if page.len() < 500 {
            break;
        }
    }
    Ok(())
}

/// Holds this machine's sync lock (released on drop): one sync per machine at a time, so two sessions
/// starting together never show the same message twice.
struct SyncLock {
    _file: std::fs::File,
}

fn sync_lock(data: &std::path::Path, machine: &str, wait: Duration) -> anyhow::Result<Option<SyncLock>> {
    let dir = data.join("sync");
    crate::config::private_dir(&dir)?;
    let path = dir.join(format!("{}.lock", handoff_channels::names::safe_file_name(machine)));
    let mut opts = std::fs::File::options();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(&path)?;
    let until = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(SyncLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Runs `handoff sync`. As a hook (`--format claude-hook`) it always answers with valid hook JSON and
/// exits 0, within its budget: whatever went wrong is at the top of the context instead.
pub async fn run(settings: Settings, a: SyncArgs, json: bool) -> anyhow::Result<i32> {
    let format = if json { SyncFormat::Json } else { a.format };
    if format != SyncFormat::ClaudeHook {
        return sync(settings, &a, format).await;
    }
    let machine = settings.machine.clone();
    let data = settings.dirs.data.clone();
    match sync(settings, &a, format).await {
        Ok(_) => Ok(exit::OK),
        Err(e) => {
            let d = Digest {
                problems: vec![format!("handoff sync could not run: {e:#}")],
                machine,
                bus: String::new(),
                flushed: 0,
                messages: Vec::new(),
                documents: Vec::new(),
                notes: Vec::new(),
                fetched: Vec::new(),
            };
            let ctx = super::digest::hook_context(&d, &data)?;
            crate::outln!("{}", serde_json::to_string(&hook_json(&ctx.context))?);
            Ok(exit::OK)
        }
    }
}

fn hook_json(context: &str) -> serde_json::Value {
    serde_json::json!({ "hookSpecificOutput": { "hookEventName": "SessionStart", "additionalContext": context } })
}

async fn sync(settings: Settings, a: &SyncArgs, format: SyncFormat) -> anyhow::Result<i32> {
    let hook = format == SyncFormat::ClaudeHook;
    let budget = Budget { start: Instant::now(), total: hook.then(|| a.budget.unwrap_or(settings.file.budget.hook)) };
    let s = Session::open(settings)?;
    let me = s.settings.machine.clone();
    let lock_wait = budget.total.map(|t| t.mul_f64(0.3)).unwrap_or(LOCK_WAIT);
    let Some(_lock) = sync_lock(&s.settings.dirs.data, &me, lock_wait)? else {
        let msg =
            "another `handoff sync` for this machine is running; it shows the new messages (nothing is shown twice)";
        match format {
            SyncFormat::Json => {
                crate::output::json("error", exit::UNAVAILABLE, serde_json::json!({ "error": msg, "problems": [msg] }))
            }
            SyncFormat::Text => crate::outln!("⚠ {msg}"),
            SyncFormat::ClaudeHook => crate::outln!("{}", serde_json::to_string(&hook_json(&format!("⚠ {msg}\n")))?),
        }
        // nothing was queued and nothing failed for good: the other sync shows the messages
        return Ok(if hook { exit::OK } else { exit::UNAVAILABLE });
    };
    let state = State::open(&s.settings.dirs.data)?;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut code = exit::OK;
    let flushed = flush_phase(&s, budget, &mut problems).await;
    let mut documents = Vec::new();
    let docs_until = budget.until(0.6);
    for (name, ch) in &s.reg.channels {
        if name == "bus" || !ch.capability().can_receive {
            continue;
        }
        let cursor = state.cursor(&me, name)?;
        match within(docs_until, ch.sync(cursor.as_deref())).await {
            Some(Ok(rep)) => {
                documents.extend(rep.items);
                notes.extend(new_notes(&state, &me, name, rep.notes)?);
                if let Some(c) = rep.cursor {
                    state.set_cursor(&me, name, &c)?;
                }
            }
            Some(Err(e)) => {
                problems.push(format!("{name}: could not be read: {e}"));
                code = exit::worst(code, exit::of_kind(e.kind));
            }
            None => {
                problems.push(format!(
                    "{name}: not read within the hook's budget (a slow fetch); the next `handoff sync` reads it"
                ));
                code = exit::worst(code, exit::UNAVAILABLE);
            }
        }
    }
    let mut new = 0;
    let bus_until = budget.until(1.0);
    match within(bus_until, pull_bus(&s, &state, &mut problems, &mut new)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            problems.insert(0, format!("bus: could not be read: {e}"));
            code = exit::worst(code, exit::of_kind(e.kind));
        }
        None => {
            problems.insert(
                0,
                format!(
                    "bus: no answer from {} within the hook's budget of {:?}; unread messages stay on the bus for the next `handoff sync`",
                    handoff_channels::untrusted::redact_url(&s.reg.bus.location()),
                    budget.total.unwrap_or_default()
                ),
            );
            code = exit::worst(code, exit::UNAVAILABLE);
        }
    }
    // marked shown only after it is printed (a sync killed before that loses nothing); what a live push,
    // the MCP inbox or a watcher claimed before this point is not read again
    let unshown = state.unshown(&me)?;
    let (messages, bad) = open_messages(&s, &state, &unshown, &mut notes)?;
    let bad = bad + open_documents(&s, &mut documents, &mut notes)?;
    if bad > 0 {
        code = exit::worst(code, exit::DATA);
    }
    let mut fetched = Vec::new();
    let mut messages = messages;
    link_documents(&mut messages, &documents);
    recall_parents(&s.settings, &mut messages);
    if a.fetch {
        code = exit::worst(code, fetch_phase(&s, a, &mut messages, &mut fetched, &mut notes).await);
    }
    let bus = s.reg.bus.location();
    let digest = Digest { problems, machine: me.clone(), bus, flushed, messages, documents, notes, fetched };
    let shown: Vec<i64> = match format {
        SyncFormat::Json => {
            crate::output::json("sync", code, serde_json::json!({ "problems": digest.problems, "sync": digest }));
            digest.messages.iter().map(|m| m.row).collect()
        }
        SyncFormat::Text => {
            crate::out!("{}", render_text(&digest));
            digest.messages.iter().map(|m| m.row).collect()
        }
        SyncFormat::ClaudeHook => {
            let ctx = super::digest::hook_context(&digest, &s.settings.dirs.data)?;
            crate::outln!("{}", serde_json::to_string(&hook_json(&ctx.context))?);
            ctx.shown.iter().map(|&i| digest.messages[i].row).collect()
        }
    };
    // key announcements and undecryptable messages were handled above and are never shown again
    let mut done: Vec<i64> =
        unshown.iter().map(|r| r.row).filter(|r| !digest.messages.iter().any(|m| m.row == *r)).collect();
    done.extend(shown);
    state.mark_shown(&done)?;
    state.set_cursor(&me, super::status::LAST_SYNC, &handoff_channels::bus::store::now_ts())?;
    Ok(if hook { exit::OK } else { code })
}

/// The notes of channel `name` this sync should show: those its last sync did not already give. A standing
/// remark ("the repository has no documents yet") is said once, then not again until it changes or goes
/// away and comes back.
fn new_notes(state: &State, me: &str, name: &str, notes: Vec<String>) -> anyhow::Result<Vec<String>> {
    let key = format!("notes:{name}");
    let before: Vec<String> = state.cursor(me, &key)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if before != notes {
        state.set_cursor(me, &key, &serde_json::to_string(&notes)?)?;
    }
    Ok(notes.into_iter().filter(|n| !before.contains(n)).collect())
}

/// Delivers what the outbox holds (implicitly: it only retries). As a hook, within its share of the
/// budget: what does not fit is left to a detached background flush, named in `problems`.
async fn flush_phase(s: &Session, budget: Budget, problems: &mut Vec<String>) -> usize {
    let until = budget.until(0.35);
    let waiting = s.outbox.len();
    let outcome: Option<anyhow::Result<FlushOutcome>> = within(until, s.flush_outbox()).await;
    let mut flushed = 0;
    match outcome {
        Some(Ok(o)) => {
            flushed = o.delivered();
            problems.extend(o.trouble);
        }
        Some(Err(e)) => problems.push(format!("outbox: {e:#}")),
        None => match super::flush::spawn_background(&s.settings) {
            Ok(log) => problems.push(format!(
                "outbox: {waiting} job(s) did not fit in the hook's budget; a background `handoff flush` is delivering them (log: {})",
                log.display()
            )),
            Err(e) => problems.push(format!("outbox: {waiting} job(s) wait; starting a background flush failed: {e:#}")),
        },
    }
    let left = s.outbox.len();
    if left > 0 && !problems.iter().any(|p| p.starts_with("outbox: ")) {
        problems.push(format!(
            "outbox: {left} job(s) still waiting (`handoff outbox list` shows them, `handoff flush` retries)"
        ));
    }
    flushed
}

/// `--fetch`: downloads what the new pointers point to, within `[route] fetch_max` (real bytes, each item
/// read no further than its claimed size); what was fetched is listed once, as fetched, not again as
/// something to fetch. Returns the exit code of the phase (65 when a pointer was refused).
async fn fetch_phase(
    s: &Session,
    a: &SyncArgs,
    messages: &mut [DigestMessage],
    fetched: &mut Vec<super::fetch::FetchedFile>,
    notes: &mut Vec<String>,
) -> i32 {
    let base = a.out.clone().unwrap_or_else(|| s.settings.dirs.data.join("inbox"));
    let cap = s.settings.file.route.fetch_max.as_u64();
    let pending: Vec<_> = messages
        .iter()
        .filter_map(|m| {
            let origin = super::fetch::Origin { id: Some(m.id.clone()), from: Some(m.from.clone()) };
            m.pointer.as_ref().map(|pointer| super::fetch::Pending { origin, pointer })
        })
        .collect();
    let (got, code) = super::fetch::fetch_for_sync(s, &pending, &base, cap, notes).await;
    let done: Vec<String> = pending
        .iter()
        .filter_map(|p| p.origin.id.clone())
        .filter(|id| got.iter().any(|f| f.path.starts_with(base.join(handoff_channels::names::safe_file_name(id)))))
        .collect();
    drop(pending);
    for m in messages.iter_mut().filter(|m| done.contains(&m.id)) {
        m.fetch_command = None;
    }
    fetched.extend(got);
    code
}
