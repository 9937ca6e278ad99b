//! Pointers: a bus message that says where a payload went.
//!
//! The original bus stores only `from`, `to`, `body`, `tags`, so a pointer is a body that reads well to a
//! human and carries one machine-readable line, `handoff-pointer/v1 {json}`, plus the `pointer` tag.

use serde::{Deserialize, Serialize};

/// The tag every pointer message carries.
pub const POINTER_TAG: &str = "pointer";
/// The prefix of the machine-readable line in a pointer body.
pub const POINTER_PREFIX: &str = "handoff-pointer/v1 ";

/// One stored item a pointer refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointerItem {
    /// Channel that holds it (`git`, `drive`, `droplet`, `local`).
    pub channel: String,
    /// Display name (file name or document title).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256 of the content as stored (before any encryption layer is removed).
    pub sha256: String,
    /// Location in the channel's URI form.
    pub uri: String,
    /// Present when the stored item is an age ciphertext (an end-to-end encrypted send): size and sha256
    /// of the content once decrypted. `size`/`sha256` above are then those of the ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<PlainContent>,
}

/// Size and hash of an item's content after decryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainContent {
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// A pointer: what it is, where it is, how big, which hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// Title of the handoff, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Free-text note the sender added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The items.
    pub items: Vec<PointerItem>,
}

impl Pointer {
    /// Renders the bus body: a human summary, then the machine line.
    pub fn to_body(&self) -> String {
        let total: u64 = self.items.iter().map(|i| i.size).sum();
        let channels: Vec<&str> = {
            let mut c: Vec<&str> = self.items.iter().map(|i| i.channel.as_str()).collect();
            c.dedup();
            c
        };
        let names: Vec<&str> = self.items.iter().map(|i| i.name.as_str()).collect();
        let what = if self.items.len() == 1 { "1 item".to_string() } else { format!("{} items", self.items.len()) };
        let mut out = String::new();
        if let Some(t) = &self.title {
            out.push_str(t);
            out.push('\n');
        }
        out.push_str(&format!(
            "[pointer] {what} ({}) via {}: {}\n",
            human_size(total),
            channels.join(", "),
            names.join(", ")
        ));
        if let Some(n) = &self.note {
            out.push_str(n);
            out.push('\n');
        }
        for i in &self.items {
            out.push_str(&format!("- {} {} sha256:{}\n", i.uri, human_size(i.size), i.sha256));
        }
        out.push_str("fetch with: handoff fetch <this message id>\n");
        out.push_str(POINTER_PREFIX);
        out.push_str(&serde_json::to_string(self).expect("pointer serialises"));
        out
    }

    /// Finds and parses the machine line in a bus body; `None` when the body is not a pointer.
    pub fn from_body(body: &str) -> Option<Pointer> {
        body.lines().rev().find_map(|l| l.strip_prefix(POINTER_PREFIX)).and_then(|json| serde_json::from_str(json).ok())
    }
}

/// `1.5 MiB`-style size for humans.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trips_through_a_body_and_reads_well() {
        let p = Pointer {
            title: Some("screens".into()),
            note: Some("see the second one".into()),
            items: vec![PointerItem {
                channel: "drive".into(),
                name: "a b.png".into(),
                size: 3 * 1024 * 1024,
                sha256: "ab".repeat(32),
                uri: "drive:gdrive:claude-handoffs/x/a b.png".into(),
                plain: None,
            }],
        };
        let body = p.to_body();
        assert!(body.contains("3.0 MiB"), "{body}");
        assert!(body.contains("via drive: a b.png"), "{body}");
        assert_eq!(Pointer::from_body(&body), Some(p));
        assert_eq!(Pointer::from_body("just a message"), None);
    }
}
