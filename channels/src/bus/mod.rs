//! The bus: the original HTTP message bus API (SPEC §5), as a client ([`http::HttpBus`]), as the SQLite
//! store shared by `handoff bus serve` and the embedded default ([`store::SqliteStore`]), and as a
//! [`Channel`](crate::Channel) ([`BusChannel`]).

pub mod http;
pub mod local;
pub mod store;
pub mod tags;

use crate::{Capability, Channel, ChannelError, Health, LatencyClass, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;
use std::time::Duration;

/// Largest `body` the original bus accepts, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// The bus channel's name (in the registry, receipts and `--via`); the bus is always there.
pub const NAME: &str = "bus";
/// The recipient that means "every machine".
pub const BROADCAST: &str = "any";
/// Header carrying the client-generated idempotency key (ignored by the original, honoured by ours).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The `/health` field naming the bus instance (a fresh store gets a fresh id; the original has none).
pub const INSTANCE_FIELD: &str = "instance";
/// The `/health` field listing the extensions a bus offers beyond the original API.
pub const FEATURES_FIELD: &str = "features";
/// The extension `POST /ack` with `{"reader", "ids": [...]}`: many acks in one round trip.
pub const BATCH_ACK_FEATURE: &str = "batch_ack";
/// Most ids one batch ack carries.
pub const MAX_BATCH_ACK: usize = 500;
/// Most per-id acks in flight at once when the bus has no batch ack (the original).
pub const ACK_CONCURRENCY: usize = 32;

/// A message id: an opaque string. Decimal ids are written as JSON numbers (as the original's are), any
/// other id as a JSON string; both forms are read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub String);

impl MessageId {
    /// The id as text, for URLs and display.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The id as a number, when it is a canonical decimal (no sign, no leading zero).
    pub fn as_number(&self) -> Option<i64> {
        let s = &self.0;
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_number() {
            Some(n) => s.serialize_i64(n),
            None => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(MessageId(s)),
            serde_json::Value::Number(n) => Ok(MessageId(n.to_string())),
            other => Err(serde::de::Error::custom(format!("message id must be a string or number, got {other}"))),
        }
    }
}

/// A stored bus message as the API returns it. Unknown fields are tolerated (and kept in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Opaque id assigned by the bus.
    pub id: MessageId,
    /// ISO-8601 timestamp assigned by the bus.
    #[serde(default)]
    pub ts: String,
    /// Sender machine.
    pub from: String,
    /// Recipient machine or `any`.
    #[serde(default = "broadcast")]
    pub to: String,
    /// Text body.
    pub body: String,
    /// Short tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Fields this version does not know about.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn broadcast() -> String {
    BROADCAST.to_string()
}

/// A message to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Sender machine.
    pub from: String,
    /// Recipient machine or `any`.
    pub to: String,
    /// Text body, at most [`MAX_BODY`] bytes.
    pub body: String,
    /// Short tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Filters of `GET /messages`, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageQuery {
    /// Only messages after this id.
    pub since: Option<String>,
    /// Only messages to this recipient, plus broadcasts.
    pub to: Option<String>,
    /// Only messages from this sender.
    pub from: Option<String>,
    /// Only messages this reader has not acked.
    pub unread_by: Option<String>,
    /// At most this many (default 50, max 500).
    pub limit: Option<u32>,
}

/// `GET /health` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// Always true when the bus answers.
    pub ok: bool,
    /// Number of stored messages.
    #[serde(default)]
    pub count: u64,
    /// Server time.
    #[serde(default)]
    pub now: String,
    /// Fields this version does not know about.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl HealthInfo {
    /// The bus instance id, when the bus reports one (`handoff bus serve` does; the original does not).
    pub fn instance(&self) -> Option<&str> {
        self.extra.get(INSTANCE_FIELD).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
    }
    /// True when the bus advertises the batch ack extension.
    pub fn batch_ack(&self) -> bool {
        self.extra
            .get(FEATURES_FIELD)
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.iter().any(|f| f.as_str() == Some(BATCH_ACK_FEATURE)))
    }
}

/// Acks that the bus refused for good (an unknown id, say): each id with its error. A transient failure
/// is returned as the `Err` of [`BusApi::ack_many`] instead, so the caller stops and retries later.
pub type AckRefusals = Vec<(MessageId, ChannelError)>;

