//! The email channel: briefings as self-addressed drafts in the user's mailbox over IMAP (Gmail's
//! `[Gmail]/Drafts`, any IMAP server). A draft shows up on every device at once, and it is the one
//! carrier a brand-new machine can read before it has bus credentials: `sync` on a machine with only
//! `[email]` configured lists the drafts handoff wrote for it.
//!
//! Delivery is `APPEND` into the drafts folder, flagged `\Draft`, with the To/Cc list from config, the
//! subject `handoff: <title>` and the idempotency key in `X-Handoff-Key`; before appending, the folder is
//! searched for that key, so a retry after a lost answer never makes a second draft. The password comes
//! from `HANDOFF_IMAP_PASSWORD` (or the env file), never from the TOML; TLS is always verified.

pub mod draft;
pub mod imap;
pub mod init;

use crate::{
    Capability, Channel, ChannelError, Context, Fetched, Health, Incoming, LatencyClass, Parcel, Receipt, SyncReport,
};
use async_trait::async_trait;
use futures::TryStreamExt;
use imap::{ImapSession, Server, timed};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The environment variable holding the IMAP password.
pub const PASSWORD_VAR: &str = "HANDOFF_IMAP_PASSWORD";
/// Largest draft handoff appends (Gmail takes 25 MB messages; base64 adds a third).
pub const MAX_SIZE: u64 = 16 << 20;
/// The URI scheme of drafts (`email:<key>`).
pub const SCHEME: &str = "email:";

/// `[email]` in handoff's config. The password comes from `HANDOFF_IMAP_PASSWORD` or the env file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The IMAP server, TLS from the first byte: `imaps://imap.gmail.com:993`.
    pub imap: String,
    /// The login name (usually the address): `you@gmail.com`.
    pub user: String,
    /// The drafts folder: `[Gmail]/Drafts` on Gmail, `Drafts` on most servers.
    #[serde(default = "default_drafts")]
    pub drafts: String,
    /// `To:` of each draft (free-form; people address such drafts to themselves).
    #[serde(default)]
    pub to: Vec<String>,
    /// `Cc:` of each draft (their other inboxes).
    #[serde(default)]
    pub cc: Vec<String>,
    /// `From:` of each draft (default: `user`).
    #[serde(default)]
    pub from: Option<String>,
    /// An env file with a `HANDOFF_IMAP_PASSWORD=…` line (mode 600), read when the variable is not in the
    /// environment (default: the bus's env file, `~/.secrets/claude-bus.env`, when it exists).
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// Among channels of the same latency, the higher priority is tried first (default [`PRIORITY`]:
    /// after git for documents, after the chat channels for pages).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts, pointers).
pub const NAME: &str = "email";
/// The email channel's own priority.
pub const PRIORITY: i32 = 0;

impl crate::registration::ChannelSection for EmailConfig {
    type InitFlags = init::EmailInitFlags;

    const CARRIES: &'static [crate::ParcelKind] =
        &[crate::ParcelKind::Text, crate::ParcelKind::Document, crate::ParcelKind::Page];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn crate::Channel>, ChannelError> {
        Ok(std::sync::Arc::new(EmailChannel::from_config(self, ctx)?))
    }

    fn secrets(&self) -> Vec<crate::registration::LoadedSecret> {
        self.secret()
            .map(|value| crate::registration::LoadedSecret {
                value,
                label: format!("the IMAP password ({PASSWORD_VAR})"),
            })
            .into_iter()
            .collect()
    }

