//! `handoff bus import`: loads the original bus's JSON-lines data file into either store (embedded or
//! PostgreSQL), preserving ids, timestamps and unknown fields. Re-running it skips messages already there.

use super::bulk::{BulkAck, BulkRow, BulkStore};
use handoff_channels::bus::{Message, NewMessage};
use std::io::BufRead;
use std::path::Path;

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Messages added.
    pub imported: u64,
    /// Messages already present (by id).
    pub skipped: u64,
    /// Read marks carried over (from `read_by`/`acked_by` lists, when the file has them).
    pub acks: u64,
    /// Lines that could not be read, with their line numbers and why.
    pub bad_lines: Vec<String>,
}

/// Messages per transaction.
const BATCH: usize = 10_000;

/// Imports `file` into `store`.
pub async fn import_jsonl(file: &Path, store: &dyn BulkStore) -> anyhow::Result<ImportReport> {
    let f = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let mut report = ImportReport::default();
    let mut batch: Vec<BulkRow> = Vec::new();
    let mut reads: Vec<BulkAck> = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                report.bad_lines.push(format!("line {}: {e}", n + 1));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut msg: Message = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                report.bad_lines.push(format!("line {}: {e}", n + 1));
                continue;
            }
        };
        if let Err(e) = handoff_channels::bus::store::validate(&NewMessage {
            from: msg.from.clone(),
            to: msg.to.clone(),
            body: String::new(),
            tags: msg.tags.clone(),
        }) {
            report.bad_lines.push(format!("line {}: {e}", n + 1));
            continue;
        }
        for key in ["read_by", "acked_by", "acks"] {
            if let Some(serde_json::Value::Array(a)) = msg.extra.remove(key) {
                reads.extend(a.into_iter().filter_map(|v| {
                    v.as_str().map(|r| BulkAck { id: msg.id.0.clone(), reader: r.to_string(), ts: None })
                }));
            }
        }
        batch.push(BulkRow { seq: None, msg, idem_key: None });
        if batch.len() >= BATCH {
            flush(store, &mut batch, &mut reads, &mut report).await?;
        }
    }
    flush(store, &mut batch, &mut reads, &mut report).await?;
    Ok(report)
}

async fn flush(
    store: &dyn BulkStore,
    batch: &mut Vec<BulkRow>,
    reads: &mut Vec<BulkAck>,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let n = batch.len() as u64;
    let added = store.import_messages(std::mem::take(batch)).await?;
    report.imported += added;
    report.skipped += n - added;
    report.acks += reads.len() as u64;
    store.import_acks(std::mem::take(reads)).await?;
    Ok(())
}
