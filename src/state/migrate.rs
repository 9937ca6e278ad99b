//! One-time migrations of `state.sqlite`, run when it is opened.
//!
//! Version 1 removes credentials that earlier versions stored: the bus instance of each received message
//! and the `bus-identity:` cursor held the bus URL as configured, `user:password@` included, and a cursor or
//! a key's source could hold any URL (a webhook URL's path is its secret). Each such URL is rewritten the
//! way handoff shows URLs today (`untrusted::redact_url`, a webhook's path as `/<redacted>`), rows that then
//! duplicate a newer row are merged into it, and the file is vacuumed and its WAL truncated so the old
//! bytes do not linger in free pages.

use handoff_channels::untrusted::redact_url;
use rusqlite::{Connection, params};

/// The schema version this module brings a database to (`PRAGMA user_version`).
const VERSION: i64 = 1;

/// Brings the database to [`VERSION`]; a no-op once there.
pub(super) fn run(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    let mut changed = 0;
    // (table, column): every text handoff wrote itself (message bodies are other machines' text)
    for (table, column) in [
        ("received", "bus"),
        ("cursors", "channel"),
        ("cursors", "cursor"),
        ("peer_keys", "source"),
        ("peer_keys", "changed_source"),
    ] {
        let exists: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?;
        if !exists {
            continue;
        }
        let rows: Vec<(i64, String)> = tx
            .prepare(&format!("SELECT rowid, {column} FROM {table} WHERE {column} LIKE '%://%'"))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (rowid, text) in rows {
            let clean = scrub(&text);
            if clean == text {
                continue;
            }
            // a row that now duplicates one written later (under the redacted name) merges into it
            let n = tx.execute(
                &format!("UPDATE OR IGNORE {table} SET {column} = ?1 WHERE rowid = ?2"),
                params![clean, rowid],
            )?;
            if n == 0 {
                tx.execute(&format!("DELETE FROM {table} WHERE rowid = ?1"), params![rowid])?;
            }
            changed += 1;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    if changed > 0 {
        tracing::info!(changed, "state.sqlite: removed credentials earlier versions stored");
        // the old text must not survive in free pages or in the WAL
        conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(())
}

/// `text` with every URL in it shown as handoff shows URLs now: no `user:password@`, no webhook secret.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // the scheme: the letters (and + - .) right before "://"
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&without_webhook_secret(&redact_url(&rest[start..end])));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A webhook URL (Slack's `hooks.slack.com/services/…`, Discord's `/api/webhooks/…`, any URL whose host or
/// path says hook) as its scheme and host only, as the webhook channels show it; other URLs unchanged.
fn without_webhook_secret(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let after = &url[scheme_end + 3..];
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, path) = after.split_at(host_end);
    // keep what follows a `#` (handoff's own suffix, e.g. `#instance …`), never a query or a path
    let (path, tail) = match path.find('#') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    if host.to_ascii_lowercase().contains("hook") || path.to_ascii_lowercase().contains("hook") {
        format!("{}{host}/<redacted>{tail}", &url[..scheme_end + 3])
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_webhook_secrets_leave_every_url() {
        assert_eq!(scrub("http://claude:pw@127.0.0.1:7#instance 9"), "http://***@127.0.0.1:7#instance 9");
        assert_eq!(scrub("bus-identity:https://u:p@bus.example/x"), "bus-identity:https://***@bus.example/x");
        assert_eq!(
            scrub("sent to https://hooks.slack.com/services/T1/B2/sekrit and https://discord.com/api/webhooks/1/tok"),
            "sent to https://hooks.slack.com/<redacted> and https://discord.com/<redacted>"
        );
        assert_eq!(
            scrub("local:/home/u/.local/share/handoff/bus.sqlite#empty"),
            "local:/home/u/.local/share/handoff/bus.sqlite#empty"
        );
        assert_eq!(scrub("https://bus.example/#instance 1"), "https://bus.example/#instance 1");
        assert_eq!(scrub("ssh://git@host/x.git"), "ssh://git@host/x.git");
    }
}
