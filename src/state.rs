//! Local state: bus messages received by this machine (stored before they are acked, shown once) and the
//! sync cursors of channels read at session start.

use handoff_channels::bus::{Message, MessageId};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

/// The local state database (`state.sqlite` in the data directory).
pub struct State {
    conn: Connection,
}

/// A received message and whether it was shown already.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message as the bus gave it.
    pub message: Message,
    /// When this machine stored it.
    pub received_at: String,
}

impl State {
    /// Opens (creating) the state database.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        crate::config::private_dir(data_dir)?;
        let conn = Connection::open(data_dir.join("state.sqlite"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS received (
                n INTEGER PRIMARY KEY,
                machine TEXT NOT NULL,
                bus TEXT NOT NULL,
                id TEXT NOT NULL,
                message TEXT NOT NULL,
                received_at TEXT NOT NULL,
                shown INTEGER NOT NULL DEFAULT 0,
                UNIQUE (machine, bus, id)
             );
             CREATE TABLE IF NOT EXISTS cursors (
                machine TEXT NOT NULL,
                channel TEXT NOT NULL,
                cursor TEXT NOT NULL,
                PRIMARY KEY (machine, channel)
             );",
        )?;
        Ok(Self { conn })
    }

    /// The connection, for tables kept by other modules (the key store).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Stores a message durably (a second store of the same message is a no-op). Returns true if new.
    pub fn store(&self, machine: &str, bus: &str, m: &Message) -> anyhow::Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO received(machine, bus, id, message, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![machine, bus, m.id.as_str(), serde_json::to_string(m)?, handoff_channels::bus::store::now_ts()],
        )?;
        Ok(n > 0)
    }

    /// Messages stored but not yet shown, oldest first.
    pub fn unshown(&self, machine: &str, bus: &str) -> anyhow::Result<Vec<Received>> {
        let mut st = self.conn.prepare(
            "SELECT message, received_at FROM received WHERE machine = ?1 AND bus = ?2 AND shown = 0 ORDER BY n",
        )?;
        let rows = st.query_map(params![machine, bus], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (m, at) = row?;
            out.push(Received { message: serde_json::from_str(&m)?, received_at: at });
        }
        Ok(out)
    }

    /// Marks messages as shown.
    pub fn mark_shown(&self, machine: &str, bus: &str, ids: &[MessageId]) -> anyhow::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE received SET shown = 1 WHERE machine = ?1 AND bus = ?2 AND id = ?3",
                params![machine, bus, id.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks messages shown and returns the ones this call marked (those not shown before): when several
    /// readers take new messages at once (`sync`, the MCP `inbox` tool, the live channel push, `watch`),
    /// each message goes to exactly one of them.
    pub fn claim(&self, machine: &str, bus: &str, ids: &[MessageId]) -> anyhow::Result<Vec<MessageId>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut claimed = Vec::new();
        for id in ids {
            let n = tx.execute(
                "UPDATE received SET shown = 1 WHERE machine = ?1 AND bus = ?2 AND id = ?3 AND shown = 0",
                params![machine, bus, id.as_str()],
            )?;
            if n == 1 {
                claimed.push(id.clone());
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Undoes a [`claim`](Self::claim) for messages that could not be shown after all (the reader went
    /// away): the next reader gets them.
    pub fn release(&self, machine: &str, bus: &str, ids: &[MessageId]) -> anyhow::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE received SET shown = 0 WHERE machine = ?1 AND bus = ?2 AND id = ?3",
                params![machine, bus, id.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A message this machine received, by id.
    pub fn find(&self, machine: &str, id: &str) -> anyhow::Result<Option<Message>> {
        let m: Option<String> = self
            .conn
            .query_row(
                "SELECT message FROM received WHERE machine = ?1 AND id = ?2 ORDER BY n DESC LIMIT 1",
                params![machine, id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(m.map(|m| serde_json::from_str(&m)).transpose()?)
    }

    /// Every message this machine received, oldest first (for `handoff log`).
    pub fn all_received(&self, machine: &str) -> anyhow::Result<Vec<Received>> {
        let mut st = self.conn.prepare("SELECT message, received_at FROM received WHERE machine = ?1 ORDER BY n")?;
        let rows = st.query_map(params![machine], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (m, at) = row?;
            out.push(Received { message: serde_json::from_str(&m)?, received_at: at });
        }
        Ok(out)
    }

    /// The stored cursor of a channel for this machine.
    pub fn cursor(&self, machine: &str, channel: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM cursors WHERE machine = ?1 AND channel = ?2",
                params![machine, channel],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores a channel's cursor.
    pub fn set_cursor(&self, machine: &str, channel: &str, cursor: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO cursors(machine, channel, cursor) VALUES (?1, ?2, ?3) ON CONFLICT(machine, channel) DO UPDATE SET cursor = excluded.cursor",
            params![machine, channel, cursor],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_claimed_once_and_released_for_the_next_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (State::open(dir.path()).unwrap(), State::open(dir.path()).unwrap());
        let m: Message = serde_json::from_str(r#"{"id":"7","from":"mac","to":"linux","body":"x"}"#).unwrap();
        assert!(a.store("linux", "bus", &m).unwrap());
        let ids = vec![m.id.clone()];
        assert_eq!(a.claim("linux", "bus", &ids).unwrap(), ids);
        assert!(b.claim("linux", "bus", &ids).unwrap().is_empty(), "a second reader gets nothing");
        assert!(b.unshown("linux", "bus").unwrap().is_empty());
        a.release("linux", "bus", &ids).unwrap();
        assert_eq!(b.claim("linux", "bus", &ids).unwrap(), ids);
    }
}
