//! Local state: bus messages received by this machine (stored before they are acked, shown once) and the
//! sync cursors of channels read at session start.

mod migrate;

use handoff_channels::bus::Message;
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
    /// Its row: what "shown" is recorded on (ids alone are not unique across bus resets).
    pub row: i64,
    /// The message as the bus gave it.
    pub message: Message,
    /// When this machine stored it.
    pub received_at: String,
}

impl State {
    /// Opens (creating) the state database, readable by this user only (0600: it holds messages).
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        crate::config::private_dir(data_dir)?;
        let path = data_dir.join("state.sqlite");
        let conn = Connection::open(&path)?;
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
        migrate::run(&conn)?;
        #[cfg(unix)]
        for suffix in ["", "-wal", "-shm"] {
            use std::os::unix::fs::PermissionsExt;
            let p = data_dir.join(format!("state.sqlite{suffix}"));
            if let Ok(m) = std::fs::metadata(&p)
                && m.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(Self { conn })
    }

    /// The connection, for tables kept by other modules (the key store).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Stores a message durably (a second store of the same message is a no-op). Returns true if new.
    /// `bus` names the bus *instance* (location and identity), so a reset bus's reused ids are new.
    pub fn store(&self, machine: &str, bus: &str, m: &Message) -> anyhow::Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO received(machine, bus, id, message, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![machine, bus, m.id.as_str(), serde_json::to_string(m)?, handoff_channels::bus::store::now_ts()],
        )?;
        Ok(n > 0)
    }

    /// Stores a page of messages in one transaction (one fsync, not one per message), skipping those
    /// `skip` says not to keep; returns how many were new.
    pub fn store_page(
        &self,
        machine: &str,
        bus: &str,
        page: &[Message],
        skip: impl Fn(&Message) -> bool,
    ) -> anyhow::Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let mut new = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO received(machine, bus, id, message, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let now = handoff_channels::bus::store::now_ts();
            for m in page.iter().filter(|m| !skip(m)) {
                new += st.execute(params![machine, bus, m.id.as_str(), serde_json::to_string(m)?, now])?;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    /// Messages stored but not yet shown (from any bus this machine read), oldest first.
    pub fn unshown(&self, machine: &str) -> anyhow::Result<Vec<Received>> {
        let mut st = self
            .conn
            .prepare("SELECT n, message, received_at FROM received WHERE machine = ?1 AND shown = 0 ORDER BY n")?;
        let rows = st.query_map(params![machine], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (n, m, at) = row?;
            out.push(Received { row: n, message: serde_json::from_str(&m)?, received_at: at });
        }
        Ok(out)
    }

    /// Marks messages (by [`Received::row`]) as shown.
    pub fn mark_shown(&self, rows: &[i64]) -> anyhow::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for n in rows {
            tx.execute("UPDATE received SET shown = 1 WHERE n = ?1", params![n])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks messages (by [`Received::row`]) shown and returns the rows this call marked (those not shown
    /// before): when several readers take new messages at once (`sync`, the MCP `inbox` tool, the live
    /// channel push, `watch`), each message goes to exactly one of them.
    pub fn claim(&self, rows: &[i64]) -> anyhow::Result<Vec<i64>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut claimed = Vec::new();
        for n in rows {
            if tx.execute("UPDATE received SET shown = 1 WHERE n = ?1 AND shown = 0", params![n])? == 1 {
                claimed.push(*n);
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Undoes a [`claim`](Self::claim) for messages that could not be shown after all (the reader went
    /// away, or they did not fit the hook's context): the next reader gets them.
    pub fn release(&self, rows: &[i64]) -> anyhow::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for n in rows {
            tx.execute("UPDATE received SET shown = 0 WHERE n = ?1", params![n])?;
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
        let mut st = self.conn.prepare("SELECT n, message, received_at FROM received WHERE machine = ?1 ORDER BY n")?;
        let rows = st.query_map(params![machine], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (n, m, at) = row?;
            out.push(Received { row: n, message: serde_json::from_str(&m)?, received_at: at });
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
        let rows: Vec<i64> = a.unshown("linux").unwrap().iter().map(|r| r.row).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(a.claim(&rows).unwrap(), rows);
        assert!(b.claim(&rows).unwrap().is_empty(), "a second reader gets nothing");
        assert!(b.unshown("linux").unwrap().is_empty());
        a.release(&rows).unwrap();
        assert_eq!(b.claim(&rows).unwrap(), rows);
    }
}
