//! [`InboxStore`] on PostgreSQL: full-text search with `to_tsvector`/`plainto_tsquery` (the `simple`
//! configuration, so any language's words match as typed), served by a GIN index (schema migration 2).

use super::store::{InboxMessage, InboxStore, MAX_ROWS, fts_terms};
use crate::server::postgres::{PgBusStore, pg_err, row_to_message};
use async_trait::async_trait;
use handoff_channels::bus::Message;
use handoff_channels::bus::store::StoreError;
use handoff_channels::bus::tags::reply_tag;

const COLUMNS: &str = "m.seq, m.id, m.ts, m.sender, m.recipient, m.body, m.tags, m.extra, \
                       EXISTS (SELECT 1 FROM bus_acks a WHERE a.reader = $1 AND a.seq = m.seq)";

fn rows(rs: Vec<tokio_postgres::Row>) -> Vec<InboxMessage> {
    rs.iter().map(|r| InboxMessage { msg: row_to_message(r), read: r.get(8) }).collect()
}

#[async_trait]
impl InboxStore for PgBusStore {
    async fn recent(&self, reader: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError> {
        let c = self.client().await?;
        let limit = i64::from(limit.clamp(1, MAX_ROWS));
        let sql = format!("SELECT {COLUMNS} FROM bus_messages m ORDER BY m.seq DESC LIMIT $2");
        Ok(rows(c.query(&sql, &[&reader, &limit]).await.map_err(pg_err)?))
    }

    async fn search(&self, reader: &str, query: &str, limit: u32) -> Result<Vec<InboxMessage>, StoreError> {
        let Some(terms) = fts_terms(query) else { return Ok(Vec::new()) };
        let c = self.client().await?;
        let limit = i64::from(limit.clamp(1, MAX_ROWS));
        let text = terms.join(" ");
        let sql = format!(
            "SELECT {COLUMNS} FROM bus_messages m \
             WHERE to_tsvector('simple', m.body) @@ plainto_tsquery('simple', $3) ORDER BY m.seq DESC LIMIT $2"
        );
        Ok(rows(c.query(&sql, &[&reader, &limit, &text]).await.map_err(pg_err)?))
    }

    async fn by_ids(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError> {
        let c = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM bus_messages m WHERE m.id = ANY($2) ORDER BY m.seq");
        Ok(rows(c.query(&sql, &[&reader, &ids]).await.map_err(pg_err)?))
    }

    async fn replies_to(&self, reader: &str, ids: &[String]) -> Result<Vec<InboxMessage>, StoreError> {
        let c = self.client().await?;
        let tags: Vec<String> = ids.iter().map(|i| reply_tag(i)).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM bus_messages m WHERE EXISTS \
             (SELECT 1 FROM jsonb_array_elements_text(m.tags::jsonb) t WHERE t = ANY($2)) ORDER BY m.seq"
        );
        Ok(rows(c.query(&sql, &[&reader, &tags]).await.map_err(pg_err)?))
    }

    async fn latest_tagged(
        &self,
        tag: &str,
        sender: Option<&str>,
        since_ts: &str,
    ) -> Result<Option<Message>, StoreError> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                "SELECT seq, id, ts, sender, recipient, body, tags, extra FROM bus_messages m \
                 WHERE m.ts >= $2 AND ($3::text IS NULL OR m.sender = $3) \
                 AND m.tags::jsonb @> jsonb_build_array($1::text) ORDER BY m.seq DESC LIMIT 1",
                &[&tag, &since_ts, &sender],
            )
            .await
            .map_err(pg_err)?;
        Ok(r.as_ref().map(row_to_message))
    }
}
