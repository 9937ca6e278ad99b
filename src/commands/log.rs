//! `handoff log`: the local history of what this machine sent (the outbox's finished jobs in
//! `data/sent/`, plus jobs still waiting in the outbox) and received (the local state store), filterable by
//! machine, channel and time. Nothing here touches the network.

use crate::cli::{LogArgs, LogDirection};
use crate::config::Settings;
use crate::exit;
use crate::outbox::{Job, Outbox, Role};
use crate::state::State;
use handoff_channels::{ParcelKind, Pointer};
use serde::Serialize;
use std::time::SystemTime;

/// One line of the history.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// `sent` or `received`.
    pub direction: &'static str,
    /// When (RFC 3339): the job's creation, or when this machine stored the message.
    pub time: String,
    /// Sender.
    pub from: String,
    /// Recipient (`any` = everyone).
    pub to: String,
    /// Channels involved (where the content went, or where a pointer points).
    pub channels: Vec<String>,
    /// Outbox job id (sent) or bus message id (received).
    pub id: String,
    /// Bus message ids of what was posted (sent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// `delivered`, `waiting` (still in the outbox), `failed` (sent) or `received`.
    pub status: &'static str,
    /// First line of the text, the title, or the file names.
    pub summary: String,
    /// The message this one replies to (its `re:ID` tag): entries of one thread share it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Sent with `--urgent` (a human was paged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
}

/// An RFC 3339 time (the bus's, the outbox's) in this machine's time zone with its offset, to the second:
/// `2026-11-24 08:46:55 +01:00`. Text that is not a time is shown as it came (escaped).
pub fn local_time(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string(),
        Err(_) => handoff_channels::untrusted::inline(ts),
    }
}

/// The message a `re:ID` tag says this one replies to.
pub fn thread_of(tags: &[String]) -> Option<String> {
    handoff_channels::bus::tags::replied_to(tags).map(str::to_string)
}