    fn secret_files(&self) -> Vec<crate::registration::SecretFile> {
        crate::registration::env_file_entry("IMAP env file", self.env_file.as_deref())
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

fn default_drafts() -> String {
    "Drafts".into()
}

impl EmailConfig {
    /// The env file the password is read from, when there is one.
    pub fn env_file(&self) -> Option<PathBuf> {
        match &self.env_file {
            Some(p) => Some(crate::paths::expand_tilde(p)),
            None => Some(crate::paths::expand_tilde(Path::new(crate::env_file::DEFAULT_BUS_ENV_FILE)))
                .filter(|p| p.exists()),
        }
    }

    /// The password this section loads (for the secret scanner), when there is one.
    pub fn secret(&self) -> Option<String> {
        password(self).ok()
    }
}

fn password(cfg: &EmailConfig) -> Result<String, ChannelError> {
    crate::secret_source::lookup(PASSWORD_VAR, cfg.env_file().as_deref(), "[email] env_file")?.ok_or_else(|| {
        ChannelError::auth(format!(
            "[email] is configured but {PASSWORD_VAR} is not set: put the IMAP password (for Gmail, an app password) \
             in {PASSWORD_VAR} or in the env file named by `env_file` in [email]"
        ))
    })
}

/// Drafts in a mailbox.
pub struct EmailChannel {
    server: Server,
    user: String,
    drafts: String,
    from: String,
    to: Vec<String>,
    cc: Vec<String>,
    password: Result<String, ChannelError>,
    machine: String,
}

impl EmailChannel {
    /// Builds the channel, checking every setting; the password is only needed when connecting.
    pub fn from_config(cfg: &EmailConfig, ctx: &Context) -> Result<Self, ChannelError> {
        let server = Server::parse(&cfg.imap)?;
        if cfg.user.trim().is_empty() || cfg.user.chars().any(char::is_control) {
            return Err(ChannelError::permanent("[email] user is empty; set it to the IMAP login (your address)"));
        }
        if cfg.drafts.trim().is_empty() || cfg.drafts.chars().any(char::is_control) {
            return Err(ChannelError::permanent("[email] drafts must name the drafts folder, e.g. \"[Gmail]/Drafts\""));
        }
        let from = cfg.from.clone().unwrap_or_else(|| cfg.user.clone());
        for (key, list) in [("from", std::slice::from_ref(&from)), ("to", &cfg.to[..]), ("cc", &cfg.cc[..])] {
            if let Some(bad) = list.iter().find(|a| !draft::address_ok(a)) {
                return Err(ChannelError::permanent(format!(
                    "[email] {key}: {:?} is not an email address (write you@example.com or Name <you@example.com>)",
                    crate::untrusted::inline(bad)
                )));
            }
        }
        Ok(Self {
            server,
            user: cfg.user.clone(),
            drafts: cfg.drafts.clone(),
            from,
            to: cfg.to.clone(),
            cc: cfg.cc.clone(),
            password: password(cfg),
            machine: ctx.machine.clone(),
        })
    }

    async fn session(&self) -> Result<ImapSession, ChannelError> {
        let password = self.password.as_ref().map_err(|e| ChannelError { kind: e.kind, message: e.message.clone() })?;
        imap::login(&self.server, &self.user, password).await
    }

    async fn open_drafts(&self, s: &mut ImapSession, write: bool) -> Result<async_imap::types::Mailbox, ChannelError> {
        let r = if write {
            tokio::time::timeout(imap::COMMAND_TIMEOUT, s.select(&self.drafts)).await
        } else {
            tokio::time::timeout(imap::COMMAND_TIMEOUT, s.examine(&self.drafts)).await
        };
        match r {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(async_imap::error::Error::No(_))) => Err(ChannelError::permanent(format!(
                "the drafts folder {:?} does not exist on the IMAP server {} (set [email] drafts; Gmail's is \
                 \"[Gmail]/Drafts\")",
                self.drafts, self.server
            ))),
            Ok(Err(e)) => Err(imap::imap_error(&self.server, "opening the drafts folder", e)),
            Err(_) => {
                Err(ChannelError::transient(format!("IMAP server {}: no answer opening the drafts", self.server)))
            }
        }
    }

    /// UIDs of drafts carrying `key`.
    async fn find(&self, s: &mut ImapSession, key: &str) -> Result<Vec<u32>, ChannelError> {
        let q = format!("HEADER {} \"{key}\"", draft::KEY_HEADER);
        let mut uids: Vec<u32> = timed(&self.server, "search", s.uid_search(q)).await?.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The raw message with this UID.
    async fn raw(&self, s: &mut ImapSession, uid: u32) -> Result<Option<Vec<u8>>, ChannelError> {
        let stream = timed(&self.server, "fetch", s.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")).await?;
        let fetched: Vec<_> = timed(&self.server, "fetch", stream.try_collect::<Vec<_>>()).await?;
        Ok(fetched.into_iter().find_map(|f| f.body().map(<[u8]>::to_vec)))
    }

    /// The size the server reports for message `uid` (`RFC822.SIZE`), asked before its body is read.
    async fn stored_size(&self, s: &mut ImapSession, uid: u32) -> Result<Option<u64>, ChannelError> {
        let stream = timed(&self.server, "fetch", s.uid_fetch(uid.to_string(), "(UID RFC822.SIZE)")).await?;
        let fetched: Vec<_> = timed(&self.server, "fetch", stream.try_collect::<Vec<_>>()).await?;
        Ok(fetched.into_iter().find_map(|f| f.size.map(u64::from)))
    }
}

/// The most bytes a draft may hold on the server when its document is claimed to be `max` bytes. The
/// document rides twice (the text part and the `.md` attachment), each in the encoding the MIME builder
/// picks: at worst quoted-printable, three characters per byte plus a soft line break every 76 characters
/// (base64 is smaller); the rest is room for the headers.
fn raw_budget(max: u64) -> u64 {
    let per_copy = max.saturating_mul(3).saturating_mul(78).div_ceil(76);
    per_copy.saturating_mul(2).saturating_add(MAX_HEADER_OVERHEAD)
}

/// Room in a draft for its headers and MIME boundaries.
const MAX_HEADER_OVERHEAD: u64 = 256 * 1024;

async fn logout(s: &mut ImapSession) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.logout()).await;
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A draft is seen when someone opens the mailbox: tens of seconds at best, so the router tries git
    /// first for documents and the chat channels first for pages.
    fn capability(&self) -> Capability {
        Capability {
            max_size: Some(MAX_SIZE),
            latency: LatencyClass::TensOfSeconds,
            can_receive: true,
            text: true,
            documents: true,
            pages: true,
            lasting: true,
            priority: PRIORITY,
            ..Capability::NOTHING
        }
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        if !draft::key_ok(&parcel.key) {
            return Err(ChannelError::permanent("the email channel needs a plain idempotency key"));
        }
        let raw = draft::build(parcel, &draft::Addresses { from: &self.from, to: &self.to, cc: &self.cc })?;
        let mut s = self.session().await?;
        let result = async {
            self.open_drafts(&mut s, true).await?;
            let receipt = |detail: &str| Receipt {
                channel: NAME.into(),
                uri: Some(format!("{SCHEME}{}", parcel.key)),
                message_id: None,
                detail: Some(format!("{detail} in {} on {}", self.drafts, self.server)),
                sha256: None,
            };
            // search before append: an earlier attempt whose answer was lost already left the draft
            if !self.find(&mut s, &parcel.key).await?.is_empty() {
                return Ok(receipt("draft already there"));
            }
            timed(&self.server, "append", s.append(&self.drafts, Some("(\\Draft \\Seen)"), None, &raw)).await?;
            Ok(receipt("draft"))
        }
        .await;
        logout(&mut s).await;
        result
    }

    /// Downloads the document of the draft `email:<key>` (its attachment, byte for byte). Only a draft in
    /// the configured drafts folder is read, and only when the server's size for it fits `max` (the size
    /// the pointer claims, in base64 with room for headers); a document longer than `max` is refused.
    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<Fetched, ChannelError> {
        let shown = crate::untrusted::inline(uri);
        let key = uri.strip_prefix(SCHEME).filter(|k| draft::key_ok(k)).ok_or_else(|| {
            ChannelError::refused(format!(
                "refusing {:?}: not a draft of the email channel (email:<key>)",
                crate::untrusted::inline(uri)
            ))
        })?;
        let mut s = self.session().await?;
        let result = async {
            self.open_drafts(&mut s, false).await?;
            let uid = self.find(&mut s, key).await?.into_iter().next().ok_or_else(|| {
                ChannelError::permanent(format!("no draft {shown} in {} on {}", self.drafts, self.server))
            })?;
            if let Some(stored) = self.stored_size(&mut s, uid).await?
                && stored > raw_budget(max)
            {
                return Err(ChannelError::over_claimed(&shown, max));
            }
            let raw =
                self.raw(&mut s, uid).await?.ok_or_else(|| ChannelError::transient("the draft came back empty"))?;
            draft::parse(&raw).ok_or_else(|| ChannelError::permanent(format!("{shown} is not a handoff draft")))
        }
        .await;
        logout(&mut s).await;
        let d = result?;
        crate::receive::check_size(&shown, d.content.len() as u64, max)?;
        let dir = dest.parent().ok_or_else(|| ChannelError::permanent("destination has no parent"))?;
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".{}.part", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, &d.content).await?;
        tokio::fs::rename(&tmp, dest).await?;
        Ok(Fetched { size: d.content.len() as u64, sha256: crate::hashing::sha256_hex(&d.content) })
    }

