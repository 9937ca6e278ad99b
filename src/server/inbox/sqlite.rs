//! [`InboxStore`] on the embedded SQLite store, with an FTS5 index of bodies kept by a trigger.

use super::store::{InboxMessage, InboxStore, MAX_ROWS, fts_terms};
use crate::server::store::SqliteBusStore;
use async_trait::async_trait;
use handoff_channels::bus::Message;
use handoff_channels::bus::store::{StoreError, row_to_message};
use handoff_channels::bus::tags::reply_tag;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

/// Creates the full-text index of bodies (FTS5, external content: the text is not stored twice) and the
/// trigger that fills it on every insert, indexing what was stored before. Idempotent.
pub fn ensure_search_index(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'", [], |_| Ok(true))
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(body, content='messages', content_rowid='seq');
         CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
             INSERT INTO messages_fts(rowid, body) VALUES (new.seq, new.body);
         END;
         INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
         COMMIT;",
    )
}

const COLUMNS: &str = "m.seq, m.id, m.ts, m.sender, m.recipient, m.body, m.tags, m.extra, \
                       EXISTS (SELECT 1 FROM acks a WHERE a.reader = ?1 AND a.seq = m.seq)";

fn row(r: &rusqlite::Row) -> rusqlite::Result<InboxMessage> {
    Ok(InboxMessage { msg: row_to_message(r)?, read: r.get(8)? })
}

fn collect(conn: &Connection, sql: &str, args: Vec<rusqlite::types::Value>) -> Result<Vec<InboxMessage>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params_from_iter(args), row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl InboxStore for SqliteBusStore {
    async fn recent(&self, reader: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError> {
        let args = vec![reader.to_string().into(), i64::from(limit.clamp(1, MAX_ROWS)).into()];
        self.read(move |s| {
            collect(s.connection(), &format!("SELECT {COLUMNS} FROM messages m ORDER BY m.seq DESC LIMIT ?2"), args)
        })
        .await
    }

    async fn search(&self, reader: &str, query: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError> {
        let Some(terms) = fts_terms(query) else { return Ok(Vec::new()) };
        let matcher = terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" ");
        let args = vec![reader.to_string().into(), i64::from(limit.clamp(1, MAX_ROWS)).into(), matcher.into()];
        self.read(move |s| {
            collect(
                s.connection(),
                &format!(
                    "SELECT {COLUMNS} FROM messages m WHERE m.seq IN \
                     (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?3) ORDER BY m.seq DESC LIMIT ?2"
                ),
                args,
            )
        })
        .await
    }

    async fn by_ids(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT {COLUMNS} FROM messages m WHERE m.id IN ({}) ORDER BY m.seq", placeholders(2, ids.len()));
        let mut args: Vec<rusqlite::types::Value> = vec![reader.to_string().into()];
        args.extend(ids.iter().map(|i| i.clone().into()));
        self.read(move |s| collect(s.connection(), &sql, args)).await
    }

    async fn replies_to(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM messages m WHERE EXISTS \
             (SELECT 1 FROM json_each(m.tags) t WHERE t.value IN ({})) ORDER BY m.seq",
            placeholders(2, ids.len())
        );
        let mut args: Vec<rusqlite::types::Value> = vec![reader.to_string().into()];
        args.extend(ids.iter().map(|i| reply_tag(i).into()));
        self.read(move |s| collect(s.connection(), &sql, args)).await
    }

    async fn latest_tagged(
        &self,
        tag: &str,
        sender: Option<&str>,
        since_ts: &str,
    ) -> Result<Option<Message>, StoreError> {
        let (tag, sender, since) = (tag.to_string(), sender.map(str::to_string), since_ts.to_string());
        self.read(move |s| {
            let mut st = s.connection().prepare_cached(
                "SELECT seq, id, ts, sender, recipient, body, tags, extra FROM messages m \
                 WHERE m.ts >= ?2 AND (?3 IS NULL OR m.sender = ?3) \
                 AND EXISTS (SELECT 1 FROM json_each(m.tags) t WHERE t.value = ?1) ORDER BY m.seq DESC LIMIT 1",
            )?;
            Ok(st.query_row(params![tag, since, sender], row_to_message).optional()?)
        })
        .await
    }
}
