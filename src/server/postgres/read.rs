//! `GET /messages` on PostgreSQL: the same filters and order as the SQLite store, using the
//! `(recipient, seq)` index twice (recipient, then broadcasts) instead of an OR, and the reader's floor
//! to skip acked history in unread queries.

use super::{pg_err, row_to_message};
use handoff_channels::bus::store::{DEFAULT_LIMIT, MAX_LIMIT, StoreError};
use handoff_channels::bus::{BROADCAST, Message, MessageId, MessageQuery};
use tokio_postgres::types::ToSql;

const SELECT: &str = "SELECT seq, id, ts, sender, recipient, body, tags, extra FROM bus_messages";

/// Lists messages matching `q`, oldest first.
pub(super) async fn query(client: &deadpool_postgres::Client, q: &MessageQuery) -> Result<Vec<Message>, StoreError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as i64;
    let mut after: i64 = match q.since.as_deref() {
        None | Some("") => 0,
        Some(s) => {
            let stmt = client.prepare_cached("SELECT seq FROM bus_messages WHERE id = $1").await.map_err(pg_err)?;
            match client.query_opt(&stmt, &[&s]).await.map_err(pg_err)? {
                Some(r) => r.get(0),
                None => match MessageId(s.to_string()).as_number() {
                    Some(n) => n,
                    None => return Err(StoreError::BadRequest(format!("unknown `since` id {s:?}"))),
                },
            }
        }
    };
    if let (Some(to), Some(reader)) = (&q.to, &q.unread_by)
        && to == reader
    {
        let stmt =
            client.prepare_cached("SELECT floor FROM bus_reader_floor WHERE reader = $1").await.map_err(pg_err)?;
        if let Some(r) = client.query_opt(&stmt, &[reader]).await.map_err(pg_err)? {
            after = after.max(r.get(0));
        }
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &limit];
    let mut filters = vec!["seq > $1".to_string()];
    if let Some(f) = &q.from {
        params.push(f);
        filters.push(format!("sender = ${}", params.len()));
    }
    if let Some(r) = &q.unread_by {
        params.push(r);
        filters.push(format!(
            "NOT EXISTS (SELECT 1 FROM bus_acks a WHERE a.reader = ${} AND a.seq = bus_messages.seq)",
            params.len()
        ));
    }
    let base = filters.join(" AND ");
    let broadcast = BROADCAST;
    let sql = match &q.to {
        Some(to) => {
            params.push(to);
            let t = params.len();
            let mut sql = format!("({SELECT} WHERE recipient = ${t} AND {base} ORDER BY seq LIMIT $2)");
            if to != BROADCAST {
                params.push(&broadcast);
                let a = params.len();
                sql = format!(
                    "SELECT * FROM ({sql} UNION ALL ({SELECT} WHERE recipient = ${a} AND {base} ORDER BY seq LIMIT $2)) u ORDER BY seq LIMIT $2"
                );
            }
            sql
        }
        None => format!("{SELECT} WHERE {base} ORDER BY seq LIMIT $2"),
    };
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    let rows = client.query(&stmt, &params).await.map_err(pg_err)?;
    Ok(rows.iter().map(row_to_message).collect())
}
