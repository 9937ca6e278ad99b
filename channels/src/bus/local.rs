//! The embedded default's bus: the server's SQLite store opened directly, no network.

use super::store::{SqliteStore, StoreError};
use super::{AckRefusals, BusApi, HealthInfo, Message, MessageId, MessageQuery, NewMessage};
use crate::ChannelError;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A bus kept in a local SQLite file; several processes may use the same file at once.
pub struct LocalBus {
    path: PathBuf,
    store: Arc<Mutex<SqliteStore>>,
}

impl LocalBus {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: PathBuf) -> Result<Self, ChannelError> {
        let store = SqliteStore::open(&path)
            .and_then(|s| s.keep_wal_between_processes().map(|()| s))
            .map_err(|e| store_error(e).context(format!("opening {}", path.display())))?;
        Ok(Self { path, store: Arc::new(Mutex::new(store)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ChannelError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ChannelError::permanent(format!("local bus task failed: {e}")))?
        .map_err(store_error)
    }
}

/// Maps a store error to a channel error: database trouble (locked, I/O) is transient.
pub fn store_error(e: StoreError) -> ChannelError {
    match e {
        StoreError::Db(_) | StoreError::Unavailable(_) => ChannelError::transient(e.to_string()),
        other => ChannelError::permanent(other.to_string()),
    }
}

#[async_trait]
impl BusApi for LocalBus {
    fn location(&self) -> String {
        format!("local:{}", self.path.display())
    }
    async fn post(&self, msg: &NewMessage, key: &str) -> Result<Message, ChannelError> {
        let (msg, key) = (msg.clone(), key.to_string());
        self.with(move |s| s.post(&msg, Some(&key))).await
    }
    async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>, ChannelError> {
        let q = q.clone();
        self.with(move |s| s.messages(&q)).await
    }
    async fn ack(&self, id: &MessageId, reader: &str) -> Result<(), ChannelError> {
        let (id, reader) = (id.0.clone(), reader.to_string());
        self.with(move |s| s.ack(&id, &reader)).await
    }
    async fn ack_many(&self, ids: &[MessageId], reader: &str) -> Result<AckRefusals, ChannelError> {
        let items: Vec<(String, String)> = ids.iter().map(|id| (id.0.clone(), reader.to_string())).collect();
        let results = self.with(move |s| s.ack_batch(&items)).await?;
        let mut refused = Vec::new();
        for (id, r) in ids.iter().zip(results) {
            if let Err(e) = r {
                let e = store_error(e);
                if e.is_transient() {
                    return Err(e);
                }
                refused.push((id.clone(), e));
            }
        }
        Ok(refused)
    }
    async fn health(&self) -> Result<HealthInfo, ChannelError> {
        let count = self.with(|s| s.count()).await?;
        Ok(HealthInfo { ok: true, count, now: super::store::now_ts(), extra: Default::default() })
    }
}
