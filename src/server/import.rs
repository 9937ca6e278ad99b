//! `handoff bus import`: loads the original bus's JSON-lines data file into the embedded store,
//! preserving ids, timestamps and unknown fields. Re-running it skips messages already there.

use handoff_channels::bus::{Message, NewMessage};
use handoff_channels::bus::store::SqliteStore;
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

/// Imports `file` into the store under `data_dir`.
pub fn import_jsonl(file: &Path, data_dir: &Path) -> anyhow::Result<ImportReport> {
    let f = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let mut store = SqliteStore::open(&data_dir.join("bus.sqlite"))?;
    let mut report = ImportReport::default();
    let mut batch: Vec<Message> = Vec::new();
    let mut reads: Vec<(String, String)> = Vec::new();
    let flush = |store: &mut SqliteStore, batch: &mut Vec<Message>, reads: &mut Vec<(String, String)>, report: &mut ImportReport| -> anyhow::Result<()> {
        let added = store.import(batch)?;
        report.imported += added;
        report.skipped += batch.len() as u64 - added;
        for (id, reader) in reads.drain(..) {
            store.import_ack(&id, &reader)?;
            report.acks += 1;
        }
        batch.clear();
        Ok(())
    };
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
        if let Err(e) = handoff_channels::bus::store::validate(&NewMessage { from: msg.from.clone(), to: msg.to.clone(), body: String::new(), tags: msg.tags.clone() }) {
            report.bad_lines.push(format!("line {}: {e}", n + 1));
            continue;
        }
        for key in ["read_by", "acked_by", "acks"] {
            if let Some(serde_json::Value::Array(a)) = msg.extra.remove(key) {
                reads.extend(a.into_iter().filter_map(|v| v.as_str().map(|r| (msg.id.0.clone(), r.to_string()))));
            }
        }
        batch.push(msg);
        if batch.len() >= 10_000 {
            flush(&mut store, &mut batch, &mut reads, &mut report)?;
        }
    }
    flush(&mut store, &mut batch, &mut reads, &mut report)?;
    Ok(report)
}
