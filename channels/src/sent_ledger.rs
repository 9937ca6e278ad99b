//! "At most once per idempotency key" for channels that cannot deduplicate on their side (Slack and
//! Discord webhooks, iMessage): a small SQLite table under the data directory records each key before
//! the attempt and its outcome after, so a retry never sends a delivered key again.

use crate::{ChannelError, Parcel, Receipt};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::PathBuf;

/// What an earlier attempt with the same key left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// Never tried (or every earlier try surely failed before anything was sent).
    None,
    /// Delivered; the detail recorded then (a message id).
    Delivered(String),
    /// Sent, but the answer never came: it may have arrived. Not sent again.
    Uncertain,
}

/// The ledger of one channel.
#[derive(Debug, Clone)]
pub struct SentLedger {
    path: PathBuf,
}

impl SentLedger {
    /// The ledger at `path` (created on first use).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn open(&self) -> Result<Connection, ChannelError> {
        let fail = |e: &dyn std::fmt::Display| {
            ChannelError::permanent(format!("delivery ledger {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let c = Connection::open(&self.path).map_err(|e| fail(&e))?;
        c.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| fail(&e))?;
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS sent (
                key TEXT PRIMARY KEY, state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', ts TEXT NOT NULL)",
        )
        .map_err(|e| fail(&e))?;
        Ok(c)
    }

    fn db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, ChannelError> {
        let c = self.open()?;
        f(&c).map_err(|e| ChannelError::permanent(format!("delivery ledger {}: {e}", self.path.display())))
    }

    /// What an earlier attempt with `key` left.
    pub fn earlier(&self, key: &str) -> Result<Earlier, ChannelError> {
        let row: Option<(String, String)> = self.db(|c| {
            c.query_row("SELECT state, detail FROM sent WHERE key = ?1", params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
        Ok(match row {
            Some((s, d)) if s == "delivered" => Earlier::Delivered(d),
            Some(_) => Earlier::Uncertain,
            None => Earlier::None,
        })
    }

    /// Records that `key` is about to be sent (durably, before the request leaves).
    pub fn sending(&self, key: &str) -> Result<(), ChannelError> {
        let ts = crate::bus::store::now_ts();
        self.db(|c| {
            c.execute("INSERT OR REPLACE INTO sent(key, state, ts) VALUES (?1, 'sending', ?2)", params![key, ts])
        })
        .map(|_| ())
    }

    /// Records that `key` was delivered, with a detail to report on a retry.
    pub fn delivered(&self, key: &str, detail: &str) -> Result<(), ChannelError> {
        let ts = crate::bus::store::now_ts();
        self.db(|c| {
            c.execute(
                "INSERT OR REPLACE INTO sent(key, state, detail, ts) VALUES (?1, 'delivered', ?2, ?3)",
                params![key, detail, ts],
            )
        })
        .map(|_| ())
    }

    /// Forgets `key`: the attempt surely did not deliver (refused before sending, or answered with an error).
    pub fn not_sent(&self, key: &str) -> Result<(), ChannelError> {
        self.db(|c| c.execute("DELETE FROM sent WHERE key = ?1", params![key])).map(|_| ())
    }
}

/// Why one attempt did not deliver.
#[derive(Debug)]
pub enum AttemptError {
    /// Surely not delivered (no connection, refused with an error answer, rate limited for too long).
    NotSent(ChannelError),
    /// The request went out but no answer came: it may have been delivered.
    Uncertain(ChannelError),
}

/// Delivers at most once per `parcel.key`: a key delivered before returns its earlier receipt; one whose
/// earlier attempt got no answer is not sent again (it may have arrived). `send` does the one attempt and
/// returns the detail to record (a message id).
pub async fn once<F, Fut>(ledger: &SentLedger, channel: &str, parcel: &Parcel, send: F) -> Result<Receipt, ChannelError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, AttemptError>>,
{
    let receipt = |detail: String| Receipt {
        channel: channel.to_string(),
        uri: None,
        message_id: None,
        detail: Some(detail),
        sha256: None,
    };
    let (l, k) = (ledger.clone(), parcel.key.clone());
    let earlier = tokio::task::spawn_blocking(move || l.earlier(&k))
        .await
        .map_err(|e| ChannelError::permanent(format!("ledger task: {e}")))??;
    match earlier {
        Earlier::Delivered(d) => return Ok(receipt(format!("{d} (delivered earlier)"))),
        Earlier::Uncertain => {
            return Err(ChannelError::permanent(format!(
                "an earlier attempt to post this to {channel} got no answer and may have arrived; not sent again \
                 (handoff posts at most once per message)"
            )));
        }
        Earlier::None => {}
    }
    ledger.sending(&parcel.key)?;
    match send().await {
        Ok(detail) => {
            // recorded before reporting success: a retry of this key never posts again
            ledger.delivered(&parcel.key, &detail)?;
            Ok(receipt(detail))
        }
        Err(AttemptError::NotSent(e)) => {
            ledger.not_sent(&parcel.key)?;
            Err(e)
        }
        Err(AttemptError::Uncertain(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_sent_once_and_an_unanswered_one_is_not_repeated() {
        let d = tempfile::tempdir().unwrap();
        let l = SentLedger::new(d.path().join("x/sent.sqlite"));
        assert_eq!(l.earlier("k").unwrap(), Earlier::None);
        l.sending("k").unwrap();
        assert_eq!(l.earlier("k").unwrap(), Earlier::Uncertain);
        l.not_sent("k").unwrap();
        assert_eq!(l.earlier("k").unwrap(), Earlier::None);
        l.sending("k").unwrap();
        l.delivered("k", "msg 7").unwrap();
        assert_eq!(l.earlier("k").unwrap(), Earlier::Delivered("msg 7".into()));
    }
}
