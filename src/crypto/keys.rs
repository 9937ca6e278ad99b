//! Machine keys: this machine's age identity (a 0600 file in the data dir), the public keys of other
//! machines learnt from the bus (pinned on first use in `state.sqlite`), and the bus message that
//! publishes a key (`handoff-key/v1 {json}`, tag `handoff-key`, to `any`).

use age::x25519::{Identity, Recipient};
use anyhow::Context as _;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The tag of a key-publishing bus message.
pub const KEY_TAG: &str = "handoff-key";
/// The prefix of the machine line of a key message.
pub const KEY_PREFIX: &str = "handoff-key/v1 ";

/// Where this machine's identity lives under the data dir.
pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("identity.txt")
}

/// Loads this machine's identity; `None` when `handoff keys` was never run here.
pub fn load_identity(data_dir: &Path) -> anyhow::Result<Option<Identity>> {
    let path = identity_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read the identity {}: {e}", path.display())),
    };
    let access = handoff_channels::private_file::access(&path)?;
    if !access.private {
        anyhow::bail!(
            "{} is readable by others ({}); fix it with `{}`",
            path.display(),
            access.detail,
            handoff_channels::private_file::make_private_command(&path)
        );
    }
    let line = text.lines().map(str::trim).find(|l| l.starts_with("AGE-SECRET-KEY-")).ok_or_else(|| {
        anyhow::anyhow!("{} holds no AGE-SECRET-KEY line; move it away and run `handoff keys`", path.display())
    })?;
    let id = Identity::from_str(line).map_err(|e| {
        anyhow::anyhow!("{}: the secret key is invalid ({e}); restore it from a backup", path.display())
    })?;
    Ok(Some(id))
}

/// Loads the identity or says how to make one.
pub fn require_identity(data_dir: &Path) -> anyhow::Result<Identity> {
    load_identity(data_dir)?.ok_or_else(|| {
        crate::exit::with_code(
            crate::exit::CONFIG,
            anyhow::anyhow!(
                "this machine has no encryption key yet: run `handoff keys` (it creates and publishes one)"
            ),
        )
    })
}

/// Creates this machine's identity if missing (file 0600 in a 0700 dir). Returns it and whether it is new.
pub fn ensure_identity(data_dir: &Path) -> anyhow::Result<(Identity, bool)> {
    if let Some(id) = load_identity(data_dir)? {
        return Ok((id, false));
    }
    let path = identity_path(data_dir);
    crate::config::private_dir(path.parent().expect("has a parent"))?;
    let id = Identity::generate();
    use age::secrecy::ExposeSecret;
    let text = format!(
        "# handoff machine identity (age X25519), created {}\n# public key: {}\n{}\n",
        handoff_channels::bus::store::now_ts(),
        id.to_public(),
        id.to_string().expose_secret()
    );
    // write_atomic writes 0600; never replace an identity another process just made
    let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    handoff_channels::fsutil::write_atomic_private(&tmp, text.as_bytes())?;
    match std::fs::hard_link(&tmp, &path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            drop(id);
            // what is on disk is the identity from now on
            Ok((require_identity(data_dir)?, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            Ok((require_identity(data_dir)?, false))
        }
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

/// The machine line of a key message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAnnouncement {
    /// The machine the key belongs to.
    pub machine: String,
    /// Its age public key (`age1...`).
    pub recipient: String,
}

impl KeyAnnouncement {
    /// The bus body: a line for people, then the machine line.
    pub fn to_body(&self) -> String {
        format!(
            "public key of machine {} for end-to-end encryption (published by `handoff keys`)\n{KEY_PREFIX}{}",
            self.machine,
            serde_json::to_string(self).expect("serialises")
        )
    }

    /// Parses a key message body; `None` when it is not one (or its key is not a valid age key).
    pub fn from_body(body: &str) -> Option<Self> {
        let a: Self =
            body.lines().rev().find_map(|l| l.strip_prefix(KEY_PREFIX)).and_then(|j| serde_json::from_str(j).ok())?;
        super::parse_recipient(&a.recipient).ok()?;
        Some(a)
    }
}

/// A known machine's key as `keys list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KnownKey {
    /// The machine.
    pub machine: String,
    /// The pinned (used) public key.
    pub recipient: String,
    /// Where it came from (`bus msg 12 from a at ...`, `trusted by hand`).
    pub source: String,
    /// When it was pinned.
    pub pinned_at: String,
    /// A different key seen since, not used until `handoff keys trust <machine>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_to: Option<String>,
    /// Where the changed key came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_source: Option<String>,
}

/// What recording a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First key of that machine: pinned.
    New,
    /// The pinned key again.
    Same,
    /// A different key: held back until `keys trust`.
    Changed {
        /// The key in use.
        pinned: String,
    },
}

