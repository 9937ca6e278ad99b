//! The bus store on PostgreSQL, for several stateless `handoff bus serve` replicas on one database.
//!
//! Same API and semantics as the embedded SQLite store: ids are decimal sequence numbers (a database
//! sequence, so unique and ordered across replicas), `since=`, unread/ack per reader with per-reader
//! floors, idempotency keys unique in the database, a 200 only after COMMIT. Writes are group-committed
//! by one writer task per replica ([`write`]); long-pollers on every replica are woken through
//! LISTEN/NOTIFY ([`listen`]). When the database goes away, requests fail fast with 503 and the pool
//! reconnects by itself when it returns.

pub mod bulk;
pub mod connect;
mod listen;
mod read;
pub mod schema;
mod write;

use super::store::BusStore;
use async_trait::async_trait;
use connect::PgTarget;
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use handoff_channels::bus::store::StoreError;
use handoff_channels::bus::{Message, MessageId, MessageQuery, NewMessage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use write::WriteOp;

pub(crate) type Pool = deadpool_postgres::Pool;

/// The PostgreSQL bus store of one replica.
pub struct PgBusStore {
    pool: Pool,
    writer: mpsc::UnboundedSender<WriteOp>,
    notify: Arc<Notify>,
    target: PgTarget,
    instance: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PgBusStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connections per replica (readers; the writer task uses one at a time).
const POOL_SIZE: usize = 16;

/// A PostgreSQL error as text a person can act on (tokio-postgres prints only "db error" for errors the
/// server reported).
pub(crate) fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(pg_text(&e))
}

impl PgBusStore {
    /// Connects to `target`, applies any missing schema migration, and starts the writer and LISTEN
    /// tasks. Fails (with a clear message) when the database cannot be reached at start.
    pub async fn open(target: PgTarget) -> anyhow::Result<Self> {
        let tls = connect::tls()?;
        let (mut client, conn) = target.config.connect(tls.clone()).await.map_err(|e| {
            let text = pg_text(&e);
            anyhow::anyhow!(
                "cannot connect to the bus database {}: {text}{}",
                target.display,
                if text.contains("password") {
                    " (the password comes from PGPASSWORD, in the environment or the env file)"
                } else {
                    ""
                }
            )
        })?;
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let applied = schema::migrate(&mut client)
            .await
            .map_err(|e| anyhow::anyhow!("bus database {}: {e:#}", target.display))?;
        if applied > 0 {
            tracing::info!(applied, store = %target.display, "bus schema migrated");
        }
        let instance: String = client
            .query_one("SELECT id FROM bus_instance LIMIT 1", &[])
            .await
            .map_err(|e| anyhow::anyhow!("bus database {}: reading the instance id: {}", target.display, pg_text(&e)))?
            .get(0);
        drop(client);
        conn_task.abort();
        let manager = Manager::from_config(
            target.config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the connection pool: {e}"))?;
        let notify = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(writer_loop(pool.clone(), rx, notify.clone()));
        let listener = tokio::spawn(listen::listen_loop(target.config.clone(), tls, notify.clone()));
        Ok(Self { pool, writer: tx, notify, target, instance, tasks: vec![writer, listener] })
    }

    /// A pooled connection (503 when none can be had).
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

async fn writer_loop(pool: Pool, mut rx: mpsc::UnboundedReceiver<WriteOp>, notify: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        let mut ops = vec![first];
        while ops.len() < write::MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        if write::commit_group(&pool, ops).await {
            // local waiters at once; other replicas through NOTIFY
            notify.notify_waiters();
        }
    }
}

pub(crate) fn row_to_message(r: &tokio_postgres::Row) -> Message {
    let tags: String = r.get(6);
    let extra: Option<String> = r.get(7);
    Message {
        id: MessageId(r.get(1)),
        ts: r.get(2),
        from: r.get(3),
        to: r.get(4),
        body: r.get(5),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        extra: extra.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default(),
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the writer task stopped".into())
}

#[async_trait]
impl BusStore for PgBusStore {
    async fn post(&self, msg: NewMessage, key: Option<String>) -> Result<Message, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(WriteOp::Post(msg, key, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
    async fn messages(&self, q: MessageQuery) -> Result<Vec<Message>, StoreError> {
        let client = self.client().await?;
        read::query(&client, &q).await
    }
    async fn ack(&self, id: String, reader: String) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(WriteOp::Ack(id, reader, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
    async fn count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client.query_one("SELECT COUNT(*) FROM bus_messages", &[]).await.map_err(pg_err)?.get(0);
        Ok(n as u64)
    }
    fn describe(&self) -> String {
        self.target.display.clone()
    }
    fn instance(&self) -> String {
        self.instance.clone()
    }
    fn new_messages(&self) -> Arc<Notify> {
        self.notify.clone()
    }
    fn inbox(&self) -> &dyn crate::server::inbox::InboxStore {
        self
    }
}
