//! How `sync` shows what it found, to a person (text) and to an agent (the SessionStart hook's context).
//!
//! Everything that came from another machine is framed: the context opens with
//! [`untrusted::PREAMBLE`], every body sits in an [`untrusted::fenced`] block, and every one-line field
//! (sender, recipient, tags, ids, titles) goes through [`untrusted::inline`]. The hook's context has a
//! budget: the problems first (what could not be read), then messages newest first with each body capped,
//! then document excerpts; what does not fit is in one overflow file the context names. Only what is in
//! the context or in that file counts as shown ([`HookContext::shown`]).

use super::sync::{Digest, DigestMessage};
use handoff_channels::Incoming;
use handoff_channels::untrusted;
use std::path::{Path, PathBuf};

/// Claude Code's limit on a SessionStart hook's additional context.
pub const HOOK_LIMIT: usize = 10_000;
/// What the context stays under: a safety margin below [`HOOK_LIMIT`].
pub const HOOK_TARGET: usize = HOOK_LIMIT - 1_000;
/// Longest body shown in the context; the rest is in the overflow file.
pub const MESSAGE_CAP: usize = 1_200;
/// Longest document excerpt (in the context and in text-mode `sync`); the rest is in the named file.
pub const DOCUMENT_CAP: usize = 1_500;
/// Most of the context the documents take.
const DOCUMENTS_SHARE: usize = 3_200;
/// Longest problem line.
const PROBLEM_CAP: usize = 400;
/// Largest overflow file: messages that fit in neither stay unshown for the next sync.
pub const OVERFLOW_MAX: usize = 1024 * 1024;

