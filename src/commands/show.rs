//! `handoff show ID`: a received or sent message again — who, when, its text, its pointer items and
//! whether each was fetched, and its thread (what it replies to, the replies to it). Local only.

use crate::cli::ShowArgs;
use crate::commands::log::{local_time, thread_of};
use crate::config::Settings;
use crate::exit;
use crate::outbox::{Job, Outbox, Role};
use handoff_channels::Pointer;
use handoff_channels::untrusted::{body, inline};
use serde::Serialize;

/// One pointed-to item and whether this machine has it.
#[derive(Debug, Serialize)]
pub struct ItemState {
    /// Item name.
    pub name: String,
    /// Channel it is stored on.
    pub channel: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it was fetched to (verified), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<std::path::PathBuf>,
}

/// A message again.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// `received` or `sent`.
    pub direction: &'static str,
    /// Bus message id (or the outbox job id of a send not posted yet).
    pub id: String,
    /// When (RFC 3339).
    pub time: String,
    /// Sender.
    pub from: String,
    /// Recipient (`any` = every machine).
    pub to: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Sent or received with --urgent.
    pub urgent: bool,
    /// The text.
    pub body: String,
    /// Pointed-to items.
    pub items: Vec<ItemState>,
    /// The message this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Ids of the replies to it, oldest first.
    pub replies: Vec<String>,
}

fn item_states(settings: &Settings, id: &str, p: &Pointer) -> Vec<ItemState> {
    let dir = super::fetch::default_dir(settings, id);
    p.items
        .iter()
        .map(|i| {
            let path = dir.join(handoff_channels::names::safe_file_name(&i.name));
            let want = i.plain.as_ref().map(|p| p.sha256.as_str()).unwrap_or(&i.sha256);
            let have = handoff_channels::hashing::sha256_file(&path).ok().is_some_and(|(sha, _)| sha == want);
            ItemState { name: i.name.clone(), channel: i.channel.clone(), size: i.size, fetched: have.then_some(path) }
        })
        .collect()
}

fn sent_shown(settings: &Settings, job: &Job, id: &str) -> Shown {
    let inline_text = job.steps.iter().find(|s| s.role == Role::Inline).map(|s| s.parcel.body.clone());
    let pointer_step = job.steps.iter().find(|s| matches!(s.role, Role::Pointer { .. }));
    let text = inline_text
        .or_else(|| pointer_step.and_then(|s| s.receipt.as_ref().map(|_| s.parcel.body.clone())))
        .unwrap_or_else(|| super::log::sent_entry(job, false, None).summary);
    let tags = job.steps.iter().find(|s| s.role == Role::Inline || matches!(s.role, Role::Pointer { .. }));
    let tags = tags.map(|s| s.parcel.tags.clone()).unwrap_or_default();
    let items = Pointer::from_body(&text).map(|p| item_states(settings, id, &p)).unwrap_or_default();
    Shown {
        direction: "sent",
        id: id.to_string(),
        time: job.created.clone(),
        from: job.from.clone(),
        to: job.to.clone(),
        thread: thread_of(&tags),
        urgent: job.steps.iter().any(|s| matches!(s.role, Role::Page { .. })),
        tags,
        body: text,
        items,
        replies: Vec::new(),
    }
}

/// Finds message `id` among what this machine received and sent.
pub fn find(settings: &Settings, id: &str) -> anyhow::Result<Option<Shown>> {
    let me = &settings.machine;
    let state = crate::state::State::open(&settings.dirs.data)?;
    let outbox = Outbox::new(&settings.dirs.data);
    let mut jobs = outbox.history()?;
    for jid in outbox.ids()? {
        jobs.extend(outbox.load(&jid)?);
    }
    let posted = |j: &Job| -> Vec<String> {
        j.steps.iter().filter_map(|s| s.receipt.as_ref()?.message_id.clone()).collect::<Vec<_>>()
    };
    let mut shown = if let Some(m) = state.find(me, id)? {
        let p = Pointer::from_body(&m.body);
        Some(Shown {
            direction: "received",
            id: m.id.0.clone(),
            time: m.ts.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            urgent: m.tags.iter().any(|t| t == super::send::URGENT_TAG),
            thread: thread_of(&m.tags),
            tags: m.tags.clone(),
            items: p.map(|p| item_states(settings, id, &p)).unwrap_or_default(),
            body: m.body.clone(),
            replies: Vec::new(),
        })
    } else {
        jobs.iter()
            .filter(|j| &j.from == me)
            .find(|j| j.id == id || posted(j).iter().any(|p| p == id))
            .map(|j| sent_shown(settings, j, id))
    };
    if let Some(s) = shown.as_mut() {
        let tag = format!("re:{id}");
        for r in state.all_received(me)? {
            if r.message.tags.contains(&tag) {
                s.replies.push(r.message.id.0.clone());
            }
        }
        for j in &jobs {
            if j.steps.iter().any(|st| st.parcel.tags.contains(&tag)) {
                s.replies.extend(posted(j).into_iter().next().or(Some(j.id.clone())));
            }
        }
    }
    Ok(shown)
}

/// Runs `handoff show`.
pub fn run(settings: Settings, a: ShowArgs, json: bool) -> anyhow::Result<i32> {
    let Some(s) = find(&settings, &a.id)? else {
        return Err(exit::with_code(
            exit::DATA,
            anyhow::anyhow!(
                "no message {} was received or sent here (`handoff log` lists them; `handoff sync` fetches new ones)",
                inline(&a.id)
            ),
        ));
    };
    if json {
        crate::output::json("show", exit::OK, serde_json::to_value(&s)?);
        return Ok(exit::OK);
    }
    let urgent = if s.urgent { " [URGENT]" } else { "" };
    let tags = if s.tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", s.tags.iter().map(|t| inline(t)).collect::<Vec<_>>().join(", "))
    };
    crate::outln!(
        "msg {} ({}) from {} to {} at {}{tags}{urgent}",
        inline(&s.id),
        s.direction,
        inline(&s.from),
        inline(&s.to),
        local_time(&s.time)
    );
    if let Some(t) = &s.thread {
        crate::outln!("  ↳ replies to msg {} (`handoff show {}`)", inline(t), inline(t));
    }
    for l in body(&s.body).lines() {
        crate::outln!("  {l}");
    }
    for i in &s.items {
        match &i.fetched {
            Some(p) => crate::outln!(
                "  ✓ {} ({} bytes, via {}): fetched to {}",
                inline(&i.name),
                i.size,
                i.channel,
                p.display()
            ),
            None => crate::outln!(
                "  · {} ({} bytes, via {}): not fetched — handoff fetch {}",
                inline(&i.name),
                i.size,
                i.channel,
                inline(&s.id)
            ),
        }
    }
    for r in &s.replies {
        crate::outln!("  ↳ reply: msg {} (`handoff show {}`)", inline(r), inline(r));
    }
    Ok(exit::OK)
}
