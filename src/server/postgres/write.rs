//! Group commit on PostgreSQL: one writer task per replica gathers the posts and acks that arrive
//! together and commits them in one transaction. Every transaction first takes a transaction-scoped
//! advisory lock, so across all replicas sequence numbers are handed out and committed in the same order:
//! a reader that saw id N never later finds a new message below N (`since=` and the per-reader floors
//! stay correct with any number of replicas). Results are sent only after COMMIT returns.

use super::{Pool, pg_err, row_to_message};
use deadpool_postgres::Transaction;
use handoff_channels::bus::store::{StoreError, check_name, now_ts, validate};
use handoff_channels::bus::{BROADCAST, Message, MessageId, NewMessage};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Advisory-lock key serialising writers across replicas.
pub(super) const WRITE_LOCK: i64 = 0x68616e646f6667;

/// One queued write and where its result goes.
pub(super) enum WriteOp {
    /// A post with its optional idempotency key.
    Post(NewMessage, Option<String>, oneshot::Sender<Result<Message, StoreError>>),
    /// An ack `(id, reader)`.
    Ack(String, String, oneshot::Sender<Result<(), StoreError>>),
}

/// Most operations committed in one transaction.
pub(super) const MAX_GROUP: usize = 512;

/// Commits `ops` in one transaction; each op receives its own result, or the group's error if the
/// transaction did not commit (nothing of it is stored then). Returns whether a message was stored.
pub(super) async fn commit_group(pool: &Pool, ops: Vec<WriteOp>) -> bool {
    let mut posts = Vec::new();
    let mut acks = Vec::new();
    for op in ops {
        match op {
            WriteOp::Post(m, k, tx) => match validate(&m).and_then(|_| check_key(k.as_deref())) {
                Ok(()) => posts.push((m, k, tx)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            },
            WriteOp::Ack(id, reader, tx) => match check_name("reader", &reader) {
                Ok(()) => acks.push((id, reader, tx)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            },
        }
    }
    if posts.is_empty() && acks.is_empty() {
        return false;
    }
    let items: Vec<(&NewMessage, Option<&str>)> = posts.iter().map(|(m, k, _)| (m, k.as_deref())).collect();
    let ack_items: Vec<(&str, &str)> = acks.iter().map(|(i, r, _)| (i.as_str(), r.as_str())).collect();
    match run(pool, &items, &ack_items).await {
        Ok((post_results, ack_results)) => {
            let stored = post_results.iter().any(|r| r.is_ok());
            for ((_, _, tx), r) in posts.into_iter().zip(post_results) {
                let _ = tx.send(r);
            }
            for ((_, _, tx), r) in acks.into_iter().zip(ack_results) {
                let _ = tx.send(r);
            }
            stored
        }
        Err(e) => {
            let msg = match e {
                StoreError::Unavailable(m) => m,
                e => e.to_string(),
            };
            tracing::warn!(error = %msg, "bus write group failed; nothing of it was stored");
            for (_, _, tx) in posts {
                let _ = tx.send(Err(StoreError::Unavailable(msg.clone())));
            }
            for (_, _, tx) in acks {
                let _ = tx.send(Err(StoreError::Unavailable(msg.clone())));
            }
            false
        }
    }
}

fn check_key(k: Option<&str>) -> Result<(), StoreError> {
    match k {
        Some(k) if k.len() > 200 => Err(StoreError::BadRequest("idempotency key longer than 200 bytes".into())),
        _ => Ok(()),
    }
}

type GroupResult = (Vec<Result<Message, StoreError>>, Vec<Result<(), StoreError>>);

async fn run(
    pool: &Pool,
    posts: &[(&NewMessage, Option<&str>)],
    acks: &[(&str, &str)],
) -> Result<GroupResult, StoreError> {
    let mut client = pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).await.map_err(pg_err)?;
    let post_results = insert_posts(&tx, posts).await?;
    let ack_results = insert_acks(&tx, acks).await?;
    if post_results.iter().any(|r| r.is_ok()) {
        // delivered to every LISTENing replica when (and only if) this transaction commits
        tx.batch_execute("NOTIFY bus_messages").await.map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok((post_results, ack_results))
}

async fn insert_posts(
    tx: &Transaction<'_>,
    posts: &[(&NewMessage, Option<&str>)],
) -> Result<Vec<Result<Message, StoreError>>, StoreError> {
    let mut out: Vec<Option<Result<Message, StoreError>>> = (0..posts.len()).map(|_| None).collect();
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    // idempotency keys already stored (by any replica, any time)
    let keys: Vec<&str> = posts.iter().filter_map(|p| p.1).collect();
    let mut by_key: HashMap<String, Message> = HashMap::new();
    if !keys.is_empty() {
        let stmt = tx
            .prepare_cached("SELECT seq, id, ts, sender, recipient, body, tags, extra, idem_key FROM bus_messages WHERE idem_key = ANY($1)")
            .await
            .map_err(pg_err)?;
        for row in tx.query(&stmt, &[&keys]).await.map_err(pg_err)? {
            by_key.insert(row.get::<_, String>(8), row_to_message(&row));
        }
    }
    // the rest get fresh sequence numbers; a key repeated inside this group is stored once
    let mut fresh = Vec::new();
    let mut first_with_key: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, (_, key)) in posts.iter().enumerate() {
        if let Some(k) = key {
            if let Some(m) = by_key.get(*k) {
                out[i] = Some(Ok(m.clone()));
                continue;
            }
            if let Some(&j) = first_with_key.get(k) {
                repeats.push((i, j));
                continue;
            }
            first_with_key.insert(k, i);
        }
        fresh.push(i);
    }
    if !fresh.is_empty() {
        let n = fresh.len() as i64;
        let seqs: Vec<i64> = tx
            .query("SELECT nextval('bus_messages_seq') FROM generate_series(1, $1::int8)", &[&n])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let ts = now_ts();
        let ids: Vec<String> = seqs.iter().map(|s| s.to_string()).collect();
        let tss: Vec<&str> = fresh.iter().map(|_| ts.as_str()).collect();
        let senders: Vec<&str> = fresh.iter().map(|&i| posts[i].0.from.as_str()).collect();
        let recipients: Vec<&str> = fresh.iter().map(|&i| posts[i].0.to.as_str()).collect();
        let bodies: Vec<&str> = fresh.iter().map(|&i| posts[i].0.body.as_str()).collect();
        let tags: Vec<String> = fresh.iter().map(|&i| serde_json::to_string(&posts[i].0.tags).expect("json")).collect();
        let keys: Vec<Option<&str>> = fresh.iter().map(|&i| posts[i].1).collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO bus_messages(seq, id, ts, sender, recipient, body, tags, idem_key) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
                 ON CONFLICT DO NOTHING RETURNING seq",
            )
            .await
            .map_err(pg_err)?;
        let inserted: std::collections::HashSet<i64> = tx
            .query(&stmt, &[&seqs, &ids, &tss, &senders, &recipients, &bodies, &tags, &keys])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (k, &i) in fresh.iter().enumerate() {
            let msg = posts[i].0;
            out[i] = Some(if inserted.contains(&seqs[k]) {
                Ok(Message {
                    id: MessageId(ids[k].clone()),
                    ts: ts.clone(),
                    from: msg.from.clone(),
                    to: msg.to.clone(),
                    body: msg.body.clone(),
                    tags: msg.tags.clone(),
                    extra: Default::default(),
                })
            } else {
                // an imported message already holds this number as its id: take the next number
                insert_one(tx, msg, posts[i].1, &ts).await
            });
        }
    }
    for (i, j) in repeats {
        out[i] = Some(match &out[j] {
            Some(Ok(m)) => Ok(m.clone()),
            _ => Err(StoreError::Unavailable("the first post with this idempotency key failed; retry".into())),
        });
    }
    Ok(out.into_iter().map(|r| r.expect("every post has a result")).collect())
}

