//! What the web inbox and the Twilio webhook ask of a bus store beyond the original API: the newest
//! messages with their read state, full-text search, a thread's messages, and the latest message carrying
//! a tag (the page record an SMS answer is routed by). Both stores implement it.

use async_trait::async_trait;
use handoff_channels::bus::Message;
use handoff_channels::bus::store::StoreError;

/// A message with whether the inbox's reader (the person) has acked it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxMessage {
    /// The message.
    pub msg: Message,
    /// Acked by the reader.
    pub read: bool,
}

/// Most messages one inbox query returns.
pub const MAX_ROWS: u32 = 500;

/// The inbox's queries.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// The `limit` newest messages, newest first, with `reader`'s read state.
    async fn recent(&self, reader: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError>;
    /// Messages whose body matches every word of `query` (full-text), newest first.
    async fn search(&self, reader: &str, query: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError>;
    /// The messages with these ids (unknown ids are left out), oldest first.
    async fn by_ids(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError>;
    /// The messages tagged `re:<id>` for any of `ids`, oldest first.
    async fn replies_to(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError>;
    /// The newest message tagged `tag` (and sent by `sender`, when given) stored at or after `since_ts`
    /// (RFC 3339, as the bus writes timestamps).
    async fn latest_tagged(
        &self,
        tag: &str,
        sender: Option<&str>,
        since_ts: &str,
    ) -> Result<Option<Message>, StoreError>;
}

/// Turns what a person typed into a full-text query that cannot be a syntax error: each word becomes a
/// quoted term (quotes inside doubled), all of them required. `None` when nothing searchable is left.
pub fn fts_terms(query: &str) -> Option<Vec<String>> {
    let terms: Vec<String> = query
        .split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .take(16)
        .collect();
    (!terms.is_empty()).then_some(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_drop_nothing_but_blanks_and_control_characters() {
        assert_eq!(
            fts_terms("  deploy \"stuck\"\tnow "),
            Some(vec!["deploy".into(), "\"stuck\"".into(), "now".into()])
        );
        assert_eq!(fts_terms(" \t\n"), None);
        assert_eq!(fts_terms("\u{7}"), None);
    }
}
