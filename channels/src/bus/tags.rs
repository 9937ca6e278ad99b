//! Tags with a meaning the bus's readers agree on. The original bus stores tags verbatim, so threads,
//! urgency and page records travel through it unchanged.
//!
//! - `re:<id>`: this message answers bus message `<id>` (a thread is a message and its replies);
//! - `urgent`: the sender paged a human about this message;
//! - `paged:<hash>`: the page went (or was meant to go) to the number whose [`paged_tag`] this is, so the
//!   bus server can route that number's SMS reply back to the machine that paged it;
//! - `sms-reply`: the message is a person's SMS answer, taken by the Twilio webhook.

use sha2::{Digest, Sha256};

/// Prefix of the tag naming the message a reply answers.
pub const REPLY_PREFIX: &str = "re:";
/// Tag of a message whose sender paged a human about it.
pub const URGENT_TAG: &str = "urgent";
/// Tag of a person's SMS answer taken by the bus server's Twilio webhook.
pub const SMS_REPLY_TAG: &str = "sms-reply";
/// Prefix of a page record tag (see [`paged_tag`]).
pub const PAGED_PREFIX: &str = "paged:";
/// Most page records one message carries (tags are limited in number).
pub const MAX_PAGED_TAGS: usize = 8;

/// The tag that makes a message a reply to `id`.
pub fn reply_tag(id: &str) -> String {
    format!("{REPLY_PREFIX}{id}")
}

/// The id a message answers, from its tags (the first `re:` tag with a non-empty id).
pub fn replied_to(tags: &[String]) -> Option<&str> {
    tags.iter().filter_map(|t| t.strip_prefix(REPLY_PREFIX)).find(|id| !id.is_empty())
}

/// The page record tag for a phone number (E.164): `paged:` and the first 16 hex digits of a SHA-256 of
/// the number. It lets the server match a reply's sender to a page without the bus spelling out the
/// number; it is a lookup key, not a secret (phone numbers are few enough to enumerate).
pub fn paged_tag(number: &str) -> String {
    let digest = Sha256::digest(format!("handoff page to {}", number.trim()).as_bytes());
    format!("{PAGED_PREFIX}{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_tags_round_trip_and_page_tags_are_short_and_stable() {
        let tags = vec!["pointer".to_string(), reply_tag("42"), reply_tag("7")];
        assert_eq!(replied_to(&tags), Some("42"));
        assert_eq!(replied_to(&["re:".to_string()]), None);
        assert_eq!(replied_to(&[]), None);
        let t = paged_tag("+15552223333");
        assert_eq!(t, paged_tag(" +15552223333 "));
        assert_ne!(t, paged_tag("+15552223334"));
        assert!(t.starts_with(PAGED_PREFIX) && t.len() == PAGED_PREFIX.len() + 16 && !t.contains("5552223333"));
    }
}
