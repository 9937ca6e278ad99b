//! A handoff draft as a MIME message: built with mail-builder, read back with mail-parser. The handoff
//! headers (`X-Handoff-Key`, `-From`, `-To`, `-Kind`) let a retry find its own earlier append and let
//! `sync` on another machine find drafts written by handoff; a document also rides as a `.md` attachment
//! so `fetch` gets its bytes back exactly.

use crate::{ChannelError, Parcel, ParcelKind};
use mail_builder::MessageBuilder;
use mail_builder::headers::text::Text;

/// The header holding the parcel's idempotency key.
pub const KEY_HEADER: &str = "X-Handoff-Key";
/// The sending machine.
pub const FROM_HEADER: &str = "X-Handoff-From";
/// The recipient machine (or `any`).
pub const TO_HEADER: &str = "X-Handoff-To";
/// `document`, `text` or `page`.
pub const KIND_HEADER: &str = "X-Handoff-Kind";

/// Addresses of a draft.
pub struct Addresses<'a> {
    /// `From:`.
    pub from: &'a str,
    /// `To:`.
    pub to: &'a [String],
    /// `Cc:`.
    pub cc: &'a [String],
}

/// Splits `Name <addr@host>` (or a bare `addr@host`) into its display name and address.
pub fn mailbox(s: &str) -> (Option<&str>, &str) {
    let s = s.trim();
    match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(_)) => {
            let name = s[..i].trim().trim_matches('"').trim();
            ((!name.is_empty()).then_some(name), s[i + 1..s.len() - 1].trim())
        }
        _ => (None, s),
    }
}

/// Whether `s` is a usable `Name <addr>` or `addr`: an address with an `@`, no spaces, brackets, quotes or
/// control characters, and a name on one line.
pub fn address_ok(s: &str) -> bool {
    let (name, addr) = mailbox(s);
    let plain = |t: &str| !t.chars().any(|c| c.is_control() || matches!(c, '<' | '>' | '"' | ','));
    addr.contains('@')
        && !addr.starts_with('@')
        && !addr.ends_with('@')
        && plain(addr)
        && !addr.contains(char::is_whitespace)
        && name.is_none_or(plain)
}

fn addresses(list: &[String]) -> Vec<mail_builder::headers::address::Address<'_>> {
    list.iter()
        .map(|s| match mailbox(s) {
            (Some(n), a) => (n, a).into(),
            (None, a) => a.into(),
        })
        .collect()
}

/// Whether `key` can be searched for safely (handoff's keys are hex and `-`).
pub fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// One line, no control characters, at most `n` characters.
fn one_line(s: &str, n: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() > n { format!("{}…", s.chars().take(n - 1).collect::<String>()) } else { s }
}

/// The draft's subject: `handoff: <title>` (the title, else the first line of the text).
pub fn subject(parcel: &Parcel) -> String {
    let title = parcel
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| parcel.body.lines().find(|l| !l.trim().is_empty()).map(|l| l.trim_start_matches('#').to_string()))
        .unwrap_or_else(|| "message".into());
    format!("handoff: {}", one_line(&title, 120))
}

/// The name of a document's attachment.
pub fn attachment_name(parcel: &Parcel) -> String {
    let base = crate::names::safe_file_name(parcel.title.as_deref().unwrap_or("handoff"));
    if base.ends_with(".md") { base } else { format!("{base}.md") }
}

