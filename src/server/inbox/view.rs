//! What the inbox pages show, built from stored messages: each message's fields made safe for display
//! (control and bidi characters escaped by `untrusted`; HTML escaping is the template engine's), pointers
//! spelled out, and messages grouped into threads (`re:<id>`) and conversations (one per machine).

use super::store::InboxMessage;
use handoff_channels::bus::tags::{SMS_REPLY_TAG, URGENT_TAG, replied_to};
use handoff_channels::pointer::{Pointer, human_size};
use handoff_channels::untrusted;
use std::collections::HashMap;

/// One message as a page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    /// Its id.
    pub id: String,
    /// Sender.
    pub from: String,
    /// Recipient (`any` for everyone).
    pub to: String,
    /// When it was stored.
    pub ts: String,
    /// The body (for a pointer: the human part, without the machine line).
    pub body: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The id it answers, if any.
    pub re: Option<String>,
    /// Its sender paged a human.
    pub urgent: bool,
    /// A person's SMS answer.
    pub sms: bool,
    /// Read by the person (or written by them).
    pub read: bool,
    /// What it points at, when it is a pointer.
    pub pointer: Option<PointerView>,
}

/// A pointer's items and the command that fetches them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointerView {
    /// Title of the handoff.
    pub title: Option<String>,
    /// The items.
    pub items: Vec<ItemView>,
    /// `handoff fetch <id>`.
    pub fetch: String,
}

/// One pointed-to item: what, where, how big, which hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemView {
    /// Its name.
    pub name: String,
    /// The channel holding it.
    pub channel: String,
    /// Where (credentials redacted).
    pub uri: String,
    /// Size for people (`1.5 MiB`).
    pub size: String,
    /// Hex sha256.
    pub sha256: String,
}

impl MessageView {
    /// The display form of `m`; `human` is the person's name (their own messages count as read).
    pub fn new(m: &InboxMessage, human: &str) -> Self {
        let msg = &m.msg;
        let pointer = Pointer::from_body(&msg.body).map(|p| PointerView {
            title: p.title.as_deref().map(untrusted::inline),
            items: p
                .items
                .iter()
                .map(|i| ItemView {
                    name: untrusted::inline(&i.name),
                    channel: untrusted::inline(&i.channel),
                    uri: untrusted::inline(&untrusted::redact_url(&i.uri)),
                    size: human_size(i.size),
                    sha256: untrusted::inline(&i.sha256),
                })
                .collect(),
            fetch: format!("handoff fetch {}", untrusted::inline(msg.id.as_str())),
        });
        let body = match &pointer {
            Some(_) => msg
                .body
                .lines()
                .filter(|l| !l.starts_with(handoff_channels::pointer::POINTER_PREFIX))
                .collect::<Vec<_>>()
                .join("\n"),
            None => msg.body.clone(),
        };
        Self {
            id: untrusted::inline(msg.id.as_str()),
            from: untrusted::inline(&msg.from),
            to: untrusted::inline(&msg.to),
            ts: untrusted::inline(&msg.ts),
            body: untrusted::body(&body),
            tags: msg.tags.iter().map(|t| untrusted::inline(t)).collect(),
            re: replied_to(&msg.tags).map(untrusted::inline),
            urgent: msg.tags.iter().any(|t| t == URGENT_TAG),
            sms: msg.tags.iter().any(|t| t == SMS_REPLY_TAG),
            read: m.read || msg.from == human,
            pointer,
        }
    }

    /// The first line of the body, cut to `max` characters, for lists.
    pub fn summary(&self, max: usize) -> String {
        let first = self.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut s: String = first.chars().take(max).collect();
        if first.chars().count() > max {
            s.push('…');
        }
        s
    }
}

/// A thread: the message that started it and its replies, oldest first.
#[derive(Debug, Clone)]
pub struct ThreadView {
    /// The id of the message that started it (which may be older than what is shown).
    pub root: String,
    /// Its messages, oldest first.
    pub messages: Vec<MessageView>,
    /// The machine the person talks to in it (`any` for everyone).
    pub machine: String,
}

impl ThreadView {
    /// Messages the person has not read.
    pub fn unread(&self) -> usize {
        self.messages.iter().filter(|m| !m.read).count()
    }
    /// Any message in it is urgent.
    pub fn urgent(&self) -> bool {
        self.messages.iter().any(|m| m.urgent)
    }
    /// The first message shown.
    pub fn first(&self) -> &MessageView {
        &self.messages[0]
    }
    /// The newest message.
    pub fn last(&self) -> &MessageView {
        self.messages.last().expect("a thread has a message")
    }
    /// Replies shown (all but the first).
    pub fn replies(&self) -> usize {
        self.messages.len().saturating_sub(1)
    }
}

/// The person's conversation with one machine: its threads, newest activity first.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The machine (`any`: messages to everyone).
    pub machine: String,
    /// Its threads, newest activity first.
    pub threads: Vec<ThreadView>,
}

