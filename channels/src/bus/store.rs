//! The bus's SQLite store: used by `handoff bus serve` (behind a group-commit writer) and opened directly
//! by the embedded default. WAL mode with `synchronous=FULL`, so a committed post is on disk; safe for
//! several processes at once (SQLite's locking plus a busy timeout).

use super::{BROADCAST, MAX_BODY, Message, MessageId, MessageQuery, NewMessage};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Default and maximum page sizes of `GET /messages`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest `limit` honoured.
pub const MAX_LIMIT: u32 = 500;
/// Longest accepted `from`/`to`/`reader` name, in bytes.
pub const MAX_NAME: usize = 128;
/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest WAL a store opened per process keeps ([`SqliteStore::keep_wal_between_processes`]).
pub const WAL_KEPT: u64 = 256 * 1024;
/// Most tags per message, and longest tag.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG: usize = 64;

/// What can go wrong in the store, mapped to HTTP statuses by the server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id does not exist (404).
    #[error("no message with id {0}")]
    NotFound(String),
    /// The request is invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is too large (413).
    #[error("body is {0} bytes; the bus takes at most 65536")]
    TooLarge(usize),
    /// The database failed (500/503).
    #[error("bus store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The storage backend is unreachable or stopped (503).
    #[error("bus store unavailable: {0}")]
    Unavailable(String),
}

