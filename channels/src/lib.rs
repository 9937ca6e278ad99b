//! The channels `handoff` moves work through, behind one [`Channel`] trait.
//!
//! A channel is a config struct, a constructor and an implementation of [`Channel`], with a plain
//! [`Capability`] value describing what it can carry (modelled on opendal's services). Each channel other
//! than the bus lives behind a cargo feature; adding a channel is one new module whose config section
//! implements [`registration::ChannelSection`], plus one line in the [`register_channels!`] list below.

#![deny(missing_docs)]

pub mod bus;
pub mod context;
pub mod dates;
#[cfg(feature = "discord")]
pub mod discord;
#[cfg(feature = "drive")]
pub mod drive;
#[cfg(feature = "droplet")]
pub mod droplet;
#[cfg(feature = "email")]
pub mod email;
pub mod env_file;
pub mod error;
#[cfg(feature = "folder")]
pub mod folder;
pub mod fsutil;
#[cfg(feature = "git")]
pub mod git;
pub mod hashing;
#[cfg(feature = "imessage")]
pub mod imessage;
pub mod init;
pub mod local_files;
pub mod names;
pub mod parcel;
pub mod paths;
pub mod pointer;
pub mod private_file;
pub mod receive;
pub mod registration;
pub mod secret_source;
#[cfg(any(feature = "slack", feature = "discord", feature = "imessage"))]
pub mod sent_ledger;
#[cfg(feature = "slack")]
pub mod slack;
#[cfg(feature = "sms")]
pub mod sms;
#[cfg(any(feature = "droplet", feature = "drive", feature = "git"))]
pub mod ssh;
pub mod untrusted;
#[cfg(any(feature = "slack", feature = "discord"))]
pub mod webhook;

pub use context::{Context, Incoming, NoProgress, ProgressBar, ProgressSink, SyncReport};
pub use error::{ChannelError, ErrorKind};
pub use parcel::{BusState, Fetched, PageNote, Parcel, ParcelKind, Receipt};
pub use pointer::{Pointer, PointerItem};

use async_trait::async_trait;
use serde::Serialize;

// The one list of optional channels: one line each, under its cargo feature. The module's name is the
// channel's name everywhere (config section, `--via`, receipts, pointers). See docs/architecture.md.
register_channels! {
    /// `[git]`: the git repo of handoff documents.
    "git" => git::GitConfig,
    /// `[drive]`: an rclone remote for payloads.
    "drive" => drive::DriveConfig,
    /// `[droplet]`: a directory on an SSH server for transient payloads.
    "droplet" => droplet::DropletConfig,
    /// `[sms]`: Twilio pages to a human.
    "sms" => sms::SmsConfig,
    /// `[email]`: drafts in an IMAP mailbox.
    "email" => email::EmailConfig,
    /// `[slack]`: a Slack incoming webhook.
    "slack" => slack::SlackConfig,
    /// `[discord]`: a Discord webhook.
    "discord" => discord::DiscordConfig,
    /// `[imessage]`: pages through the Mac's Messages app.
    "imessage" => imessage::ImessageConfig,
    /// `[folder]`: a shared directory (NAS, SMB/NFS mount, synced folder).
    "folder" => folder::FolderConfig,
}

/// How quickly a channel usually delivers: the router tries faster channels first (declaration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyClass {
    /// Delivered within seconds (bus, SMS).
    Seconds,
    /// Tens of seconds (git push and pull).
    TensOfSeconds,
    /// Bound by the payload size and the link (drive, droplet).
    SizeBound,
}

/// What a channel can do: flags and limits, no behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// Largest single item the channel accepts, in bytes (`None` = no limit of its own).
    pub max_size: Option<u64>,
    /// Usual delivery latency.
    pub latency: LatencyClass,
    /// Whether a machine can read from the channel at session start (bus, git) or only fetch pointed-to items.
    pub can_receive: bool,
    /// Accepts short inline text messages.
    pub text: bool,
    /// Accepts long-form documents.
    pub documents: bool,
    /// Accepts files (binary payloads).
    pub files: bool,
    /// Accepts one-line pages to a human.
    pub pages: bool,
    /// Holds items lastingly (drive, git) rather than for a while (droplet is pruned).
    pub lasting: bool,
    /// Largest item the router sends here unasked (`None` = up to [`Capability::max_size`]); larger ones
    /// go to the next channel, though `--via` may still send them (the droplet's `max_size`).
    pub routed_max: Option<u64>,
    /// Among channels of the same latency, the higher is tried first (`priority = N` in the channel's
    /// config section replaces the channel's own default).
    pub priority: i32,
    /// Once this channel has taken an item, no other is tried for it: it keeps what it took and delivers it
    /// on a retry (git commits locally, then pushes), so a fallback would make a second copy.
    pub no_fallback: bool,
}

impl Capability {
    /// Carries nothing; the base the channels' own capabilities start from (`..Capability::NOTHING`).
    pub const NOTHING: Capability = Capability {
        max_size: None,
        latency: LatencyClass::Seconds,
        can_receive: false,
        text: false,
        documents: false,
        files: false,
        pages: false,
        lasting: false,
        routed_max: None,
        priority: 0,
        no_fallback: false,
    };