impl Conversation {
    /// Unread messages in all its threads.
    pub fn unread(&self) -> usize {
        self.threads.iter().map(ThreadView::unread).sum()
    }
}

/// The machine a thread is with: the first party of its messages that is not the person.
pub fn machine_of(messages: &[MessageView], human: &str) -> String {
    messages
        .iter()
        .flat_map(|m| [&m.from, &m.to])
        .find(|n| n.as_str() != human && n.as_str() != handoff_channels::bus::BROADCAST)
        .cloned()
        .unwrap_or_else(|| handoff_channels::bus::BROADCAST.to_string())
}

/// The id of the thread `id` belongs to: follows `re:` links through `parent` while they lead to known
/// messages (at most 64 steps, so a cycle of forged tags ends).
pub fn root_of<'a>(id: &'a str, parent: &HashMap<&'a str, &'a str>) -> &'a str {
    let mut cur = id;
    for _ in 0..64 {
        match parent.get(cur) {
            Some(p) if *p != cur => cur = p,
            _ => break,
        }
    }
    cur
}

/// Groups messages (newest first, as stored) into conversations by machine, each with its threads; the
/// conversation and thread with the newest message come first.
pub fn conversations(messages: &[InboxMessage], human: &str) -> Vec<Conversation> {
    let views: Vec<MessageView> = messages.iter().rev().map(|m| MessageView::new(m, human)).collect();
    let parent: HashMap<&str, &str> =
        views.iter().filter_map(|v| v.re.as_deref().map(|p| (v.id.as_str(), p))).collect();
    // oldest first, so each thread's messages and the order of first appearance follow time
    let mut order: Vec<String> = Vec::new();
    let mut threads: HashMap<String, Vec<MessageView>> = HashMap::new();
    for v in &views {
        let root = root_of(&v.id, &parent).to_string();
        if !threads.contains_key(&root) {
            order.push(root.clone());
        }
        threads.entry(root).or_default().push(v.clone());
    }
    let mut list: Vec<ThreadView> = order
        .into_iter()
        .map(|root| {
            let messages = threads.remove(&root).unwrap_or_default();
            let machine = machine_of(&messages, human);
            ThreadView { root, messages, machine }
        })
        .collect();
    // newest activity first: the position of a thread's last message in the oldest-first list
    let pos: HashMap<&str, usize> = views.iter().enumerate().map(|(i, v)| (v.id.as_str(), i)).collect();
    list.sort_by_key(|t| std::cmp::Reverse(pos.get(t.last().id.as_str()).copied().unwrap_or(0)));
    let mut convs: Vec<Conversation> = Vec::new();
    for t in list {
        match convs.iter_mut().find(|c| c.machine == t.machine) {
            Some(c) => c.threads.push(t),
            None => convs.push(Conversation { machine: t.machine.clone(), threads: vec![t] }),
        }
    }
    convs
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_channels::bus::{Message, MessageId};

    fn m(id: &str, from: &str, to: &str, body: &str, tags: &[&str], read: bool) -> InboxMessage {
        InboxMessage {
            msg: Message {
                id: MessageId(id.into()),
                ts: format!("2026-01-01T00:00:0{id}Z"),
                from: from.into(),
                to: to.into(),
                body: body.into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                extra: Default::default(),
            },
            read,
        }
    }

    #[test]
    fn replies_group_under_their_root_and_the_newest_conversation_comes_first() {
        // newest first, as the store returns them
        let msgs = vec![
            m("6", "human", "mac", "ok", &["re:5"], false),
            m("5", "mac", "human", "reply to reply", &["re:4"], false),
            m("4", "human", "mac", "answer", &["re:1", "sms-reply"], false),
            m("3", "linux", "any", "hello all", &[], true),
            m("2", "mac", "linux", "cycle", &["re:2"], false),
            m("1", "mac", "linux", "prod down\ndetails", &["urgent"], false),
        ];
        let convs = conversations(&msgs, "human");
        assert_eq!(convs.iter().map(|c| c.machine.as_str()).collect::<Vec<_>>(), ["mac", "linux"]);
        let mac = &convs[0];
        assert_eq!(mac.threads.len(), 2);
        let t = &mac.threads[0];
        assert_eq!(t.root, "1");
        assert_eq!(t.messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["1", "4", "5", "6"]);
        assert!(t.urgent() && t.messages[1].sms);
        assert_eq!(t.unread(), 2, "the person's own messages count as read");
        assert_eq!(t.first().summary(5), "prod …");
        assert_eq!(mac.threads[1].root, "2", "a self-reply does not loop");
    }

    #[test]
    fn display_fields_escape_control_and_bidi_characters() {
        let v = MessageView::new(&m("1", "ma\u{1b}[31mc", "x\u{202e}y", "a\u{7}b\nc", &["t\nx"], false), "human");
        assert_eq!(v.from, "ma\\x1b[31mc");
        assert!(!v.to.contains('\u{202e}'));
        assert_eq!(v.body, "a\\x07b\nc");
        assert_eq!(v.tags, ["t\\nx"]);
    }
}