/// The key table of the local state database (trust on first use).
pub struct KeyStore<'a> {
    conn: &'a rusqlite::Connection,
    me: &'a str,
}

impl<'a> KeyStore<'a> {
    /// Opens the table (creating it) for this machine's view.
    pub fn new(state: &'a crate::state::State, me: &'a str) -> anyhow::Result<Self> {
        let conn = state.conn();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS peer_keys (
                me TEXT NOT NULL,
                machine TEXT NOT NULL,
                recipient TEXT NOT NULL,
                source TEXT NOT NULL,
                pinned_at TEXT NOT NULL,
                changed_to TEXT,
                changed_source TEXT,
                PRIMARY KEY (me, machine)
             );",
        )?;
        Ok(Self { conn, me })
    }

    /// Records a key seen for `machine`: pins the first one, holds back a different one.
    pub fn record(&self, machine: &str, recipient: &str, source: &str) -> anyhow::Result<Recorded> {
        let known = self.get(machine)?;
        match known {
            None => {
                self.conn.execute(
                    "INSERT INTO peer_keys(me, machine, recipient, source, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![self.me, machine, recipient, source, handoff_channels::bus::store::now_ts()],
                )?;
                Ok(Recorded::New)
            }
            Some(k) if k.recipient == recipient => {
                // the pinned key published again: a pending change (if any) is withdrawn
                self.conn.execute(
                    "UPDATE peer_keys SET changed_to = NULL, changed_source = NULL WHERE me = ?1 AND machine = ?2",
                    params![self.me, machine],
                )?;
                Ok(Recorded::Same)
            }
            Some(k) => {
                self.conn.execute(
                    "UPDATE peer_keys SET changed_to = ?3, changed_source = ?4 WHERE me = ?1 AND machine = ?2",
                    params![self.me, machine, recipient, source],
                )?;
                Ok(Recorded::Changed { pinned: k.recipient })
            }
        }
    }

    /// Accepts the changed key of `machine` (or pins `recipient` given by hand). Returns the key now used.
    pub fn trust(&self, machine: &str, recipient: Option<&str>) -> anyhow::Result<String> {
        let known = self.get(machine)?;
        let (new, source) = match (recipient, &known) {
            (Some(r), _) => (r.to_string(), "trusted by hand".to_string()),
            (None, Some(KnownKey { changed_to: Some(c), changed_source, .. })) => {
                (c.clone(), format!("{} (trusted by hand)", changed_source.clone().unwrap_or_default()))
            }
            (None, Some(k)) => {
                anyhow::bail!("machine {machine}'s key has not changed; it is {} already", k.recipient)
            }
            (None, None) => anyhow::bail!(
                "no key is known for machine {machine}: run `handoff keys` on {machine}, then `handoff sync` here (or give the key: `handoff keys trust {machine} age1...`)"
            ),
        };
        self.conn.execute(
            "INSERT INTO peer_keys(me, machine, recipient, source, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(me, machine) DO UPDATE SET recipient = excluded.recipient, source = excluded.source,
               pinned_at = excluded.pinned_at, changed_to = NULL, changed_source = NULL",
            params![self.me, machine, new, source, handoff_channels::bus::store::now_ts()],
        )?;
        Ok(new)
    }

    /// The key record of one machine.
    pub fn get(&self, machine: &str) -> anyhow::Result<Option<KnownKey>> {
        Ok(self
            .conn
            .query_row(
                "SELECT machine, recipient, source, pinned_at, changed_to, changed_source FROM peer_keys WHERE me = ?1 AND machine = ?2",
                params![self.me, machine],
                row,
            )
            .optional()?)
    }

    /// Every known machine's key, by machine name.
    pub fn all(&self) -> anyhow::Result<Vec<KnownKey>> {
        let mut st = self.conn.prepare(
            "SELECT machine, recipient, source, pinned_at, changed_to, changed_source FROM peer_keys WHERE me = ?1 ORDER BY machine",
        )?;
        let rows = st.query_map(params![self.me], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KnownKey> {
    Ok(KnownKey {
        machine: r.get(0)?,
        recipient: r.get(1)?,
        source: r.get(2)?,
        pinned_at: r.get(3)?,
        changed_to: r.get(4)?,
        changed_source: r.get(5)?,
    })
}

/// The recipients of a send to `to` (a machine or `any`): its pinned key (every pinned key for `any`)
/// plus this machine's own key. A missing key is a permanent error that says how to get it.
/// Also returns warnings (held-back key changes).
pub fn recipients_for(
    store: &KeyStore<'_>,
    me: &str,
    own: &Identity,
    to: &str,
) -> anyhow::Result<(Vec<Recipient>, Vec<String>)> {
    let mut keys = vec![own.to_public()];
    let mut warnings = Vec::new();
    let known: Vec<KnownKey> = if to == handoff_channels::bus::BROADCAST {
        store.all()?.into_iter().filter(|k| k.machine != me).collect()
    } else if to == me {
        Vec::new()
    } else {
        match store.get(to)? {
            Some(k) => vec![k],
            None => {
                return Err(crate::exit::with_code(
                    crate::exit::DATA,
                    anyhow::anyhow!(
                        "no public key for machine {to}: run `handoff keys` on {to}, then `handoff sync` here; nothing was sent"
                    ),
                ));
            }
        }
    };
    if to == handoff_channels::bus::BROADCAST && known.is_empty() {
        warnings.push(
            "no other machine's key is known yet, so only this machine can read this broadcast (run `handoff keys` on the others, then `handoff sync` here)".into(),
        );
    }
    for k in known {
        if k.changed_to.is_some() {
            warnings.push(format!(
                "machine {}'s key changed and the new one is not trusted yet: encrypting to the pinned key (check with its owner, then `handoff keys trust {}`)",
                k.machine, k.machine
            ));
        }
        keys.push(
            super::parse_recipient(&k.recipient).map_err(|e| anyhow::anyhow!("stored key of {}: {e}", k.machine))?,
        );
    }
    Ok((keys, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_private_and_stable_and_keys_are_pinned_on_first_use() {
        let d = tempfile::tempdir().unwrap();
        let (id, new) = ensure_identity(d.path()).unwrap();
        assert!(new);
        let (again, new) = ensure_identity(d.path()).unwrap();
        assert!(!new);
        assert_eq!(id.to_public().to_string(), again.to_public().to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(identity_path(d.path())).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(identity_path(d.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_identity(d.path()).err().expect("refused").to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }

        let state = crate::state::State::open(d.path()).unwrap();
        let ks = KeyStore::new(&state, "a").unwrap();
        let k1 = Identity::generate().to_public().to_string();
        let k2 = Identity::generate().to_public().to_string();
        assert_eq!(ks.record("b", &k1, "bus msg 1").unwrap(), Recorded::New);
        assert_eq!(ks.record("b", &k1, "bus msg 2").unwrap(), Recorded::Same);
        assert_eq!(ks.record("b", &k2, "bus msg 3").unwrap(), Recorded::Changed { pinned: k1.clone() });
        assert_eq!(ks.get("b").unwrap().unwrap().recipient, k1, "a changed key is not used");
        assert_eq!(ks.trust("b", None).unwrap(), k2);
        assert_eq!(ks.get("b").unwrap().unwrap().recipient, k2);
        assert!(ks.trust("b", None).is_err(), "nothing pending any more");
        let e = recipients_for(&ks, "a", &id, "c").unwrap_err().to_string();
        assert!(e.contains("no public key for machine c"), "{e}");
        assert_eq!(recipients_for(&ks, "a", &id, "b").unwrap().0.len(), 2);
    }

    #[test]
    fn key_messages_round_trip_and_bad_keys_are_ignored() {
        let a = KeyAnnouncement { machine: "a".into(), recipient: Identity::generate().to_public().to_string() };
        assert_eq!(KeyAnnouncement::from_body(&a.to_body()), Some(a));
        let bad = KeyAnnouncement { machine: "a".into(), recipient: "age1nope".into() };
        assert_eq!(KeyAnnouncement::from_body(&bad.to_body()), None);
        assert_eq!(KeyAnnouncement::from_body("hello"), None);
    }
}
