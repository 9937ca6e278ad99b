//! The bus server's storage, as a trait with the embedded SQLite implementation here. Posts and acks go
//! through one writer thread that commits them in groups (one fsync per group), so a 200 always means
//! "on disk" without paying one fsync per request.

use async_trait::async_trait;
use handoff_channels::bus::store::{SqliteStore, StoreError};
use handoff_channels::bus::{Message, MessageQuery, NewMessage};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};

/// What the bus server needs from its storage. Implementations must make a post durable before
/// returning it, make acks idempotent, and honour idempotency keys.
#[async_trait]
pub trait BusStore: Send + Sync {
    /// Stores a message (or returns the one stored earlier under the same idempotency key).
    async fn post(&self, msg: NewMessage, key: Option<String>) -> Result<Message, StoreError>;
    /// Lists messages, oldest first.
    async fn messages(&self, q: MessageQuery) -> Result<Vec<Message>, StoreError>;
    /// Marks a message read by a reader.
    async fn ack(&self, id: String, reader: String) -> Result<(), StoreError>;
    /// Marks many messages read by a reader (the batch ack): the acks are queued together, so the
    /// group-committing writer of either store commits them in one transaction. One result per id.
    async fn ack_many(&self, ids: Vec<String>, reader: String) -> Vec<Result<(), StoreError>> {
        futures::future::join_all(ids.into_iter().map(|id| self.ack(id, reader.clone()))).await
    }
    /// This store's instance id: made once when the store is created, so a wiped or replaced store has
    /// another one (clients notice a reset by it; `/health` reports it).
    fn instance(&self) -> String;
    /// Number of stored messages.
    async fn count(&self) -> Result<u64, StoreError>;
    /// A short description for `/health` and logs (`sqlite:/path`).
    fn describe(&self) -> String;
    /// Notified whenever a new message is stored (for long-polling readers).
    fn new_messages(&self) -> Arc<Notify>;
    /// The queries of the web inbox and the Twilio webhook (search, threads, page records).
    fn inbox(&self) -> &dyn crate::server::inbox::InboxStore;
}

enum WriteOp {
    Post(NewMessage, Option<String>, oneshot::Sender<Result<Message, StoreError>>),
    Ack(String, String, oneshot::Sender<Result<(), StoreError>>),
}

/// The embedded store: SQLite in WAL mode, one group-committing writer thread, a pool of readers.
pub struct SqliteBusStore {
    path: PathBuf,
    instance: String,
    writer: std::sync::mpsc::Sender<WriteOp>,
    readers: Arc<Mutex<Vec<SqliteStore>>>,
    notify: Arc<Notify>,
}

/// Most operations committed in one transaction.
const MAX_GROUP: usize = 512;

impl SqliteBusStore {
    /// Opens the store at `data_dir/bus.sqlite` and starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("bus.sqlite");
        let mut writer_store = SqliteStore::open(&path)?;
        super::inbox::sqlite::ensure_search_index(writer_store.connection())?;
        let instance = instance_of(&path)?;
        let (tx, rx) = std::sync::mpsc::channel::<WriteOp>();
        let notify = Arc::new(Notify::new());
        let n2 = notify.clone();
        std::thread::Builder::new()
            .name("bus-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut ops = vec![first];
                    while ops.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    commit_group(&mut writer_store, ops);
                    n2.notify_waiters();
                }
            })
            .map_err(|e| StoreError::BadRequest(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { path, instance, writer: tx, readers: Arc::new(Mutex::new(Vec::new())), notify })
    }

    /// Runs `f` on a pooled reader connection, off the async runtime.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => SqliteStore::open(&path)?,
            };
            let r = f(&conn);
            readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            r
        })
        .await
        .map_err(|e| StoreError::BadRequest(format!("reader task failed: {e}")))?
    }
}

/// The instance id kept inside the store file (made on first open), so deleting the store makes a new one.
fn instance_of(path: &Path) -> Result<String, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS bus_instance (id TEXT NOT NULL)")?;
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    conn.execute("INSERT INTO bus_instance(id) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM bus_instance)", [&fresh])?;
    Ok(conn.query_row("SELECT id FROM bus_instance LIMIT 1", [], |r| r.get(0))?)
}

/// Applies a group of writes in one transaction; each op gets its own result. If the commit itself
/// fails, every op in the group gets the error (nothing was acknowledged as stored).
fn commit_group(store: &mut SqliteStore, ops: Vec<WriteOp>) {
    let mut posts = Vec::new();
    let mut post_tx = Vec::new();
    let mut acks = Vec::new();
    let mut ack_tx = Vec::new();
    for op in ops {
        match op {
            WriteOp::Post(m, k, tx) => {
                posts.push((m, k));
                post_tx.push(tx);
            }
            WriteOp::Ack(id, r, tx) => {
                acks.push((id, r));
                ack_tx.push(tx);
            }
        }
    }
    if !posts.is_empty() {
        match store.post_batch(&posts) {
            Ok(results) => results.into_iter().zip(post_tx).for_each(|(r, tx)| {
                let _ = tx.send(r);
            }),
            Err(e) => {
                let msg = e.to_string();
                post_tx.into_iter().for_each(|tx| {
                    let _ = tx.send(Err(StoreError::Unavailable(msg.clone())));
                })
            }
        }
    }
    if !acks.is_empty() {
        match store.ack_batch(&acks) {
            Ok(results) => results.into_iter().zip(ack_tx).for_each(|(r, tx)| {
                let _ = tx.send(r);
            }),
            Err(e) => {
                let msg = e.to_string();
                ack_tx.into_iter().for_each(|tx| {
                    let _ = tx.send(Err(StoreError::Unavailable(msg.clone())));
                })
            }
        }
    }
}

#[async_trait]
impl BusStore for SqliteBusStore {
    async fn post(&self, msg: NewMessage, key: Option<String>) -> Result<Message, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(WriteOp::Post(msg, key, tx))
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?
    }
    async fn messages(&self, q: MessageQuery) -> Result<Vec<Message>, StoreError> {
        self.read(move |s| s.messages(&q)).await
    }
    async fn ack(&self, id: String, reader: String) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(WriteOp::Ack(id, reader, tx))
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.read(|s| s.count()).await
    }
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
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
