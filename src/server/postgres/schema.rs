//! Versioned schema migrations for the PostgreSQL bus store, applied at start under an advisory lock
//! so replicas starting together do not race. Each migration runs in its own transaction; the applied
//! versions are recorded in `bus_schema_migrations`. Never edit a released migration: add the next one.

use tokio_postgres::Client;

/// Advisory-lock key held while migrating (any constant unique to this application).
const MIGRATION_LOCK: i64 = 0x68616e646f6666; // "handoff"

/// `(version, description, SQL)`, in order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "messages, acks, per-reader floors",
        r#"
CREATE TABLE bus_messages (
    seq       BIGINT PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    ts        TEXT NOT NULL,
    sender    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    body      TEXT NOT NULL,
    tags      TEXT NOT NULL DEFAULT '[]',
    extra     TEXT,
    idem_key  TEXT UNIQUE
);
CREATE SEQUENCE bus_messages_seq OWNED BY bus_messages.seq;
CREATE INDEX bus_messages_by_recipient ON bus_messages (recipient, seq);
CREATE INDEX bus_messages_by_sender ON bus_messages (sender, seq);
CREATE TABLE bus_acks (
    reader TEXT NOT NULL,
    seq    BIGINT NOT NULL REFERENCES bus_messages (seq) ON DELETE CASCADE,
    ts     TEXT NOT NULL,
    PRIMARY KEY (reader, seq)
);
-- every message to `reader` (or to any) with seq <= floor has been acked by `reader`
CREATE TABLE bus_reader_floor (
    reader TEXT PRIMARY KEY,
    floor  BIGINT NOT NULL
);
"#,
    ),
    (
        2,
        "full-text index of bodies (the web inbox's search)",
        "CREATE INDEX bus_messages_body_fts ON bus_messages USING gin (to_tsvector('simple', body));",
    ),
    (
        3,
        "the instance id /health reports (a fresh database has a fresh one)",
        r#"
CREATE TABLE bus_instance (id TEXT NOT NULL);
INSERT INTO bus_instance(id) VALUES (md5(random()::text || clock_timestamp()::text));
"#,
    ),
];

/// Applies every migration the database lacks. Refuses a database whose schema is newer than this
/// binary knows (an older replica must not write into a newer schema).
pub async fn migrate(client: &mut Client) -> anyhow::Result<u32> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| anyhow::anyhow!(super::pg_text(&e)))?;
    let r = apply(client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    r
}

async fn apply(client: &mut Client) -> anyhow::Result<u32> {
    apply_inner(client).await.map_err(|e| match e.downcast::<tokio_postgres::Error>() {
        Ok(pg) => anyhow::anyhow!("schema migration failed: {}", super::pg_text(&pg)),
        Err(e) => e,
    })
}

async fn apply_inner(client: &mut Client) -> anyhow::Result<u32> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bus_schema_migrations (
                 version     INTEGER PRIMARY KEY,
                 description TEXT NOT NULL,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let current: i32 =
        client.query_one("SELECT COALESCE(MAX(version), 0) FROM bus_schema_migrations", &[]).await?.get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > known {
        anyhow::bail!(
            "the database's bus schema is version {current} but this handoff knows versions up to {known}; upgrade handoff on this machine"
        );
    }
    let mut applied = 0;
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| anyhow::anyhow!("migration {version} ({description}) failed: {}", super::pg_text(&e)))?;
        tx.execute("INSERT INTO bus_schema_migrations(version, description) VALUES ($1, $2)", &[version, description])
            .await?;
        tx.commit().await?;
        tracing::info!(version, description, "applied bus schema migration");
        applied += 1;
    }
    Ok(applied)
}
