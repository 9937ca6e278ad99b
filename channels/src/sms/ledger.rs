//! The page ledger: a small SQLite file in handoff's data directory that enforces the page budget (at
//! most N pages per hour per machine) and remembers which recipient already got which page, so a retry
//! of the same page (same idempotency key) neither spends budget again nor texts anyone twice.

use crate::ChannelError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The budget window.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Why a page was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// Pages this machine sent in the last hour.
    pub used: u32,
    /// The limit (`[sms] max_pages_per_hour`).
    pub limit: u32,
    /// Seconds until the oldest page in the window leaves it.
    pub retry_in: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mins = self.retry_in.div_ceil(60).max(1);
        write!(
            f,
            "page budget used up: {} of {} pages in the last hour from this machine (`max_pages_per_hour` in [sms]); \
             the next page is allowed in about {mins} min",
            self.used, self.limit
        )
    }
}

/// The outcome of [`Ledger::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// A new page, counted against the budget.
    New,
    /// This key was reserved before (a retry): not counted again.
    Retry,
    /// Refused: the budget is spent.
    Refused(OverBudget),
}

/// The ledger file.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn db_error(e: rusqlite::Error) -> ChannelError {
    ChannelError::transient(format!("page ledger: {e}"))
}

impl Ledger {
    /// The ledger at `path` (created on first use).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<Connection, ChannelError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ChannelError::permanent(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(&self.path).map_err(db_error)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS pages (machine TEXT NOT NULL, key TEXT NOT NULL, ts INTEGER NOT NULL,
                 PRIMARY KEY (machine, key));
             CREATE TABLE IF NOT EXISTS sent (key TEXT NOT NULL, recipient TEXT NOT NULL, sid TEXT NOT NULL,
                 ts INTEGER NOT NULL, PRIMARY KEY (key, recipient));
             CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, recipient TEXT NOT NULL,
                 ts INTEGER NOT NULL, PRIMARY KEY (key, recipient));",
        )
        .map_err(db_error)?;
        Ok(conn)
    }

    /// Counts the page `key` from `machine` against the budget of `limit` pages per hour, atomically
    /// (two sessions paging at once cannot both take the last slot).
    pub fn reserve(&self, machine: &str, key: &str, limit: u32) -> Result<Reservation, ChannelError> {
        self.reserve_at(machine, key, limit, now())
    }

    fn reserve_at(&self, machine: &str, key: &str, limit: u32, now: i64) -> Result<Reservation, ChannelError> {
        let mut conn = self.open()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let known: Option<i64> = tx
            .query_row("SELECT ts FROM pages WHERE machine = ?1 AND key = ?2", params![machine, key], |r| r.get(0))
            .optional()
            .map_err(db_error)?;
        if known.is_some() {
            return Ok(Reservation::Retry);
        }
        let since = now - WINDOW.as_secs() as i64;
        let (used, oldest): (u32, Option<i64>) = tx
            .query_row(
                "SELECT COUNT(*), MIN(ts) FROM pages WHERE machine = ?1 AND ts > ?2",
                params![machine, since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_error)?;
        if used >= limit {
            let retry_in = oldest.map(|t| (t - since).max(1) as u64).unwrap_or(WINDOW.as_secs());
            return Ok(Reservation::Refused(OverBudget { used, limit, retry_in }));
        }
        tx.execute("INSERT INTO pages (machine, key, ts) VALUES (?1, ?2, ?3)", params![machine, key, now])
            .map_err(db_error)?;
        // Old rows are no use to anyone: keep the file small.
        tx.execute("DELETE FROM pages WHERE ts < ?1", params![now - 2 * WINDOW.as_secs() as i64]).map_err(db_error)?;
        tx.execute("DELETE FROM sent WHERE ts < ?1", params![now - 30 * 24 * 3600]).map_err(db_error)?;
        tx.execute("DELETE FROM attempts WHERE ts < ?1", params![now - 30 * 24 * 3600]).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(Reservation::New)
    }

    /// Gives a reservation back (the page reached nobody), so a failed page does not spend the budget.
    pub fn release(&self, machine: &str, key: &str) -> Result<(), ChannelError> {
        let conn = self.open()?;
        conn.execute("DELETE FROM pages WHERE machine = ?1 AND key = ?2", params![machine, key]).map_err(db_error)?;
        Ok(())
    }

    /// The message SID already sent to `recipient` for page `key`, if any.
    pub fn sent(&self, key: &str, recipient: &str) -> Result<Option<String>, ChannelError> {
        let conn = self.open()?;
        conn.query_row("SELECT sid FROM sent WHERE key = ?1 AND recipient = ?2", params![key, recipient], |r| r.get(0))
            .optional()
            .map_err(db_error)
    }

    /// Notes that page `key` is about to be sent to `recipient`; true when an earlier attempt was noted
    /// (its outcome unknown unless [`Self::sent`] has it).
    pub fn attempt(&self, key: &str, recipient: &str) -> Result<bool, ChannelError> {
        let conn = self.open()?;
        let added = conn
            .execute(
                "INSERT OR IGNORE INTO attempts (key, recipient, ts) VALUES (?1, ?2, ?3)",
                params![key, recipient, now()],
            )
            .map_err(db_error)?;
        Ok(added == 0)
    }

    /// Records that page `key` reached `recipient` as message `sid`.
    pub fn record(&self, key: &str, recipient: &str, sid: &str) -> Result<(), ChannelError> {
        let conn = self.open()?;
        conn.execute(
            "INSERT OR REPLACE INTO sent (key, recipient, sid, ts) VALUES (?1, ?2, ?3, ?4)",
            params![key, recipient, sid, now()],
        )
        .map_err(db_error)?;
        Ok(())
    }

    /// Pages `machine` sent in the last hour.
    pub fn used(&self, machine: &str) -> Result<u32, ChannelError> {
        let conn = self.open()?;
        conn.query_row(
            "SELECT COUNT(*) FROM pages WHERE machine = ?1 AND ts > ?2",
            params![machine, now() - WINDOW.as_secs() as i64],
            |r| r.get(0),
        )
        .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_new_pages_per_machine_not_retries() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::new(dir.path().join("sub/pages.sqlite"));
        let t = 1_000_000;
        assert_eq!(l.reserve_at("m", "k1", 2, t).unwrap(), Reservation::New);
        assert_eq!(l.reserve_at("m", "k1", 2, t + 1).unwrap(), Reservation::Retry);
        assert_eq!(l.reserve_at("m", "k2", 2, t + 10).unwrap(), Reservation::New);
        match l.reserve_at("m", "k3", 2, t + 20).unwrap() {
            Reservation::Refused(o) => {
                assert_eq!((o.used, o.limit), (2, 2));
                assert_eq!(o.retry_in, 3600 - 20);
                assert!(o.to_string().contains("max_pages_per_hour"));
            }
            other => panic!("expected refusal, got {other:?}"),
        }
        assert_eq!(l.reserve_at("other", "k3", 2, t + 20).unwrap(), Reservation::New, "budgets are per machine");
        assert_eq!(l.reserve_at("m", "k3", 2, t + 3601).unwrap(), Reservation::New, "the window slides");
        l.release("m", "k3").unwrap();
        assert_eq!(l.reserve_at("m", "k4", 2, t + 3602).unwrap(), Reservation::New, "a released page frees its slot");
    }

    #[test]
    fn sent_records_are_per_key_and_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::new(dir.path().join("pages.sqlite"));
        assert_eq!(l.sent("k", "+15552223333").unwrap(), None);
        l.record("k", "+15552223333", "SM1").unwrap();
        assert_eq!(l.sent("k", "+15552223333").unwrap().as_deref(), Some("SM1"));
        assert_eq!(l.sent("k", "+15554445555").unwrap(), None);
        assert_eq!(l.sent("k2", "+15552223333").unwrap(), None);
        assert!(!l.attempt("k", "+15552223333").unwrap(), "first attempt");
        assert!(l.attempt("k", "+15552223333").unwrap(), "second attempt knows of the first");
        assert!(!l.attempt("k", "+15554445555").unwrap());
    }
}
