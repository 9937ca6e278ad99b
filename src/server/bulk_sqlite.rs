//! [`BulkStore`] for the embedded SQLite store (the schema is created by
//! [`SqliteStore::open`](handoff_channels::bus::store::SqliteStore::open); this reads and writes its
//! tables directly, in large transactions).

use super::bulk::{BulkAck, BulkRow, BulkStore};
use async_trait::async_trait;
use handoff_channels::bus::BROADCAST;
use handoff_channels::bus::store::{SqliteStore, now_ts};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The embedded store opened for bulk export/import.
pub struct SqliteBulk {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteBulk {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        drop(SqliteStore::open(path)?); // creates the schema
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Self { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().unwrap_or_else(|p| p.into_inner()))).await?
    }
}

fn row_to_bulk(r: &rusqlite::Row) -> rusqlite::Result<BulkRow> {
    Ok(BulkRow { seq: Some(r.get(0)?), msg: handoff_channels::bus::store::row_to_message(r)?, idem_key: r.get(8)? })
}

#[async_trait]
impl BulkStore for SqliteBulk {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn export_messages(&self, after: i64, limit: usize) -> anyhow::Result<Vec<BulkRow>> {
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT seq, id, ts, sender, recipient, body, tags, extra, idem_key FROM messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            Ok(st.query_map(params![after, limit as i64], row_to_bulk)?.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn export_acks(&self, after: (i64, String), limit: usize) -> anyhow::Result<Vec<(i64, BulkAck)>> {
        self.with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT a.seq, m.id, a.reader, a.ts FROM acks a JOIN messages m ON m.seq = a.seq \
                 WHERE (a.seq, a.reader) > (?1, ?2) ORDER BY a.seq, a.reader LIMIT ?3",
            )?;
            let rows = st.query_map(params![after.0, after.1, limit as i64], |r| {
                Ok((r.get(0)?, BulkAck { id: r.get(1)?, reader: r.get(2)?, ts: Some(r.get(3)?) }))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn import_messages(&self, rows: Vec<BulkRow>) -> anyhow::Result<u64> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut max: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| r.get(0))?;
            let mut added = 0;
            let mut lowest = i64::MAX;
            {
                let mut id_exists = tx.prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?;
                let mut seq_exists = tx.prepare_cached("SELECT 1 FROM messages WHERE seq = ?1")?;
                let mut key_exists = tx.prepare_cached("SELECT 1 FROM messages WHERE idem_key = ?1")?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages(seq, id, ts, sender, recipient, body, tags, extra, idem_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                )?;
                for row in rows {
                    let m = &row.msg;
                    if id_exists.exists([m.id.as_str()])? {
                        continue;
                    }
                    let seq = match (row.seq, m.id.as_number()) {
                        (Some(s), _) if s > 0 && !seq_exists.exists([s])? => s,
                        (None, Some(n)) if n > max => n,
                        _ => max + 1,
                    };
                    max = max.max(seq);
                    lowest = lowest.min(seq);
                    let key = match &row.idem_key {
                        Some(k) if !key_exists.exists([k])? => Some(k.clone()),
                        _ => None,
                    };
                    let extra = if m.extra.is_empty() { None } else { Some(serde_json::to_string(&m.extra)?) };
                    insert.execute(params![seq, m.id.as_str(), m.ts, m.from, m.to, m.body, serde_json::to_string(&m.tags)?, extra, key])?;
                    added += 1;
                }
            }
            // a message imported below a reader's floor makes that floor untrue: drop it (rebuilt from acks)
            tx.execute("DELETE FROM reader_floor WHERE floor >= ?1", [lowest])?;
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn import_acks(&self, acks: Vec<BulkAck>) -> anyhow::Result<u64> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut known = 0;
            {
                let mut seq_of = tx.prepare_cached("SELECT seq FROM messages WHERE id = ?1")?;
                let mut insert =
                    tx.prepare_cached("INSERT OR IGNORE INTO acks(reader, seq, ts) VALUES (?1, ?2, ?3)")?;
                let now = now_ts();
                for a in &acks {
                    let Some(seq): Option<i64> = seq_of.query_row([&a.id], |r| r.get(0)).optional()? else { continue };
                    insert.execute(params![a.reader, seq, a.ts.as_deref().unwrap_or(&now)])?;
                    known += 1;
                }
            }
            let mut readers: Vec<&str> = acks.iter().map(|a| a.reader.as_str()).collect();
            readers.sort_unstable();
            readers.dedup();
            for r in readers {
                advance_floor(&tx, r)?;
            }
            tx.commit()?;
            Ok(known)
        })
        .await
    }

    async fn counts(&self) -> anyhow::Result<(u64, u64)> {
        self.with(|c| {
            let m: i64 = c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
            let a: i64 = c.query_row("SELECT COUNT(*) FROM acks", [], |r| r.get(0))?;
            Ok((m as u64, a as u64))
        })
        .await
    }
}

/// Moves `reader`'s floor up to just below its first unacked message (or to its newest message when all
/// are acked), so unread queries on imported history start there.
fn advance_floor(tx: &rusqlite::Transaction, reader: &str) -> rusqlite::Result<()> {
    let floor: i64 = tx
        .query_row("SELECT floor FROM reader_floor WHERE reader = ?1", [reader], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let unread = "SELECT MIN(seq) FROM messages m WHERE recipient = ?1 AND seq > ?2 \
                  AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.reader = ?3 AND a.seq = m.seq)";
    let first = |to: &str| tx.query_row(unread, params![to, floor, reader], |r| r.get::<_, Option<i64>>(0));
    let first_unread = [first(reader)?, first(BROADCAST)?].into_iter().flatten().min();
    let new = match first_unread {
        Some(s) => s - 1,
        None => tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE recipient = ?1 OR recipient = ?2",
            params![reader, BROADCAST],
            |r| r.get(0),
        )?,
    };
    if new > floor {
        tx.execute(
            "INSERT INTO reader_floor(reader, floor) VALUES (?1, ?2) ON CONFLICT(reader) DO UPDATE SET floor = excluded.floor",
            params![reader, new],
        )?;
    }
    Ok(())
}