    /// A store for files only (drive, droplet): no size limit of its own, latency bound by the payload.
    pub const fn file_store(lasting: bool, priority: i32) -> Self {
        Capability { latency: LatencyClass::SizeBound, files: true, lasting, priority, ..Capability::NOTHING }
    }

    /// A channel that pages a human (SMS, iMessage, a chat webhook): seconds, nothing read back, nothing kept;
    /// `text` when it also takes short messages for a log people follow; `priority` places it among the
    /// other page channels when `[route] page` does not.
    pub const fn pager(max_size: Option<u64>, text: bool, priority: i32) -> Self {
        Capability { max_size, text, pages: true, priority, ..Capability::NOTHING }
    }

    /// Whether the router may pick this channel for a parcel of the given kind and size without being
    /// asked (`--via`): it [`accepts`](Capability::accepts) it and it is within [`Capability::routed_max`].
    pub fn routes(&self, kind: ParcelKind, size: u64) -> bool {
        self.accepts(kind, size) && self.routed_max.is_none_or(|max| size <= max)
    }

    /// Whether this channel takes a parcel of the given kind and size.
    pub fn accepts(&self, kind: ParcelKind, size: u64) -> bool {
        let kind_ok = match kind {
            ParcelKind::Text => self.text,
            ParcelKind::Document => self.documents,
            ParcelKind::File => self.files,
            ParcelKind::Page => self.pages,
        };
        kind_ok && self.max_size.is_none_or(|max| size <= max)
    }
}

/// Result of a channel's health check: one line for `handoff doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// What was checked, e.g. `bus reachable at https://bus.example.com`.
    pub check: String,
    /// Extra detail when the check passed (counts, versions).
    pub detail: Option<String>,
}

/// Lets a command reach a channel's own operations (`droplet prune`) through the registry:
/// `channel.as_any().downcast_ref::<DropletChannel>()`. Implemented for every channel.
pub trait AsAny {
    /// The channel as [`std::any::Any`].
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: std::any::Any> AsAny for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A place `handoff` can deliver parcels to (and, for some, fetch them back from).
#[async_trait]
pub trait Channel: AsAny + Send + Sync {
    /// Short stable name used in config, `--via` and pointers: `bus`, `git`, `drive`, `droplet`, `sms`, `local`.
    fn name(&self) -> &'static str;

    /// What this channel can carry.
    fn capability(&self) -> Capability;

    /// Delivers one parcel. Must be idempotent for the same `parcel.key`: a retry after a lost response
    /// must not create a second copy.
    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError>;

    /// Delivers a parcel no channel has been handed before (its job was written by this process just now
    /// and this is its first delivery), so nothing can carry its key yet: a channel may skip looking for
    /// an earlier copy. Anything else goes to [`Channel::deliver`]. Default: [`Channel::deliver`].
    async fn deliver_new(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        self.deliver(parcel).await
    }

    /// Starts, ahead of [`Channel::deliver`], what the delivery will need first and which takes long (a
    /// network connection), without sending anything: `handoff send` calls it for the first payload's
    /// channel before it writes the job to the outbox. The delivery uses it, or it is dropped. Nothing
    /// is reported from here: a connection that fails is the delivery's to report. Default: nothing.
    fn preconnect(&self) {}

    /// Hangs up what [`Channel::preconnect`] started and no delivery took (a send refused, or ended by an
    /// error, before it delivered anything), cleanly and without waiting. Default: nothing.
    fn hang_up_preconnect(&self) {}

    /// Downloads the item at `uri` (as written in a pointer by this channel) into `dest`, streaming, and
    /// reports its size and sha256 (hashed on the way, not by reading `dest` again).
    ///
    /// `uri` comes from a bus message anybody with the bus password could have posted. Before touching
    /// anything, a channel checks it against its own configuration (its remote, folder, host or clone) and
    /// refuses ([`ErrorKind::Refused`]) an item it could not have written itself. It reads at most `max`
    /// bytes (the size the pointer claims): an item holding more is refused and nothing of it is kept.
    async fn fetch(&self, uri: &str, dest: &std::path::Path, max: u64) -> Result<Fetched, ChannelError> {
        let _ = (dest, max);
        Err(ChannelError::refused(format!(
            "the {} channel holds no items to fetch; refusing {}",
            self.name(),
            untrusted::inline(uri)
        )))
    }

    /// For channels read at session start (git): what is new since `cursor` (a string this channel chose
    /// last time), and the cursor to store for next time. Others report nothing.
    async fn sync(&self, cursor: Option<&str>) -> Result<SyncReport, ChannelError> {
        let _ = cursor;
        Ok(SyncReport::default())
    }

    /// The words of an urgent page on this channel (channels with `pages: true`): by default
    /// [`PageNote::plain`]; a channel with its own limits or wording (SMS) renders it its own way.
    fn render_page(&self, note: &PageNote) -> String {
        note.plain()
    }

    /// Checks that the channel is reachable and usable, without sending anything visible.
    async fn health(&self) -> Result<Health, ChannelError>;
}
