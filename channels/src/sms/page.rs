//! The text of an urgent page: one line, short by design, within Twilio's limit.

use super::validate;

/// How much of a summary a page carries when it points at a bus message.
pub const SUMMARY_CHARS: usize = 120;

/// Where the message a page points at is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusRef<'a> {
    /// Posted: the bus message id.
    Posted(&'a str),
    /// The bus was unreachable; the message waits in the outbox.
    Queued,
    /// The bus refused the message (it will not arrive).
    Failed,
}

/// The SMS wording of a page: [`page_text`] with the summary when the bus message is posted, else with
/// the standalone text.
pub fn render(note: &crate::PageNote) -> String {
    match &note.bus {
        crate::BusState::Posted(id) => page_text(&note.from, &note.summary, BusRef::Posted(id)),
        crate::BusState::Queued => page_text(&note.from, &note.standalone, BusRef::Queued),
        crate::BusState::Failed => page_text(&note.from, &note.standalone, BusRef::Failed),
    }
}

/// How much text a page carries when there is no bus message to point at (two SMS segments).
pub const STANDALONE_CHARS: usize = 300;

/// The text of an urgent page: `<machine>: <summary> (bus msg <id>)` when the message is on the bus;
/// when it is not, the page carries the text itself (up to [`STANDALONE_CHARS`]) and says why. Always
/// one line; within Twilio's limit for any machine name handoff accepts (at most 64 characters).
pub fn page_text(machine: &str, summary: &str, bus: BusRef<'_>) -> String {
    let one_line = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let (tail, room) = match bus {
        BusRef::Posted(id) => (format!(" (bus msg {id})"), SUMMARY_CHARS),
        BusRef::Queued => (" (bus unreachable; message queued)".to_string(), STANDALONE_CHARS),
        BusRef::Failed => (" (bus refused the message)".to_string(), STANDALONE_CHARS),
    };
    let head = format!("{machine}: ");
    let room = room.min(validate::MAX_BODY_CHARS.saturating_sub(units(&head) + units(&tail)));
    format!("{head}{}{tail}", truncate_units(&one_line, room))
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `max` UTF-16 units, ending with `…` when cut.
fn truncate_units(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in s.chars() {
        if n + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        n += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_points_at_the_bus_message() {
        let t = page_text("mac-studio", "deploy broke\n  prod is down", BusRef::Posted("42"));
        assert_eq!(t, "mac-studio: deploy broke prod is down (bus msg 42)");
        let long = "x".repeat(500);
        let t = page_text("m", &long, BusRef::Posted("7"));
        assert!(t.ends_with("… (bus msg 7)") && t.chars().count() == 3 + SUMMARY_CHARS + " (bus msg 7)".len(), "{t}");
    }

    #[test]
    fn a_page_note_is_worded_for_sms() {
        let mut note = crate::PageNote {
            from: "mac".into(),
            summary: "prod down".into(),
            bus: crate::BusState::Posted("42".into()),
            standalone: "prod down\nthe deploy stalled at migration 17".into(),
        };
        assert_eq!(render(&note), "mac: prod down (bus msg 42)");
        note.bus = crate::BusState::Queued;
        assert_eq!(
            render(&note),
            "mac: prod down the deploy stalled at migration 17 (bus unreachable; message queued)"
        );
        note.bus = crate::BusState::Failed;
        note.standalone = "y".repeat(2000);
        let t = render(&note);
        assert!(t.ends_with("… (bus refused the message)") && t.chars().count() < 400, "{t}");
    }

    #[test]
    fn page_text_without_bus_carries_the_text_and_stays_short() {
        let t = page_text("m", "the summary itself", BusRef::Queued);
        assert_eq!(t, "m: the summary itself (bus unreachable; message queued)");
        assert_eq!(page_text("m", "x", BusRef::Failed), "m: x (bus refused the message)");
        let t = page_text("m", &"é😀".repeat(2000), BusRef::Queued);
        let most = 3 + STANDALONE_CHARS + " (bus unreachable; message queued)".len();
        assert!((most - 1..=most).contains(&t.encode_utf16().count()), "an emoji is never cut in half: {t}");
        validate::body(&t).unwrap();
        assert!(t.ends_with("… (bus unreachable; message queued)"));
        let t = page_text(&"m".repeat(1700), "x", BusRef::Queued);
        assert!(
            t.encode_utf16().count() > validate::MAX_BODY_CHARS,
            "a silly machine name is caught by validate::body"
        );
    }
}