/// Acks `ids` one request each, at most [`ACK_CONCURRENCY`] in flight: the original API's way.
pub async fn ack_concurrently<B: BusApi + ?Sized>(
    bus: &B,
    ids: &[MessageId],
    reader: &str,
) -> Result<AckRefusals, ChannelError> {
    use futures::StreamExt;
    let results: Vec<(MessageId, Result<(), ChannelError>)> = futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            let r = bus.ack(&id, reader).await;
            (id, r)
        })
        .buffer_unordered(ACK_CONCURRENCY)
        .collect()
        .await;
    let mut refused = Vec::new();
    for (id, r) in results {
        match r {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => refused.push((id, e)),
        }
    }
    Ok(refused)
}

/// The four operations of the bus API, implemented over HTTP and over the local store.
#[async_trait]
pub trait BusApi: Send + Sync {
    /// Where this bus is, for messages (`https://bus.example.com`, `local:/path/bus.sqlite`).
    fn location(&self) -> String;
    /// Posts a message; the same `idempotency_key` returns the same message without storing a second.
    async fn post(&self, msg: &NewMessage, idempotency_key: &str) -> Result<Message, ChannelError>;
    /// Lists messages, oldest first.
    async fn messages(&self, query: &MessageQuery) -> Result<Vec<Message>, ChannelError>;
    /// Lists messages like [`messages`](Self::messages), but when none is there yet waits up to `wait` for
    /// the first (a long-poll). This default asks once a second; the HTTP client uses the server's `wait=`.
    async fn wait_messages(&self, query: &MessageQuery, wait: Duration) -> Result<Vec<Message>, ChannelError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let page = self.messages(query).await?;
            let now = tokio::time::Instant::now();
            if !page.is_empty() || now >= deadline {
                return Ok(page);
            }
            tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
        }
    }
    /// Marks a message read by `reader`; idempotent.
    async fn ack(&self, id: &MessageId, reader: &str) -> Result<(), ChannelError>;
    /// Marks many messages read by `reader` in as few round trips as the bus allows (by default, per-id
    /// acks with a bounded number in flight). `Err` on a transient failure; refusals for good are returned.
    async fn ack_many(&self, ids: &[MessageId], reader: &str) -> Result<AckRefusals, ChannelError> {
        ack_concurrently(self, ids, reader).await
    }
    /// `GET /health`.
    async fn health(&self) -> Result<HealthInfo, ChannelError>;
}

/// The bus as a channel: carries short text and the pointers to everything else.
pub struct BusChannel {
    api: Arc<dyn BusApi>,
}

impl BusChannel {
    /// Wraps a bus client.
    pub fn new(api: Arc<dyn BusApi>) -> Self {
        Self { api }
    }
    /// The underlying client, for reading and acking.
    pub fn api(&self) -> &Arc<dyn BusApi> {
        &self.api
    }
}

#[async_trait]
impl Channel for BusChannel {
    fn name(&self) -> &'static str {
        NAME
    }
    fn capability(&self) -> Capability {
        Capability {
            max_size: Some(MAX_BODY as u64),
            latency: LatencyClass::Seconds,
            can_receive: true,
            text: true,
            documents: false,
            files: false,
            pages: false,
            lasting: true,
            routed_max: None,
            priority: 0,
            no_fallback: false,
        }
    }
    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let msg = NewMessage {
            from: parcel.from.clone(),
            to: parcel.to.clone(),
            body: parcel.body.clone(),
            tags: parcel.tags.clone(),
        };
        let saved = self.api.post(&msg, &parcel.key).await?;
        Ok(Receipt {
            channel: NAME.into(),
            uri: None,
            message_id: Some(saved.id.0),
            detail: Some(self.api.location()),
            sha256: None,
        })
    }
    async fn health(&self) -> Result<Health, ChannelError> {
        let h = self.api.health().await?;
        Ok(Health {
            check: format!("bus reachable at {}", self.api.location()),
            detail: Some(format!("{} messages", h.count)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_as_numbers_or_strings_and_write_back_the_same_way() {
        let m: Message =
            serde_json::from_str(r#"{"id":42,"ts":"t","from":"a","to":"b","body":"x","tags":[],"new":1}"#).unwrap();
        assert_eq!(m.id.as_str(), "42");
        assert_eq!(m.extra.get("new"), Some(&serde_json::json!(1)));
        let m2: Message = serde_json::from_str(r#"{"id":"a1b2c3","from":"a","body":"x"}"#).unwrap();
        assert_eq!(m2.id.as_str(), "a1b2c3");
        assert_eq!(m2.to, "any");
        assert_eq!(serde_json::to_value(&m.id).unwrap(), serde_json::json!(42));
        assert_eq!(serde_json::to_value(&m2.id).unwrap(), serde_json::json!("a1b2c3"));
        assert_eq!(serde_json::to_value(MessageId("007".into())).unwrap(), serde_json::json!("007"));
    }
}