/// The MIME message of a parcel.
pub fn build(parcel: &Parcel, a: &Addresses<'_>) -> Result<Vec<u8>, ChannelError> {
    let kind = match parcel.kind {
        ParcelKind::Document => "document",
        ParcelKind::Text => "text",
        ParcelKind::Page => "page",
        ParcelKind::File => return Err(ChannelError::permanent("the email channel does not carry files")),
    };
    let from = [a.from.to_string()];
    let mut m = MessageBuilder::new()
        .from(addresses(&from).remove(0))
        .subject(subject(parcel))
        .message_id(format!("{}@handoff", parcel.key))
        .header(KEY_HEADER, Text::new(parcel.key.clone()))
        .header(FROM_HEADER, Text::new(one_line(&parcel.from, 64)))
        .header(TO_HEADER, Text::new(one_line(&parcel.to, 64)))
        .header(KIND_HEADER, Text::new(kind))
        .text_body(parcel.body.clone());
    if !a.to.is_empty() {
        m = m.to(addresses(a.to));
    }
    if !a.cc.is_empty() {
        m = m.cc(addresses(a.cc));
    }
    if parcel.kind == ParcelKind::Document {
        m = m.attachment("text/markdown", attachment_name(parcel), parcel.body.as_bytes().to_vec());
    }
    m.write_to_vec().map_err(|e| ChannelError::permanent(format!("building the draft: {e}")))
}

/// A handoff draft read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `X-Handoff-Key`.
    pub key: String,
    /// `X-Handoff-From`.
    pub from: String,
    /// `X-Handoff-To`.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The `Date:` header (RFC 3339), when present.
    pub date: Option<String>,
    /// The exact content: the document attachment, else the text body.
    pub content: Vec<u8>,
}

/// Reads a draft written by handoff; `None` when it lacks the handoff headers.
pub fn parse(raw: &[u8]) -> Option<Draft> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    let h = |name: &str| m.header_raw(name).map(|v| v.trim().to_string());
    let key = h(KEY_HEADER)?;
    let content = match m.attachments().next() {
        Some(a) => a.contents().to_vec(),
        None => m.body_text(0).map(|t| t.into_owned().into_bytes()).unwrap_or_default(),
    };
    Some(Draft {
        key,
        from: h(FROM_HEADER).unwrap_or_default(),
        to: h(TO_HEADER).unwrap_or_default(),
        subject: m.subject().unwrap_or("").to_string(),
        date: m.date().map(|d| d.to_rfc3339()),
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parcel(kind: ParcelKind, title: Option<&str>, body: &str) -> Parcel {
        Parcel {
            key: "0192abcd-0".into(),
            from: "mac-studio".into(),
            to: "any".into(),
            kind,
            title: title.map(str::to_string),
            body: body.into(),
            tags: vec![],
            file: None,
        }
    }

    #[test]
    fn a_document_round_trips_byte_for_byte_with_its_headers() {
        let body = "# Plan\r\nline two\n\ttabs, é, 😀, trailing space \n=3D not QP\n.\n";
        let p = parcel(ParcelKind::Document, Some("Plan\r\nBcc: evil@x"), body);
        let to = vec!["me@example.com".to_string()];
        let cc = vec!["other@example.org".to_string(), "Third Inbox <third@example.net>".to_string()];
        let raw = build(&p, &Addresses { from: "me@example.com", to: &to, cc: &cc }).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("\nBcc:"), "no header injection through the title:\n{text}");
        let d = parse(&raw).unwrap();
        assert_eq!(d.key, "0192abcd-0");
        assert_eq!((d.from.as_str(), d.to.as_str()), ("mac-studio", "any"));
        assert_eq!(d.subject, "handoff: Plan Bcc: evil@x");
        assert_eq!(d.content, body.as_bytes());
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let cc: Vec<_> = m.cc().unwrap().iter().filter_map(|a| a.address()).collect();
        assert_eq!(cc, ["other@example.org", "third@example.net"]);
    }

    #[test]
    fn addresses_may_carry_a_name() {
        assert_eq!(mailbox("Me <me@x.org>"), (Some("Me"), "me@x.org"));
        assert_eq!(mailbox("me@x.org"), (None, "me@x.org"));
        assert!(address_ok("\"My Phone\" <me@x.org>") && address_ok("me@x.org"));
        for bad in ["me", "me@x.org\r\nBcc: e@v", "a b@x", "<>", "x <y>"] {
            assert!(!address_ok(bad), "{bad}");
        }
    }

    #[test]
    fn keys_are_checked_before_they_reach_a_search() {
        assert!(key_ok("0192abcd-3"));
        assert!(!key_ok("a\" OR ALL") && !key_ok(""));
    }
}