/// The hook's context and which messages it showed.
pub struct HookContext {
    /// The text for `additionalContext` (under [`HOOK_TARGET`] characters).
    pub context: String,
    /// Indexes into [`Digest::messages`] of the messages in the context or in the overflow file.
    pub shown: Vec<usize>,
    /// The overflow file, when one was written.
    pub overflow: Option<PathBuf>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Cuts `s` to at most `cap` characters at a line end (else a word end) when it is longer; returns the
/// text and whether it was cut.
pub fn excerpt(s: &str, cap: usize) -> (String, bool) {
    if chars(s) <= cap {
        return (s.to_string(), false);
    }
    let head: String = s.chars().take(cap).collect();
    let cut = head.rfind('\n').filter(|&i| i > cap / 2).or_else(|| head.rfind(' ').filter(|&i| i > cap / 2));
    (head[..cut.unwrap_or(head.len())].trim_end().to_string(), true)
}

/// The problem lines that open every digest: what could not be read, outbox trouble.
fn problems(d: &Digest) -> String {
    let mut out = String::new();
    for p in &d.problems {
        let (p, _) = excerpt(&untrusted::inline(p), PROBLEM_CAP);
        out.push_str(&format!("⚠ {p}\n"));
    }
    out
}

/// The text of a message body worth showing (a pointer's machine-readable lines left out).
fn shown_body(m: &DigestMessage) -> String {
    match &m.pointer {
        Some(_) => m
            .body
            .lines()
            .filter(|l| !l.starts_with(handoff_channels::pointer::POINTER_PREFIX) && !l.starts_with("fetch with:"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => m.body.clone(),
    }
}

/// One message: a header line of escaped fields (with the message it replies to), the body fenced (cut at
/// `cap`, naming `rest` for the remainder), the documents its pointer brought (shown here, not again; cut
/// at `doc_cap`), the fetch command.
fn message(d: &Digest, m: &DigestMessage, cap: Option<usize>, doc_cap: Option<usize>, rest: Option<&Path>) -> String {
    let to = untrusted::inline(&m.to);
    let tags = if m.tags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", m.tags.iter().map(|t| untrusted::inline(t)).collect::<Vec<_>>().join(", "))
    };
    let lock = if m.encrypted && m.error.is_none() { " (end-to-end encrypted)" } else { "" };
    let re = m
        .thread
        .as_deref()
        .map(|t| {
            let about = m.answers.as_deref().map(|a| format!(" ({a})")).unwrap_or_default();
            format!(" ↳ reply to msg {}{about}", untrusted::inline(t))
        })
        .unwrap_or_default();
    let mut out = format!(
        "\n── msg {} from {} to {} at {}{}{lock}{re}\n",
        untrusted::inline(&m.id),
        untrusted::inline(&m.from),
        to,
        super::log::local_time(&m.ts),
        tags
    );
    let body = shown_body(m);
    let (body, cut) = match cap {
        Some(c) => excerpt(&body, c),
        None => (body, false),
    };
    if !body.trim().is_empty() {
        out.push_str(&untrusted::fenced(&body));
        out.push('\n');
    }
    if cut {
        match rest {
            Some(p) => out.push_str(&format!("  (cut: the whole message is in {})\n", p.display())),
            None => out.push_str("  (cut)\n"),
        }
    }
    for doc in d.documents.iter().filter(|doc| m.documents.contains(&doc.location)) {
        out.push_str(&document("  ↳ document", doc, doc_cap, rest));
    }
    if m.fetch_command.is_some() {
        out.push_str(&format!("  → fetch: handoff fetch {}\n", untrusted::inline(&m.id)));
    }
    out
}

/// The documents not shown with a message of theirs.
fn unlinked(d: &Digest) -> impl Iterator<Item = &Incoming> {
    d.documents.iter().filter(|doc| !d.messages.iter().any(|m| m.documents.contains(&doc.location)))
}

/// Message indexes in the order a digest shows them: each thread together (oldest first within it), the
/// threads in the order of their first message; only those `keep` allows. `newest_first` orders threads
/// by their newest kept message instead (the hook's context leads with what is new).
pub fn thread_order(d: &Digest, keep: impl Fn(usize) -> bool, newest_first: bool) -> Vec<usize> {
    let links: Vec<_> = d.messages.iter().map(|m| (vec![m.id.clone()], m.thread.clone())).collect();
    let mut groups: Vec<Vec<usize>> = super::log::thread_groups(&links)
        .into_iter()
        .map(|g| g.into_iter().filter(|&i| keep(i)).collect::<Vec<_>>())
        .filter(|g| !g.is_empty())
        .collect();
    if newest_first {
        groups.sort_by_key(|g| std::cmp::Reverse(g.iter().copied().max()));
    }
    groups.concat()
}

/// One document: header (opening with `lead`), excerpt (fenced), and where the full text is.
fn document(lead: &str, doc: &Incoming, cap: Option<usize>, overflow: Option<&Path>) -> String {
    let mut out = format!(
        "{lead} \"{}\"{}{} ({})\n",
        untrusted::inline(&doc.title),
        doc.from.as_deref().map(|f| format!(" from {}", untrusted::inline(f))).unwrap_or_default(),
        doc.ts.as_deref().map(|t| format!(" at {}", super::log::local_time(t))).unwrap_or_default(),
        untrusted::inline(&doc.location)
    );
    if let Some(c) = &doc.content {
        let (text, cut) = match cap {
            Some(cap) => excerpt(c, cap),
            None => (c.clone(), false),
        };
        out.push_str(&untrusted::fenced(&text));
        out.push('\n');
        if cut {
            let also = overflow.map(|p| format!(" (and in {})", p.display())).unwrap_or_default();
            out.push_str(&format!(
                "  (an excerpt of {} characters: the full text is in {}{also})\n",
                chars(c),
                untrusted::inline(&doc.location)
            ));
        }
    }
    out
}

fn summary_line(d: &Digest) -> String {
    if d.messages.is_empty() && d.documents.is_empty() {
        format!("handoff: nothing new for {}\n", untrusted::inline(&d.machine))
    } else {
        let replies = match d.messages.iter().filter(|m| m.thread.is_some()).count() {
            0 => String::new(),
            n => format!(" ({n} of them replies, shown in their threads)"),
        };
        format!(
            "handoff: {} new message(s){replies}, {} new document(s) for {}\n",
            d.messages.len(),
            d.documents.len(),
            untrusted::inline(&d.machine)
        )
    }
}

/// The digest for a terminal: problems first, every message in full (oldest first), documents excerpted
/// with the path to their full text, then remarks.
pub fn render_text(d: &Digest) -> String {
    let mut out = problems(d);
    if !d.messages.is_empty() || !d.documents.is_empty() {
        out.push_str(untrusted::PREAMBLE);
        out.push('\n');
    }
    out.push_str(&summary_line(d));
    for i in thread_order(d, |_| true, false) {
        out.push_str(&message(d, &d.messages[i], None, Some(DOCUMENT_CAP), None));
    }
    for doc in unlinked(d) {
        out.push_str(&document("\n── document", doc, Some(DOCUMENT_CAP), None));
    }
    for f in &d.fetched {
        out.push_str(&format!("fetched {} -> {}\n", untrusted::inline(&f.name), f.path.display()));
    }
    for n in &d.notes {
        out.push_str(&format!("note: {}\n", untrusted::inline(n)));
    }
    out
}

/// The SessionStart hook's context within its budget, and the overflow file when something did not fit.
pub fn hook_context(d: &Digest, data_dir: &Path) -> anyhow::Result<HookContext> {
    let path =
        data_dir.join("sync").join(format!("{}-last-sync.md", handoff_channels::names::safe_file_name(&d.machine)));
    let newest_first: Vec<usize> = (0..d.messages.len()).rev().collect();
    // the head: the preamble, then what could not be read (never cut away: it comes first)
    let mut head = String::new();
    head.push_str(untrusted::PREAMBLE);
    head.push('\n');
    let (probs, _) = excerpt(&problems(d), 2_000);
    head.push_str(&probs);
    if !probs.is_empty() && !probs.ends_with('\n') {
        head.push('\n');
    }
    head.push_str(&summary_line(d));
    // documents: excerpts within their share; a document that does not fit is named only
    let mut docs = String::new();
    let mut cut_anything = false;
    for doc in &d.documents {
        cut_anything |= doc.content.as_ref().is_some_and(|c| chars(c) > DOCUMENT_CAP);
    }
    for doc in unlinked(d) {
        let full = document("\n── document", doc, Some(DOCUMENT_CAP), Some(&path));
        if chars(&docs) + chars(&full) <= DOCUMENTS_SHARE {
            docs.push_str(&full);
        } else {
            cut_anything = true;
            docs.push_str(&document("\n── document", &Incoming { content: None, ..doc.clone() }, None, None));
            docs.push_str(&format!(
                "  (not shown here: see {} or {})\n",
                untrusted::inline(&doc.location),
                path.display()
            ));
        }
    }
    let mut notes = String::new();
    for n in &d.notes {
        notes.push_str(&format!("note: {}\n", excerpt(&untrusted::inline(n), PROBLEM_CAP).0));
    }
    // what the closing line about the overflow file may take
    let tail_reserve = 300 + chars(&path.display().to_string());
    let mut room = HOOK_TARGET.saturating_sub(chars(&head) + chars(&docs) + tail_reserve);
    // which messages fit is decided newest first; they are shown thread by thread
    let mut texts = vec![String::new(); d.messages.len()];
    let mut in_context = Vec::new();
    for &i in &newest_first {
        let m = &d.messages[i];
        let text = message(d, m, Some(MESSAGE_CAP), Some(DOCUMENT_CAP), Some(&path));
        let n = chars(&text);
        if n > room {
            break;
        }
        cut_anything |= chars(&shown_body(m)) > MESSAGE_CAP;
        room -= n;
        texts[i] = text;
        in_context.push(i);
    }
    let body: String =
        thread_order(d, |i| in_context.contains(&i), true).into_iter().map(|i| texts[i].as_str()).collect();
    let omitted = d.messages.len() - in_context.len();
    let mut shown = in_context.clone();
    let mut overflow = None;
    let mut tail = String::new();
    if omitted > 0 || cut_anything {
        // the overflow file: everything in full, newest first, as far as it goes
        let mut full = String::new();
        full.push_str(untrusted::PREAMBLE);
        full.push('\n');
        full.push_str(&problems(d));
        full.push_str(&summary_line(d));
        let mut not_even_there = 0;
        let mut written = vec![String::new(); d.messages.len()];
        let mut size = full.len();
        for &i in &newest_first {
            let text = message(d, &d.messages[i], None, None, None);
            if size + text.len() > OVERFLOW_MAX {
                not_even_there += 1;
                continue;
            }
            size += text.len();
            written[i] = text;
            if !in_context.contains(&i) {
                shown.push(i);
            }
        }
        for i in thread_order(d, |i| !written[i].is_empty(), true) {
            full.push_str(&written[i]);
        }
        for doc in unlinked(d) {
            full.push_str(&document("\n── document", doc, None, None));
        }
        if not_even_there > 0 {
            full.push_str(&format!(
                "\n{not_even_there} older message(s) did not fit here either; the next `handoff sync` shows them\n"
            ));
        }
        handoff_channels::fsutil::write_atomic_private(&path, full.as_bytes())?;
        let in_file = shown.len() - in_context.len();
        tail.push_str(&format!(
            "\n… {} of {} message(s) shown here (newest first); {in_file} more{} in the full digest: the full digest is in {} — read it{}\n",
            in_context.len(),
            d.messages.len(),
            if cut_anything { " and the whole text of what was cut" } else { "" },
            path.display(),
            if not_even_there > 0 {
                format!("; {not_even_there} older message(s) wait for the next sync")
            } else {
                String::new()
            }
        ));
        overflow = Some(path);
    }
    let mut context = head;
    context.push_str(&body);
    context.push_str(&docs);
    context.push_str(&tail);
    if chars(&context) + chars(&notes) <= HOOK_TARGET {
        context.push_str(&notes);
    } else if !notes.is_empty() {
        context.push_str(&format!("({} more note(s) in `handoff sync` output)\n", d.notes.len()));
    }
    shown.sort_unstable();
    Ok(HookContext { context, shown, overflow })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_ends_at_a_line_and_says_whether_it_cut() {
        let text = format!("{}\n{}", "a".repeat(80), "b".repeat(80));
        assert_eq!(excerpt(&text, 100), ("a".repeat(80), true));
        assert_eq!(excerpt("short", 100), ("short".to_string(), false));
    }
}
