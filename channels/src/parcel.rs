//! What the router hands a channel ([`Parcel`]) and what the channel hands back ([`Receipt`]).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The kind of content in a parcel; channels declare which kinds they take in their [`crate::Capability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParcelKind {
    /// A short message that fits the bus.
    Text,
    /// A long-form markdown document.
    Document,
    /// A file (any bytes).
    File,
    /// A one-line page to a human.
    Page,
}

/// A file handed to `handoff send --file`, already measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Where the bytes are now (the user's file, or the outbox's copy of it).
    pub path: PathBuf,
    /// The name to store it under (the base name the user gave, sanitised by the channel).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256 of the content; empty when not known yet: the channel hashes the bytes while uploading
    /// them and reports the result in [`Receipt::sha256`], so a big file is read once, not twice.
    pub sha256: String,
}

impl FileRef {
    /// Whether `size` and `sha256` (what a channel just read and sent) are this file's content: the size
    /// always, the hash when it was known beforehand. A mismatch means the file changed while being sent.
    pub fn matches(&self, size: u64, sha256: &str) -> bool {
        size == self.size && (self.sha256.is_empty() || sha256 == self.sha256)
    }
}

/// One unit of delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    /// Client-generated idempotency key: the same key delivered twice yields one copy.
    pub key: String,
    /// Sending machine.
    pub from: String,
    /// Recipient machine, or `any` for a broadcast.
    pub to: String,
    /// What it is.
    pub kind: ParcelKind,
    /// Title of a document, or a summary.
    pub title: Option<String>,
    /// Text content (message, document, page), or a note accompanying a file.
    pub body: String,
    /// Tags for the bus message.
    pub tags: Vec<String>,
    /// The file, for [`ParcelKind::File`].
    pub file: Option<FileRef>,
}

/// Where the bus message an urgent page is about stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "id")]
pub enum BusState {
    /// Posted, with this bus message id.
    Posted(String),
    /// Not posted yet (bus unreachable, or waiting for payloads): it waits in the outbox.
    Queued,
    /// The bus refused the message (it will not arrive).
    Failed,
}

/// What an urgent page says (SPEC §3.3): who, a summary, and where the bus message is, or, when there is
/// no bus message to point at, the text itself. Each page channel words it in its own way
/// ([`crate::Channel::render_page`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageNote {
    /// The sending machine.
    pub from: String,
    /// A one-line summary of the send.
    pub summary: String,
    /// Where the bus message is.
    pub bus: BusState,
    /// What to carry when the bus message is not there: the message text (never the plaintext of an
    /// encrypted send: then the summary).
    pub standalone: String,
}

impl PageNote {
    /// Most characters of text a plain page carries.
    pub const STANDALONE_MAX: usize = 1000;

    /// The plain one-line wording: `<from>: <summary> (bus msg <id>)`, or the standalone text (at most
    /// [`PageNote::STANDALONE_MAX`] characters) and why it stands alone.
    pub fn plain(&self) -> String {
        let one_line = |s: &str| {
            let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if line.chars().count() <= Self::STANDALONE_MAX {
                line
            } else {
                format!("{}…", line.chars().take(Self::STANDALONE_MAX - 1).collect::<String>())
            }
        };
        match &self.bus {
            BusState::Posted(id) => format!("{}: {} (bus msg {id})", self.from, one_line(&self.summary)),
            BusState::Queued => {
                format!("{}: {} (bus unreachable; message queued)", self.from, one_line(&self.standalone))
            }
            BusState::Failed => format!("{}: {} (bus refused the message)", self.from, one_line(&self.standalone)),
        }
    }
}

impl Parcel {
    /// Size in bytes that the channel must carry.
    pub fn size(&self) -> u64 {
        match &self.file {
            Some(f) => f.size,
            None => self.body.len() as u64,
        }
    }
}

/// What a channel reports after downloading an item: the bytes written and their sha256, computed while
/// streaming so the caller can verify without reading the file again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes written to the destination.
    pub size: u64,
    /// Lower-case hex sha256 of those bytes.
    pub sha256: String,
}

/// What a channel reports after delivering a parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Channel name.
    pub channel: String,
    /// Where the item now is, in the channel's URI form (`drive:gdrive:folder/x.png`, `git:...`), if stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The bus message id, when the parcel became a bus message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// A short human note ("via rclone", "commit 1a2b3c4").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a file: the sha256 of the bytes stored, hashed while uploading them (`None` when nothing was
    /// uploaded now, e.g. the object was already there from an earlier attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