    /// Drafts written by handoff for this machine (or for any) by another machine, newer than `cursor`
    /// (`<uidvalidity>:<last uid>`).
    async fn sync(&self, cursor: Option<&str>) -> Result<SyncReport, ChannelError> {
        let mut s = self.session().await?;
        let result = async {
            let mb = self.open_drafts(&mut s, false).await?;
            let validity = mb.uid_validity.unwrap_or(0);
            let last = cursor
                .and_then(|c| c.split_once(':'))
                .filter(|(v, _)| v.parse::<u32>().ok() == Some(validity))
                .and_then(|(_, u)| u.parse::<u32>().ok())
                .unwrap_or(0);
            let q = format!("UID {}:* HEADER {} \"\"", last.saturating_add(1), draft::KEY_HEADER);
            let mut uids: Vec<u32> =
                timed(&self.server, "search", s.uid_search(q)).await?.into_iter().filter(|u| *u > last).collect();
            uids.sort_unstable();
            let mut report = SyncReport::default();
            for uid in &uids {
                let Some(raw) = self.raw(&mut s, *uid).await? else { continue };
                let Some(d) = draft::parse(&raw) else { continue };
                if d.from == self.machine || !(d.to == self.machine || d.to == crate::bus::BROADCAST) {
                    continue;
                }
                report.items.push(Incoming {
                    channel: NAME.into(),
                    title: d.subject.strip_prefix("handoff: ").unwrap_or(&d.subject).to_string(),
                    from: Some(d.from.clone()),
                    ts: d.date.clone(),
                    location: format!("{SCHEME}{}", d.key),
                    content: Some(String::from_utf8_lossy(&d.content).into_owned()),
                });
            }
            if let Some(max) = uids.last() {
                report.cursor = Some(format!("{validity}:{max}"));
            } else if cursor.is_none() || last == 0 {
                report.cursor = Some(format!("{validity}:{last}"));
            }
            Ok(report)
        }
        .await;
        logout(&mut s).await;
        result
    }

    /// Logs in and opens the drafts folder read-only (`EXAMINE`): nothing changes, nothing is sent.
    async fn health(&self) -> Result<Health, ChannelError> {
        let mut s = self.session().await?;
        let r = self.open_drafts(&mut s, false).await;
        logout(&mut s).await;
        let mb = r?;
        Ok(Health {
            check: format!("IMAP {} as {} (drafts folder {:?})", self.server, self.user, self.drafts),
            detail: Some(format!("{} message(s) in the drafts folder", mb.exists)),
        })
    }
}
