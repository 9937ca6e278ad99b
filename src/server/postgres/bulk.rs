//! [`BulkStore`] for PostgreSQL: export in sequence order, import under the writers' advisory lock (so a
//! running replica's posts never interleave with imported numbers), then move the id sequence past the
//! highest stored number.

use super::{PgBusStore, pg_err, row_to_message, write};
use crate::server::bulk::{BulkAck, BulkRow, BulkStore};
use async_trait::async_trait;
use handoff_channels::bus::store::now_ts;
use std::collections::HashSet;

#[async_trait]
impl BulkStore for PgBusStore {
    fn describe(&self) -> String {
        self.target.display.clone()
    }

    async fn export_messages(&self, after: i64, limit: usize) -> anyhow::Result<Vec<BulkRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, id, ts, sender, recipient, body, tags, extra, idem_key FROM bus_messages WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| BulkRow { seq: Some(r.get(0)), msg: row_to_message(r), idem_key: r.get(8) }).collect())
    }

    async fn export_acks(&self, after: (i64, String), limit: usize) -> anyhow::Result<Vec<(i64, BulkAck)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.seq, m.id, a.reader, a.ts FROM bus_acks a JOIN bus_messages m ON m.seq = a.seq \
                 WHERE (a.seq, a.reader) > ($1, $2) ORDER BY a.seq, a.reader LIMIT $3",
                &[&after.0, &after.1, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| (r.get(0), BulkAck { id: r.get(1), reader: r.get(2), ts: Some(r.get(3)) })).collect())
    }

    async fn import_messages(&self, rows: Vec<BulkRow>) -> anyhow::Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&write::WRITE_LOCK]).await.map_err(pg_err)?;
        let ids: Vec<&str> = rows.iter().map(|r| r.msg.id.as_str()).collect();
        let existing: HashSet<String> = tx
            .query("SELECT id FROM bus_messages WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let wanted: Vec<i64> = rows.iter().filter_map(|r| r.seq).collect();
        let taken: HashSet<i64> = tx
            .query("SELECT seq FROM bus_messages WHERE seq = ANY($1)", &[&wanted])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let keys: Vec<&str> = rows.iter().filter_map(|r| r.idem_key.as_deref()).collect();
        let keys_taken: HashSet<String> = tx
            .query("SELECT idem_key FROM bus_messages WHERE idem_key = ANY($1)", &[&keys])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut max: i64 =
            tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM bus_messages", &[]).await.map_err(pg_err)?.get(0);
        let (mut seqs, mut out_ids, mut tss, mut senders, mut recipients, mut bodies, mut tags, mut extras, mut idem) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut used = HashSet::new();
        let mut seen_ids = HashSet::new();
        let mut seen_keys = HashSet::new();
        for row in &rows {
            let m = &row.msg;
            if existing.contains(m.id.as_str()) || !seen_ids.insert(m.id.as_str()) {
                continue;
            }
            let seq = match (row.seq, m.id.as_number()) {
                (Some(s), _) if s > 0 && !taken.contains(&s) && !used.contains(&s) => s,
                (None, Some(n)) if n > max => n,
                _ => max + 1,
            };
            max = max.max(seq);
            used.insert(seq);
            seqs.push(seq);
            out_ids.push(m.id.as_str());
            tss.push(m.ts.as_str());
            senders.push(m.from.as_str());
            recipients.push(m.to.as_str());
            bodies.push(m.body.as_str());
            tags.push(serde_json::to_string(&m.tags)?);
            extras.push(if m.extra.is_empty() { None } else { Some(serde_json::to_string(&m.extra)?) });
            idem.push(row.idem_key.as_deref().filter(|k| !keys_taken.contains(*k) && seen_keys.insert(*k)));
        }
        let added = tx
            .execute(
                "INSERT INTO bus_messages(seq, id, ts, sender, recipient, body, tags, extra, idem_key) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
                &[&seqs, &out_ids, &tss, &senders, &recipients, &bodies, &tags, &extras, &idem],
            )
            .await
            .map_err(pg_err)?;
        if added > 0 {
            // a message imported below a reader's floor makes that floor untrue: drop it (rebuilt from acks)
            let lowest = seqs.iter().min().copied().unwrap_or(i64::MAX);
            tx.execute("DELETE FROM bus_reader_floor WHERE floor >= $1", &[&lowest]).await.map_err(pg_err)?;
            // new posts continue after the highest stored number
            tx.execute(
                "SELECT setval('bus_messages_seq', GREATEST((SELECT MAX(seq) FROM bus_messages), (SELECT last_value FROM bus_messages_seq)))",
                &[],
            )
            .await
            .map_err(pg_err)?;
            tx.batch_execute("NOTIFY bus_messages").await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(added)
    }

    async fn import_acks(&self, acks: Vec<BulkAck>) -> anyhow::Result<u64> {
        if acks.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&write::WRITE_LOCK]).await.map_err(pg_err)?;
        let ids: Vec<&str> = acks.iter().map(|a| a.id.as_str()).collect();
        let seq_of = write::seqs_by_id(&tx, &ids).await?;
        let now = now_ts();
        let (mut readers, mut seqs, mut tss) = (vec![], vec![], vec![]);
        for a in &acks {
            if let Some(&s) = seq_of.get(&a.id) {
                readers.push(a.reader.as_str());
                seqs.push(s);
                tss.push(a.ts.as_deref().unwrap_or(&now));
            }
        }
        tx.execute(
            "INSERT INTO bus_acks(reader, seq, ts) SELECT * FROM unnest($1::text[], $2::int8[], $3::text[]) ON CONFLICT DO NOTHING",
            &[&readers, &seqs, &tss],
        )
        .await
        .map_err(pg_err)?;
        let known = readers.len() as u64;
        let mut distinct = readers;
        distinct.sort_unstable();
        distinct.dedup();
        for r in distinct {
            write::advance_floor(&tx, r).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(known)
    }

    async fn counts(&self) -> anyhow::Result<(u64, u64)> {
        let client = self.client().await?;
        let m: i64 = client.query_one("SELECT COUNT(*) FROM bus_messages", &[]).await.map_err(pg_err)?.get(0);
        let a: i64 = client.query_one("SELECT COUNT(*) FROM bus_acks", &[]).await.map_err(pg_err)?.get(0);
        Ok((m as u64, a as u64))
    }
}