/// The bus store on one SQLite connection.
pub struct SqliteStore {
    conn: Connection,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS messages (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    ts        TEXT NOT NULL,
    sender    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    body      TEXT NOT NULL,
    tags      TEXT NOT NULL DEFAULT '[]',
    extra     TEXT,
    idem_key  TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages(recipient, seq);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages(sender, seq);
CREATE TABLE IF NOT EXISTS acks (
    reader TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    ts     TEXT NOT NULL,
    PRIMARY KEY (reader, seq)
) WITHOUT ROWID;
-- every message to `reader` (or to any) with seq <= floor has been acked by `reader`
CREATE TABLE IF NOT EXISTS reader_floor (
    reader TEXT PRIMARY KEY,
    floor  INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Current time as the bus writes it: RFC 3339, UTC, microseconds.
pub fn now_ts() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Checks a message against the bus's input rules.
pub fn validate(msg: &NewMessage) -> Result<(), StoreError> {
    if msg.body.len() > MAX_BODY {
        return Err(StoreError::TooLarge(msg.body.len()));
    }
    check_name("from", &msg.from)?;
    check_name("to", &msg.to)?;
    if msg.tags.len() > MAX_TAGS {
        return Err(StoreError::BadRequest(format!("at most {MAX_TAGS} tags")));
    }
    if let Some(t) = msg.tags.iter().find(|t| t.len() > MAX_TAG) {
        return Err(StoreError::BadRequest(format!("tag too long ({} bytes, max {MAX_TAG})", t.len())));
    }
    for t in &msg.tags {
        no_control_characters("tags", t)?;
    }
    Ok(())
}

/// Names, recipients, readers and tags hold no control characters (newlines, ESC, NUL, bidi overrides):
/// they are shown on one line, and the original bus's clients never send them.
fn no_control_characters(field: &str, v: &str) -> Result<(), StoreError> {
    match v.chars().find(|c| crate::untrusted::is_unsafe(*c)) {
        Some(c) => Err(StoreError::BadRequest(format!(
            "`{field}` holds the control character U+{:04X}; names, readers and tags must be plain one-line text",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// Checks a machine/reader name.
pub fn check_name(field: &str, v: &str) -> Result<(), StoreError> {
    if v.is_empty() {
        return Err(StoreError::BadRequest(format!("`{field}` must not be empty")));
    }
    if v.len() > MAX_NAME {
        return Err(StoreError::BadRequest(format!("`{field}` is longer than {MAX_NAME} bytes")));
    }
    no_control_characters(field, v)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::BadRequest(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// For a store each short-lived process opens anew (the embedded default's, opened by every `handoff
    /// send`): the WAL stays when the process closes it, instead of being checkpointed and deleted there and
    /// recreated by the next process (four fsyncs around a post's one); a committed post is on disk before
    /// `post` returns, as before. The next process to open the store reads the WAL back (and SQLite then
    /// counts none of it as checkpointed), so the WAL is kept short: past [`WAL_KEPT`] bytes, opening
    /// checkpoints it into the database and empties it.
    pub fn keep_wal_between_processes(&self) -> Result<(), StoreError> {
        self.conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        let wal = self.conn.path().map(|p| format!("{p}-wal"));
        if wal.and_then(|w| std::fs::metadata(w).ok()).is_some_and(|m| m.len() > WAL_KEPT) {
            // never waits: when another process is reading or writing, the next one to open does it
            self.conn.busy_timeout(Duration::ZERO)?;
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            self.conn.busy_timeout(BUSY_TIMEOUT)?;
        }
        Ok(())
    }

    /// The underlying connection, for the bus server's own read queries (the web inbox's search).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Stores each message in one transaction (one fsync for the whole batch). Each entry's result is
    /// independent: a bad message fails alone. A known idempotency key returns the stored message.
    pub fn post_batch(
        &mut self,
        items: &[(NewMessage, Option<String>)],
    ) -> Result<Vec<Result<Message, StoreError>>, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(items.len());
        for (msg, key) in items {
            out.push(insert(&tx, msg, key.as_deref()));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Stores one message durably.
    pub fn post(&mut self, msg: &NewMessage, key: Option<&str>) -> Result<Message, StoreError> {
        let mut r = self.post_batch(&[(msg.clone(), key.map(str::to_string))])?;
        r.pop().expect("one result")
    }

    /// Acks several `(id, reader)` pairs in one transaction.
    pub fn ack_batch(&mut self, items: &[(String, String)]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(items.len());
        for (id, reader) in items {
            out.push(ack(&tx, id, reader));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Marks `id` read by `reader`. Acking twice changes nothing; an unknown id is [`StoreError::NotFound`].
    pub fn ack(&mut self, id: &str, reader: &str) -> Result<(), StoreError> {
        let mut r = self.ack_batch(&[(id.to_string(), reader.to_string())])?;
        r.pop().expect("one result")
    }

    /// Lists messages matching `q`, oldest first.
    pub fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>, StoreError> {
        query(&self.conn, q)
    }

    /// Number of stored messages.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Inserts messages exactly as given (id, ts and unknown fields preserved), for `bus import`, in one
    /// transaction. Returns how many were new; a message whose id exists is skipped (import is re-runnable).
    pub fn import(&mut self, msgs: &[Message]) -> Result<u64, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut max: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| r.get(0))?;
        let mut added = 0;
        {
            let mut exists = tx.prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages(seq, id, ts, sender, recipient, body, tags, extra) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            )?;
            for msg in msgs {
                if exists.exists([msg.id.as_str()])? {
                    continue;
                }
                // keep numeric ids as their own sequence number when they keep the order; otherwise append
                let seq = match msg.id.as_number() {
                    Some(n) if n > max => n,
                    _ => max + 1,
                };
                max = seq;
                let extra =
                    if msg.extra.is_empty() { None } else { Some(serde_json::to_string(&msg.extra).expect("json")) };
                insert.execute(params![
                    seq,
                    msg.id.as_str(),
                    msg.ts,
                    msg.from,
                    msg.to,
                    msg.body,
                    serde_json::to_string(&msg.tags).expect("json"),
                    extra
                ])?;
                added += 1;
            }
        }
        // imported messages always get a sequence number above every existing one, so every reader's
        // floor (all acked up to here) stays true
        tx.commit()?;
        Ok(added)
    }

    /// Records that `reader` had read the message `id` (from an imported data file), if it exists.
    pub fn import_ack(&mut self, id: &str, reader: &str) -> Result<(), StoreError> {
        match self.ack(id, reader) {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn insert(tx: &Transaction, msg: &NewMessage, key: Option<&str>) -> Result<Message, StoreError> {
    validate(msg)?;
    if let Some(k) = key {
        if k.len() > 200 {
            return Err(StoreError::BadRequest("idempotency key longer than 200 bytes".into()));
        }
        if let Some(m) = tx.query_row(&format!("{SELECT} WHERE idem_key = ?1"), [k], row_to_message).optional()? {
            return Ok(m);
        }
    }
    let mut seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages", [], |r| r.get(0))?;
    let ts = now_ts();
    let tags = serde_json::to_string(&msg.tags).expect("json");
    loop {
        let id = seq.to_string();
        match tx.execute(
            "INSERT INTO messages(seq, id, ts, sender, recipient, body, tags, idem_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![seq, id, ts, msg.from, msg.to, msg.body, tags, key],
        ) {
            Ok(_) => {
                return Ok(Message {
                    id: MessageId(id),
                    ts,
                    from: msg.from.clone(),
                    to: msg.to.clone(),
                    body: msg.body.clone(),
                    tags: msg.tags.clone(),
                    extra: Default::default(),
                });
            }
            // an imported message already uses this number as its id: take the next number
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => seq += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn seq_of(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT seq FROM messages WHERE id = ?1", [id], |r| r.get(0)).optional()?)
}

fn ack(tx: &Transaction, id: &str, reader: &str) -> Result<(), StoreError> {
    check_name("reader", reader)?;
    let Some(seq) = seq_of(tx, id)? else {
        return Err(StoreError::NotFound(id.to_string()));
    };
    let added =
        tx.execute("INSERT OR IGNORE INTO acks(reader, seq, ts) VALUES (?1, ?2, ?3)", params![reader, seq, now_ts()])?;
    if added > 0 {
        advance_floor(tx, reader)?;
    }
    Ok(())
}

/// Moves `reader`'s floor past every consecutive acked message addressed to it, so unread queries start
/// there instead of scanning the reader's whole history.
fn advance_floor(tx: &Transaction, reader: &str) -> Result<(), StoreError> {
    let mut floor: i64 = tx
        .query_row("SELECT floor FROM reader_floor WHERE reader = ?1", [reader], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let start = floor;
    let mut next_stmt = tx.prepare_cached(
        "SELECT MIN(s) FROM (SELECT MIN(seq) AS s FROM messages WHERE recipient = ?1 AND seq > ?3 \
         UNION ALL SELECT MIN(seq) FROM messages WHERE recipient = ?2 AND seq > ?3)",
    )?;
    let mut acked_stmt = tx.prepare_cached("SELECT 1 FROM acks WHERE reader = ?1 AND seq = ?2")?;
    for _ in 0..10_000 {
        let next: Option<i64> = next_stmt.query_row(params![reader, BROADCAST, floor], |r| r.get(0))?;
        let Some(next) = next else { break };
        if acked_stmt.exists(params![reader, next])? {
            floor = next;
        } else {
            break;
        }
    }
    if floor != start {
        tx.execute("INSERT INTO reader_floor(reader, floor) VALUES (?1, ?2) ON CONFLICT(reader) DO UPDATE SET floor = excluded.floor", params![reader, floor])?;
    }
    Ok(())
}

const SELECT: &str = "SELECT seq, id, ts, sender, recipient, body, tags, extra FROM messages";

/// Reads a message from a row selected with the columns `seq, id, ts, sender, recipient, body, tags, extra`.
pub fn row_to_message(r: &rusqlite::Row) -> rusqlite::Result<Message> {
    let tags: String = r.get(6)?;
    let extra: Option<String> = r.get(7)?;
    Ok(Message {
        id: MessageId(r.get(1)?),
        ts: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        body: r.get(5)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        extra: extra.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default(),
    })
}

fn query(conn: &Connection, q: &MessageQuery) -> Result<Vec<Message>, StoreError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as i64;
    let mut after: i64 = match &q.since {
        None => 0,
        Some(s) if s.is_empty() => 0,
        Some(s) => match seq_of(conn, s)? {
            Some(seq) => seq,
            None => match MessageId(s.clone()).as_number() {
                Some(n) => n,
                None => return Err(StoreError::BadRequest(format!("unknown `since` id {s:?}"))),
            },
        },
    };
    if let (Some(to), Some(reader)) = (&q.to, &q.unread_by)
        && to == reader
    {
        let floor: Option<i64> =
            conn.query_row("SELECT floor FROM reader_floor WHERE reader = ?1", [reader], |r| r.get(0)).optional()?;
        after = after.max(floor.unwrap_or(0));
    }
    let mut filters = vec!["seq > :after".to_string()];
    if q.from.is_some() {
        filters.push("sender = :from".into());
    }
    if q.unread_by.is_some() {
        filters.push("NOT EXISTS (SELECT 1 FROM acks a WHERE a.reader = :reader AND a.seq = messages.seq)".into());
    }
    let base = filters.join(" AND ");
    let sql = match &q.to {
        // two index range scans merged, instead of an OR that defeats the (recipient, seq) index
        Some(_) => format!(
            "SELECT * FROM (SELECT * FROM ({SELECT} WHERE recipient = :to AND {base} ORDER BY seq LIMIT :limit) \
             UNION ALL SELECT * FROM ({SELECT} WHERE recipient = :any AND :to <> :any AND {base} ORDER BY seq LIMIT :limit)) \
             ORDER BY seq LIMIT :limit"
        ),
        None => format!("{SELECT} WHERE {base} ORDER BY seq LIMIT :limit"),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":after", &after), (":limit", &limit)];
    if let Some(f) = &q.from {
        named.push((":from", f));
    }
    if let Some(r) = &q.unread_by {
        named.push((":reader", r));
    }
    if let Some(t) = &q.to {
        named.push((":to", t));
        named.push((":any", &BROADCAST));
    }
    let rows = stmt.query_map(named.as_slice(), row_to_message)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, to: &str, body: &str) -> NewMessage {
        NewMessage { from: from.into(), to: to.into(), body: body.into(), tags: vec![] }
    }

    #[test]
    fn unread_for_a_reader_includes_broadcasts_and_shrinks_as_it_acks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("bus.sqlite")).unwrap();
        let a = s.post(&msg("a", "b", "to b"), None).unwrap();
        let all = s.post(&msg("a", "any", "to all"), None).unwrap();
        s.post(&msg("a", "c", "to c"), None).unwrap();
        let q = MessageQuery { to: Some("b".into()), unread_by: Some("b".into()), ..Default::default() };
        let got: Vec<String> = s.messages(&q).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(got, ["to b", "to all"]);
        s.ack(a.id.as_str(), "b").unwrap();
        s.ack(a.id.as_str(), "b").unwrap();
        let got: Vec<String> = s.messages(&q).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(got, ["to all"]);
        s.ack(all.id.as_str(), "b").unwrap();
        assert!(s.messages(&q).unwrap().is_empty());
        // c still sees the broadcast, and its own message
        let qc = MessageQuery { to: Some("c".into()), unread_by: Some("c".into()), ..Default::default() };
        assert_eq!(s.messages(&qc).unwrap().len(), 2);
        assert!(matches!(s.ack("999", "b"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn a_store_opened_per_process_keeps_its_wal_bounded_and_every_post_readable_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.sqlite");
        let body = "x".repeat(3000);
        for i in 0..150 {
            // one process per post, as `handoff send` on the embedded default
            let mut s = SqliteStore::open(&path).unwrap();
            s.keep_wal_between_processes().unwrap();
            s.post(&msg("a", "b", &format!("{i} {body}")), Some(&format!("k{i}"))).unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("bus.sqlite-wal")).expect("the WAL stays between processes").len();
        assert!(wal <= WAL_KEPT + 4 * 4096, "the WAL is emptied past {WAL_KEPT} bytes: {wal} bytes");
        // a reader that knows nothing of this (another program, the bus server) sees every post
        let plain = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = plain.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 150);
    }

    #[test]
    fn same_idempotency_key_returns_the_first_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("bus.sqlite")).unwrap();
        let first = s.post(&msg("a", "b", "x"), Some("k1")).unwrap();
        let again = s.post(&msg("a", "b", "x"), Some("k1")).unwrap();
        assert_eq!(first, again);
        assert_eq!(s.count().unwrap(), 1);
    }

    #[test]
    fn floor_skips_acked_history_but_not_an_unread_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("bus.sqlite")).unwrap();
        let ids: Vec<_> = (0..5).map(|i| s.post(&msg("a", "b", &i.to_string()), None).unwrap().id).collect();
        // ack all but the second
        for (i, id) in ids.iter().enumerate() {
            if i != 1 {
                s.ack(id.as_str(), "b").unwrap();
            }
        }
        let q = MessageQuery { to: Some("b".into()), unread_by: Some("b".into()), ..Default::default() };
        let got: Vec<String> = s.messages(&q).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(got, ["1"]);
        s.ack(ids[1].as_str(), "b").unwrap();
        assert!(s.messages(&q).unwrap().is_empty());
        let floor: i64 = s.conn.query_row("SELECT floor FROM reader_floor WHERE reader='b'", [], |r| r.get(0)).unwrap();
        assert_eq!(floor, 5);
    }

    #[test]
    fn since_takes_an_id_and_limit_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("bus.sqlite")).unwrap();
        let batch: Vec<_> = (0..600).map(|i| (msg("a", "any", &i.to_string()), None)).collect();
        s.post_batch(&batch).unwrap();
        let q = MessageQuery { limit: Some(1000), ..Default::default() };
        assert_eq!(s.messages(&q).unwrap().len(), 500);
        let q = MessageQuery { since: Some("598".into()), ..Default::default() };
        let got: Vec<String> = s.messages(&q).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(got, ["598", "599"]);
        let q = MessageQuery { since: Some("nope".into()), ..Default::default() };
        assert!(matches!(s.messages(&q), Err(StoreError::BadRequest(_))));
    }
}