/// Groups a list into threads: `links[i]` holds entry `i`'s own ids and the id it replies to (its `re:`
/// tag). Returns every index exactly once, grouped: a thread's entries together in their given order, the
/// threads in the order of their first entry. A reply to an id not in the list heads its own group (its
/// message was shown before, or never arrived); a reply cycle or a self-reply is one group. Linear in the
/// number of entries (union-find), so a hostile thread of thousands costs nothing.
pub fn thread_groups(links: &[(Vec<String>, Option<String>)]) -> Vec<Vec<usize>> {
    let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (ids, _)) in links.iter().enumerate() {
        for id in ids {
            by_id.entry(id.as_str()).or_insert(i);
        }
    }
    fn root(up: &mut [usize], mut x: usize) -> usize {
        while up[x] != x {
            up[x] = up[up[x]];
            x = up[x];
        }
        x
    }
    let mut up: Vec<usize> = (0..links.len()).collect();
    for (i, (_, re)) in links.iter().enumerate() {
        if let Some(&j) = re.as_deref().and_then(|r| by_id.get(r)) {
            let (a, b) = (root(&mut up, i), root(&mut up, j));
            // the earlier entry stays the root, so a group's root is its first entry
            up[a.max(b)] = a.min(b);
        }
    }
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..links.len() {
        let r = root(&mut up, i);
        let g = *slot.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

fn first_line(s: &str, max: usize) -> String {
    let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if l.chars().count() > max { format!("{}…", l.chars().take(max).collect::<String>()) } else { l.to_string() }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok().or_else(|| humantime::parse_rfc3339_weak(s.get(..19)?).ok())
}

/// `--since`: an age (`2d`) or an RFC 3339 time.
pub fn parse_since(s: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    parse_time(s).ok_or_else(|| {
        exit::with_code(
            exit::USAGE,
            anyhow::anyhow!("--since {s:?} is neither an age (2d, 36h, 90min) nor a time (2026-01-31T09:00:00Z)"),
        )
    })
}

/// The entry of a sent job.
pub fn sent_entry(job: &Job, waiting: bool, identity: Option<&age::x25519::Identity>) -> Entry {
    let mut channels: Vec<String> = Vec::new();
    let mut message_ids = Vec::new();
    let mut failed = false;
    for s in &job.steps {
        let ch = match &s.receipt {
            Some(r) => {
                if let Some(id) = &r.message_id {
                    message_ids.push(id.clone());
                }
                Some(r.channel.clone())
            }
            None => {
                failed |= s.failed;
                s.channels.first().cloned()
            }
        };
        if let Some(ch) = ch.filter(|c| !channels.contains(c)) {
            channels.push(ch);
        }
    }
    let title = job.steps.iter().find_map(|s| {
        s.parcel.title.clone().filter(|t| !t.trim().is_empty() && t != crate::crypto::seal::SEALED_TITLE)
    });
    let note = job.steps.iter().find_map(|s| match &s.role {
        Role::Pointer { note: Some(n), .. } if !n.trim().is_empty() => Some(first_line(n, 80)),
        Role::Page { summary } => Some(first_line(summary, 80)),
        _ => None,
    });
    let text = job
        .steps
        .iter()
        .find(|s| s.role == Role::Inline || s.parcel.kind == ParcelKind::Document)
        .map(|s| first_line(&readable(&s.parcel.body, identity), 80));
    let files = job
        .steps
        .iter()
        .filter_map(|s| match (&s.sealed, &s.parcel.file) {
            (Some(p), Some(_)) => Some(p.name.clone()),
            (_, f) => f.as_ref().map(|f| f.name.clone()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let summary = title.or(note).or(text).filter(|s| !s.is_empty()).unwrap_or(files);
    Entry {
        direction: "sent",
        time: job.created.clone(),
        from: job.from.clone(),
        to: job.to.clone(),
        channels,
        id: job.id.clone(),
        message_ids,
        status: if failed {
            "failed"
        } else if waiting {
            "waiting"
        } else {
            "delivered"
        },
        summary,
        thread: job.steps.iter().find_map(|s| thread_of(&s.parcel.tags)),
        urgent: job.steps.iter().any(|s| matches!(s.role, Role::Page { .. })),
    }
}

/// The text of a body: decrypted with this machine's key when it is an age message (a sender holds its
/// own key among the recipients), else a marker saying it cannot be read here.
fn readable(body: &str, identity: Option<&age::x25519::Identity>) -> String {
    if !crate::crypto::is_sealed_text(body) {
        return body.to_string();
    }
    match identity.map(|id| crate::crypto::open_text(body, id)) {
        Some(Ok(text)) => format!("[encrypted] {text}"),
        _ => "[encrypted; not readable with this machine's key]".into(),
    }
}

fn waiting_jobs(data: &std::path::Path) -> Vec<Job> {
    let dir = data.join("outbox");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut jobs: Vec<Job> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("job.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    jobs
}

/// Every entry for `machine`, oldest first, before filtering.
pub fn collect(settings: &Settings, a: &LogArgs) -> anyhow::Result<Vec<Entry>> {
    let me = &settings.machine;
    let data = &settings.dirs.data;
    let mut out = Vec::new();
    let identity = crate::crypto::keys::load_identity(data).ok().flatten();
    let id = identity.as_ref();
    if a.show != LogDirection::Received {
        let history = Outbox::new(data).history()?;
        out.extend(history.iter().filter(|j| &j.from == me).map(|j| sent_entry(j, false, id)));
        out.extend(waiting_jobs(data).iter().filter(|j| &j.from == me).map(|j| sent_entry(j, true, id)));
    }
    if a.show != LogDirection::Sent && data.join("state.sqlite").exists() {
        for r in State::open(data)?.all_received(me)? {
            let m = &r.message;
            let mut channels = vec!["bus".to_string()];
            let body = readable(&m.body, id);
            let summary = match Pointer::from_body(&body) {
                Some(p) => {
                    for i in &p.items {
                        if !channels.contains(&i.channel) {
                            channels.push(i.channel.clone());
                        }
                    }
                    p.title
                        .clone()
                        .or(p.note.clone())
                        .unwrap_or_else(|| p.items.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", "))
                }
                None => first_line(&body, 80),
            };
            out.push(Entry {
                direction: "received",
                time: r.received_at.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                channels,
                id: m.id.0.clone(),
                message_ids: Vec::new(),
                status: "received",
                summary,
                thread: thread_of(&m.tags),
                urgent: m.tags.iter().any(|t| t == crate::commands::send::URGENT_TAG),
            });
        }
    }
    out.sort_by(|x, y| x.time.cmp(&y.time));
    Ok(out)
}

/// Applies `--with`, `--channel`, `--since` and `--limit`.
pub fn filter(entries: Vec<Entry>, a: &LogArgs, now: SystemTime) -> anyhow::Result<Vec<Entry>> {
    let since = a.since.as_deref().map(|s| parse_since(s, now)).transpose()?;
    let mut kept: Vec<Entry> = entries
        .into_iter()
        .filter(|e| a.with.as_deref().is_none_or(|w| if e.direction == "sent" { e.to == w } else { e.from == w }))
        .filter(|e| a.channel.as_deref().is_none_or(|c| e.channels.iter().any(|x| x == c)))
        .filter(|e| since.is_none_or(|s| parse_time(&e.time).is_some_and(|t| t >= s)))
        .collect();
    if kept.len() > a.limit {
        kept.drain(..kept.len() - a.limit);
    }
    Ok(kept)
}

/// Runs `handoff log`.
pub fn run(settings: Settings, a: LogArgs, json: bool) -> anyhow::Result<i32> {
    let entries = filter(collect(&settings, &a)?, &a, SystemTime::now())?;
    if json {
        crate::output::json("log", exit::OK, serde_json::json!({ "machine": settings.machine, "entries": entries }));
        return Ok(exit::OK);
    }
    if entries.is_empty() {
        crate::outln!("no history for {} matches", settings.machine);
    }
    use handoff_channels::untrusted::inline;
    // a thread is shown together: each reply right under the message it answers (or its earlier reply)
    let ids_of = |e: &Entry| -> Vec<String> {
        let mut v = e.message_ids.clone();
        if e.direction == "received" {
            v.push(e.id.clone());
        }
        v
    };
    let links: Vec<_> = entries.iter().map(|e| (ids_of(e), e.thread.clone())).collect();
    for i in thread_groups(&links).concat() {
        let e = &entries[i];
        let (arrow, peer) = if e.direction == "sent" { ("→", &e.to) } else { ("←", &e.from) };
        let status =
            if e.status == "delivered" || e.status == "received" { String::new() } else { format!(" [{}]", e.status) };
        let reply = e.thread.as_deref().map(|t| format!("  ↳ re {} ", inline(t))).unwrap_or_default();
        let urgent = if e.urgent { "[URGENT] " } else { "" };
        crate::outln!(
            "{} {arrow} {:<12} {:<14} {reply}{urgent}{}{status}",
            local_time(&e.time),
            inline(peer),
            inline(&e.channels.join(",")),
            inline(&e.summary)
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, re: Option<&str>) -> (Vec<String>, Option<String>) {
        (vec![id.to_string()], re.map(str::to_string))
    }

    #[test]
    fn threads_group_replies_and_survive_cycles_missing_parents_and_length() {
        let links = vec![
            link("1", None),
            link("2", Some("9")), // a reply to a missing id: its own group
            link("3", Some("1")),
            link("4", Some("5")), // 4 and 5 reply to each other: one group, no loop
            link("5", Some("4")),
            link("6", Some("6")), // a self-reply
            link("7", Some("3")),
        ];
        assert_eq!(thread_groups(&links), vec![vec![0, 2, 6], vec![1], vec![3, 4], vec![5]]);
        // a chain of 20,000 replies is one group, in order
        let long: Vec<_> =
            (0..20_000).map(|i| link(&i.to_string(), (i > 0).then(|| (i - 1).to_string()).as_deref())).collect();
        let g = thread_groups(&long);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0], (0..20_000).collect::<Vec<_>>());
    }
}
