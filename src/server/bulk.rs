//! Moving whole buses between stores: `handoff bus migrate --from <store> --to <store>` and the write
//! side of `handoff bus import`. Both stores speak [`BulkStore`]: export in sequence order, import
//! preserving ids, sequence numbers (hence order), timestamps, idempotency keys and read state.

use super::bulk_sqlite::SqliteBulk;
use super::postgres::{PgBusStore, connect};
use async_trait::async_trait;
use handoff_channels::bus::Message;
use std::path::{Path, PathBuf};

/// One stored message with what is needed to recreate it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRow {
    /// Its sequence number in the source (None: let the target number it, as `bus import` does:
    /// a decimal id above every stored number keeps its value, anything else is appended).
    pub seq: Option<i64>,
    /// The message, with its id, timestamp and unknown fields.
    pub msg: Message,
    /// The idempotency key it was posted with, if any.
    pub idem_key: Option<String>,
}

/// One read mark: `reader` has acked message `id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BulkAck {
    /// The message's id (ids, unlike sequence numbers, are the same in every store).
    pub id: String,
    /// Who read it.
    pub reader: String,
    /// When it was acked (None: now).
    pub ts: Option<String>,
}

/// Bulk export/import, implemented by the SQLite and the PostgreSQL store.
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// `sqlite:/path/bus.sqlite` or `postgres://user@host:port/db`.
    fn describe(&self) -> String;
    /// Up to `limit` messages with a sequence number above `after`, in order (seq always set).
    async fn export_messages(&self, after: i64, limit: usize) -> anyhow::Result<Vec<BulkRow>>;
    /// Up to `limit` read marks after `(seq, reader)`, ordered by message then reader; with the seq.
    async fn export_acks(&self, after: (i64, String), limit: usize) -> anyhow::Result<Vec<(i64, BulkAck)>>;
    /// Inserts rows whose id is not stored yet, in one transaction; returns how many were added.
    async fn import_messages(&self, rows: Vec<BulkRow>) -> anyhow::Result<u64>;
    /// Records read marks for stored ids (unknown ids are skipped); returns how many ids were known.
    async fn import_acks(&self, acks: Vec<BulkAck>) -> anyhow::Result<u64>;
    /// `(messages, read marks)` stored.
    async fn counts(&self) -> anyhow::Result<(u64, u64)>;
}

/// Where a bus lives, as given to `--store`, `--from` and `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded store in this data directory (`bus.sqlite` inside it).
    Sqlite(PathBuf),
    /// A PostgreSQL database (URL without password).
    Postgres(String),
}

impl StoreSpec {
    /// Parses `sqlite:DIR`, `sqlite:DIR/bus.sqlite`, a bare directory, or `postgres://USER@HOST:PORT/DB`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if connect::is_postgres_url(s) {
            return Ok(Self::Postgres(s.to_string()));
        }
        let path = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")).unwrap_or(s);
        if path.is_empty() || s.contains("://") && !s.starts_with("sqlite:") {
            anyhow::bail!(
                "unknown store {s:?}: write sqlite:DIR (the embedded store's data directory) or postgres://USER@HOST:PORT/DB"
            );
        }
        let p = Path::new(path);
        if p.file_name().is_some_and(|n| n == "bus.sqlite") {
            return Ok(Self::Sqlite(p.parent().unwrap_or(Path::new(".")).to_path_buf()));
        }
        if p.is_file() {
            anyhow::bail!(
                "{} is a file; give the embedded store's data directory (the one holding bus.sqlite)",
                p.display()
            );
        }
        Ok(Self::Sqlite(p.to_path_buf()))
    }
}

/// Opens `spec` for bulk work; `pg_password` is `PGPASSWORD` from the environment or the env file.
pub async fn open(spec: &StoreSpec, pg_password: Option<String>) -> anyhow::Result<Box<dyn BulkStore>> {
    Ok(match spec {
        StoreSpec::Sqlite(dir) => Box::new(SqliteBulk::open(&dir.join("bus.sqlite"))?),
        StoreSpec::Postgres(url) => Box::new(PgBusStore::open(connect::parse_url(url, pg_password)?).await?),
    })
}

/// What `bus migrate` did, and the check that both stores now agree.
#[derive(Debug, Default, serde::Serialize)]
pub struct MigrateReport {
    /// Source store.
    pub from: String,
    /// Target store.
    pub to: String,
    /// Messages copied.
    pub messages: u64,
    /// Messages the target already had (same id).
    pub skipped: u64,
    /// Read marks copied.
    pub acks: u64,
    /// `(messages, read marks)` in the source after the copy.
    pub source_counts: (u64, u64),
    /// `(messages, read marks)` in the target after the copy.
    pub target_counts: (u64, u64),
}

const PAGE: usize = 5_000;

/// Copies every message and read mark from `from` into `to`, page by page (memory stays flat), keeping
/// sequence numbers, ids, timestamps, unknown fields, idempotency keys and read marks. Re-runnable:
/// messages already in the target (by id) are skipped.
pub async fn migrate(from: &dyn BulkStore, to: &dyn BulkStore) -> anyhow::Result<MigrateReport> {
    let mut report = MigrateReport { from: from.describe(), to: to.describe(), ..Default::default() };
    let mut after = 0;
    loop {
        let page = from.export_messages(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq.expect("exports carry seq");
        let n = page.len() as u64;
        let added = to.import_messages(page).await?;
        report.messages += added;
        report.skipped += n - added;
    }
    let mut after = (0, String::new());
    loop {
        let page = from.export_acks(after.clone(), PAGE).await?;
        let Some((seq, last)) = page.last() else { break };
        after = (*seq, last.reader.clone());
        report.acks += to.import_acks(page.into_iter().map(|(_, a)| a).collect()).await?;
    }
    report.source_counts = from.counts().await?;
    report.target_counts = to.counts().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_to_a_data_dir_or_a_url() {
        assert_eq!(StoreSpec::parse("sqlite:/var/lib/bus").unwrap(), StoreSpec::Sqlite("/var/lib/bus".into()));
        assert_eq!(
            StoreSpec::parse("sqlite:/var/lib/bus/bus.sqlite").unwrap(),
            StoreSpec::Sqlite("/var/lib/bus".into())
        );
        assert_eq!(StoreSpec::parse("/srv/bus").unwrap(), StoreSpec::Sqlite("/srv/bus".into()));
        assert_eq!(
            StoreSpec::parse("postgresql://bus@db/bus").unwrap(),
            StoreSpec::Postgres("postgresql://bus@db/bus".into())
        );
        let e = StoreSpec::parse("mysql://bus@db/bus").unwrap_err().to_string();
        assert!(e.contains("sqlite:DIR") && e.contains("postgres://"), "{e}");
    }
}