/// The slow path for one post whose number collided with an imported id.
async fn insert_one(
    tx: &Transaction<'_>,
    msg: &NewMessage,
    key: Option<&str>,
    ts: &str,
) -> Result<Message, StoreError> {
    let tags = serde_json::to_string(&msg.tags).expect("json");
    for _ in 0..1000 {
        let seq: i64 = tx.query_one("SELECT nextval('bus_messages_seq')", &[]).await.map_err(pg_err)?.get(0);
        let id = seq.to_string();
        let rows = tx
            .query(
                "INSERT INTO bus_messages(seq, id, ts, sender, recipient, body, tags, idem_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) \
                 ON CONFLICT DO NOTHING RETURNING seq",
                &[&seq, &id, &ts, &msg.from, &msg.to, &msg.body, &tags, &key],
            )
            .await
            .map_err(pg_err)?;
        if !rows.is_empty() {
            return Ok(Message {
                id: MessageId(id),
                ts: ts.to_string(),
                from: msg.from.clone(),
                to: msg.to.clone(),
                body: msg.body.clone(),
                tags: msg.tags.clone(),
                extra: Default::default(),
            });
        }
    }
    Err(StoreError::Unavailable("could not find a free message number".into()))
}

/// The sequence number of each of `ids` that exists.
pub(super) async fn seqs_by_id(tx: &Transaction<'_>, ids: &[&str]) -> Result<HashMap<String, i64>, StoreError> {
    Ok(tx
        .query("SELECT id, seq FROM bus_messages WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn insert_acks(tx: &Transaction<'_>, acks: &[(&str, &str)]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = acks.iter().map(|a| a.0).collect();
    let seq_of = seqs_by_id(tx, &ids).await?;
    let ts = now_ts();
    let mut readers = Vec::new();
    let mut seqs = Vec::new();
    let mut out = Vec::with_capacity(acks.len());
    for (id, reader) in acks {
        match seq_of.get(*id) {
            Some(&s) => {
                readers.push(*reader);
                seqs.push(s);
                out.push(Ok(()));
            }
            None => out.push(Err(StoreError::NotFound(id.to_string()))),
        }
    }
    if readers.is_empty() {
        return Ok(out);
    }
    let tss: Vec<&str> = readers.iter().map(|_| ts.as_str()).collect();
    let added = tx
        .query(
            "INSERT INTO bus_acks(reader, seq, ts) SELECT * FROM unnest($1::text[], $2::int8[], $3::text[]) \
             ON CONFLICT DO NOTHING RETURNING reader",
            &[&readers, &seqs, &tss],
        )
        .await
        .map_err(pg_err)?;
    let mut moved: Vec<String> = added.iter().map(|r| r.get(0)).collect();
    moved.sort();
    moved.dedup();
    for reader in moved {
        advance_floor(tx, &reader).await?;
    }
    Ok(out)
}

/// Moves `reader`'s floor up to just below its first unacked message (or its newest message, when all
/// are acked), so unread queries start there instead of scanning the reader's whole history.
pub(super) async fn advance_floor(tx: &Transaction<'_>, reader: &str) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "WITH f AS (SELECT COALESCE((SELECT floor FROM bus_reader_floor WHERE reader = $1), 0) AS floor),
             first_unread AS (
               SELECT MIN(s) AS s FROM (
                 (SELECT m.seq AS s FROM bus_messages m, f WHERE m.recipient = $1 AND m.seq > f.floor
                    AND NOT EXISTS (SELECT 1 FROM bus_acks a WHERE a.reader = $1 AND a.seq = m.seq) ORDER BY m.seq LIMIT 1)
                 UNION ALL
                 (SELECT m.seq FROM bus_messages m, f WHERE m.recipient = $2 AND m.seq > f.floor
                    AND NOT EXISTS (SELECT 1 FROM bus_acks a WHERE a.reader = $1 AND a.seq = m.seq) ORDER BY m.seq LIMIT 1)
               ) u),
             newest AS (SELECT GREATEST((SELECT MAX(seq) FROM bus_messages WHERE recipient = $1),
                                        (SELECT MAX(seq) FROM bus_messages WHERE recipient = $2)) AS s)
             INSERT INTO bus_reader_floor(reader, floor)
             SELECT $1, COALESCE((SELECT s FROM first_unread) - 1, (SELECT s FROM newest), 0)
             ON CONFLICT (reader) DO UPDATE SET floor = GREATEST(bus_reader_floor.floor, excluded.floor)",
        )
        .await
        .map_err(pg_err)?;
    tx.execute(&stmt, &[&reader, &BROADCAST]).await.map_err(pg_err)?;
    Ok(())
}
