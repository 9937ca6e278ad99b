//! The router's plan (SPEC §3): where each piece of content goes, in which fallback order, and what
//! goes on the bus. A pure function of the request, the configured channels and the thresholds, so it is
//! unit-tested without any network and printed by `send --dry-run`.

use handoff_channels::{Capability, ParcelKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the user asked to send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SendRequest {
    /// Recipient machine or `any`.
    pub to: String,
    /// Message text (or document text with `doc`).
    pub text: Option<String>,
    /// Treat the text as a document.
    pub doc: bool,
    /// Title of the document / summary.
    pub title: Option<String>,
    /// Files to send.
    pub files: Vec<FileInfo>,
    /// Page a human too.
    pub urgent: bool,
    /// Files need a lasting copy (drive).
    pub keep: bool,
    /// Extra tags.
    pub tags: Vec<String>,
    /// Force one channel.
    pub via: Option<String>,
}

/// A file to send, measured but not yet read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Its base name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// The router's thresholds and the channels it may use (name → capability).
#[derive(Debug, Clone)]
pub struct RouteContext {
    /// Text above this becomes a document.
    pub inline_max: u64,
    /// Files above this skip the droplet.
    pub droplet_max: u64,
    /// Configured channels.
    pub channels: BTreeMap<String, Capability>,
    /// `[route] page`: the page channels in the order to try (`None` = [`DEFAULT_PAGE_ORDER`]).
    pub page_order: Option<Vec<String>>,
}

/// The order pages are tried in when `[route] page` is not set: every configured page channel.
pub const DEFAULT_PAGE_ORDER: [&str; 5] = ["sms", "imessage", "slack", "discord", "email"];

/// One thing to deliver, with the channels to try in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedItem {
    /// What it is.
    pub kind: ParcelKind,
    /// Display name (file name, document title, "message").
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Channels to try, first choice first.
    pub channels: Vec<String>,
    /// Why the first choice was made.
    pub reason: String,
}

/// The plan for one send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Payloads stored away from the bus (documents, files), in order.
    pub payloads: Vec<PlannedItem>,
    /// What goes on the bus: the message itself (`inline`) or a pointer to the payloads.
    pub bus: BusPart,
    /// Whether a human is paged after the bus message.
    pub page: bool,
    /// The page channels to try, in order, until one succeeds (empty without `--urgent`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page_via: Vec<String>,
}

/// The bus part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BusPart {
    /// The text goes inline as one bus message.
    Inline {
        /// Size of the body.
        size: u64,
    },
    /// One pointer message listing every payload (the text, if short, rides along as its note).
    Pointer {
        /// Whether the user's short text rides in the pointer.
        with_note: bool,
    },
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Makes the plan.
pub fn plan(req: &SendRequest, ctx: &RouteContext) -> Result<Plan, PlanError> {
    if req.text.is_none() && req.files.is_empty() {
        return Err(PlanError("nothing to send: give a message, `-` for stdin, or --file PATH".into()));
    }
    if let Some(via) = &req.via
        && !ctx.channels.contains_key(via)
    {
        let known: Vec<&str> = ctx.channels.keys().map(String::as_str).collect();
        return Err(PlanError(format!(
            "--via {via}: that channel is not configured here (configured: {}); add a [{via}] section to the config",
            known.join(", ")
        )));
    }
    let has = |name: &str| ctx.channels.contains_key(name);
    let mut payloads = Vec::new();
    let mut bus = BusPart::Pointer { with_note: false };
    let doc_via = req.via.as_deref().filter(|v| *v != "bus");

    if let Some(text) = &req.text {
        let size = text.len() as u64;
        let as_document = req.doc
            || size > ctx.inline_max
            || doc_via.is_some_and(|v| req.files.is_empty() && ctx.channels.get(v).is_some_and(|c| c.documents));
        if as_document {
            // a git commit that is queued gets pushed later anyway: never fall back to a second copy
            let order: &[&str] = if has("git") { &["git"] } else { &["git", "email", "folder", "local"] };
            let channels = pick(ParcelKind::Document, size, doc_via, order, ctx)?;
            let reason = if req.doc {
                "--doc".to_string()
            } else if size > ctx.inline_max {
                format!("text is {size} bytes, over inline_max {}", ctx.inline_max)
            } else {
                format!("--via {}", channels[0])
            };
            payloads.push(PlannedItem {
                kind: ParcelKind::Document,
                name: req.title.clone().unwrap_or_else(|| "handoff".into()),
                size,
                channels,
                reason,
            });
        } else if req.files.is_empty() {
            if req.via.as_deref().is_some_and(|v| v != "bus") {
                return Err(PlanError(format!(
                    "--via {}: a short message goes on the bus (use --doc to make it a document)",
                    req.via.as_deref().unwrap_or("")
                )));
            }
            bus = BusPart::Inline { size };
        } else {
            bus = BusPart::Pointer { with_note: true };
        }
    }
    for f in &req.files {
        let order: &[&str] = if req.keep {
            &["drive", "folder", "local"]
        } else if f.size <= ctx.droplet_max {
            &["droplet", "drive", "folder", "local"]
        } else {
            &["drive", "folder", "local"]
        };
        let mut channels = pick(ParcelKind::File, f.size, req.via.as_deref(), order, ctx)?;
        // the droplet takes only files under droplet_max, even as a fallback
        channels.retain(|c| c != "droplet" || f.size <= ctx.droplet_max || req.via.as_deref() == Some("droplet"));
        let reason = match channels[0].as_str() {
            _ if req.via.is_some() => format!("--via {}", channels[0]),
            "droplet" => format!("{} is under droplet_max {}", f.name, ctx.droplet_max),
            "drive" if req.keep => "--keep asks for a lasting copy".into(),
            "drive" if has("droplet") => format!("{} is over droplet_max {}", f.name, ctx.droplet_max),
            "drive" => "no droplet configured".into(),
            "folder" => "the shared folder".into(),
            _ => "embedded default: local payload folder".into(),
        };
        payloads.push(PlannedItem { kind: ParcelKind::File, name: f.name.clone(), size: f.size, channels, reason });
    }
    let page_via = if req.urgent { page_channels(ctx)? } else { Vec::new() };
    Ok(Plan { payloads, bus, page: req.urgent, page_via })
}

/// The page channels for `--urgent`: `[route] page` in its order (each must be configured and able to
/// page), else every configured page channel in [`DEFAULT_PAGE_ORDER`].
fn page_channels(ctx: &RouteContext) -> Result<Vec<String>, PlanError> {
    let pages = |name: &str| ctx.channels.get(name).is_some_and(|c| c.pages);
    let out: Vec<String> = match &ctx.page_order {
        Some(order) => {
            if let Some(bad) = order.iter().find(|n| !pages(n)) {
                return Err(PlanError(format!(
                    "[route] page lists {bad}, which is {} (page channels: sms, imessage, slack, discord, email)",
                    if ctx.channels.contains_key(bad.as_str()) { "not a page channel" } else { "not configured" }
                )));
            }
            order.clone()
        }
        None => DEFAULT_PAGE_ORDER.iter().filter(|n| pages(n)).map(|n| n.to_string()).collect(),
    };
    if out.is_empty() {
        return Err(PlanError(
            "--urgent pages a human, but no page channel is configured: add [sms] (with TWILIO_SID / TWILIO_TOKEN in the environment), [imessage], [slack] or [discord]".into(),
        ));
    }
    Ok(out)
}

/// The channels to try for one item: `via` alone if given (and able), else the preference order
/// filtered to what is configured and able to take it.
fn pick(
    kind: ParcelKind,
    size: u64,
    via: Option<&str>,
    order: &[&str],
    ctx: &RouteContext,
) -> Result<Vec<String>, PlanError> {
    let what = match kind {
        ParcelKind::Document => "a document",
        ParcelKind::File => "a file",
        ParcelKind::Text => "a message",
        ParcelKind::Page => "a page",
    };
    if let Some(v) = via {
        let cap = &ctx.channels[v];
        return if cap.accepts(kind, size) {
            Ok(vec![v.to_string()])
        } else {
            Err(PlanError(format!("--via {v}: the {v} channel cannot take {what} of {size} bytes")))
        };
    }
    let out: Vec<String> = order
        .iter()
        .filter(|c| ctx.channels.get(**c).is_some_and(|cap| cap.accepts(kind, size)))
        .map(|c| c.to_string())
        .collect();
    if out.is_empty() {
        let wanted: Vec<String> = order.iter().filter(|c| **c != "local").map(|c| format!("[{c}]")).collect();
        return Err(PlanError(format!("sending {what} needs {} configured; none is", wanted.join(" or "))));
    }
    Ok(out)
}

impl Plan {
    /// A human rendering for `--dry-run`.
    pub fn describe(&self, req: &SendRequest) -> String {
        let mut out = String::new();
        for p in &self.payloads {
            out.push_str(&format!(
                "{:?} {:?} ({} bytes) -> {} ({}){}\n",
                p.kind,
                p.name,
                p.size,
                p.channels[0],
                p.reason,
                if p.channels.len() > 1 {
                    format!("; fallback: {}", p.channels[1..].join(", "))
                } else {
                    String::new()
                }
            ));
        }
        match self.bus {
            BusPart::Inline { size } => {
                out.push_str(&format!("message ({size} bytes) -> bus, inline, to {}\n", req.to))
            }
            BusPart::Pointer { with_note } => out.push_str(&format!(
                "pointer -> bus, to {}{}\n",
                req.to,
                if with_note { ", with the message as its note" } else { "" }
            )),
        }
        if self.page {
            out.push_str(&format!(
                "page -> {}, naming the bus message (the first that succeeds)\n",
                self.page_via.join(", then ")
            ));
        }
        out.push_str("(if a channel cannot take it now: the next one is tried, then the outbox)\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_channels::LatencyClass;

    fn cap(text: bool, documents: bool, files: bool, pages: bool, max: Option<u64>) -> Capability {
        Capability {
            max_size: max,
            latency: LatencyClass::Seconds,
            can_receive: false,
            text,
            documents,
            files,
            pages,
            lasting: true,
        }
    }

    fn ctx(names: &[&str]) -> RouteContext {
        let mut channels = BTreeMap::new();
        for n in names {
            let c = match *n {
                "bus" => cap(true, false, false, false, Some(65536)),
                "git" => cap(false, true, false, false, None),
                "drive" | "droplet" => cap(false, false, true, false, None),
                "local" => cap(false, true, true, false, None),
                "sms" => cap(false, false, false, true, Some(1600)),
                "slack" | "imessage" => cap(true, false, false, true, None),
                "folder" => cap(false, true, true, false, None),
                _ => unreachable!(),
            };
            channels.insert(n.to_string(), c);
        }
        RouteContext { inline_max: 48 * 1024, droplet_max: 256 << 20, channels, page_order: None }
    }

    fn file(name: &str, size: u64) -> FileInfo {
        FileInfo { path: name.into(), name: name.into(), size }
    }

    fn req(text: Option<&str>) -> SendRequest {
        SendRequest { to: "b".into(), text: text.map(str::to_string), ..Default::default() }
    }

    #[test]
    fn short_text_goes_inline_long_text_becomes_a_document() {
        let c = ctx(&["bus", "git"]);
        let p = plan(&req(Some("hi")), &c).unwrap();
        assert_eq!(p.bus, BusPart::Inline { size: 2 });
        assert!(p.payloads.is_empty());
        let long = "x".repeat(48 * 1024 + 1);
        let p = plan(&req(Some(&long)), &c).unwrap();
        assert_eq!(p.payloads[0].kind, ParcelKind::Document);
        assert_eq!(p.payloads[0].channels, ["git"]);
        assert_eq!(p.bus, BusPart::Pointer { with_note: false });
    }

    #[test]
    fn files_go_to_droplet_under_the_limit_then_drive() {
        let c = ctx(&["bus", "drive", "droplet"]);
        let mut r = req(Some("see attached"));
        r.files = vec![file("small.png", 1000), file("big.iso", 300 << 20)];
        let p = plan(&r, &c).unwrap();
        assert_eq!(p.payloads[0].channels, ["droplet", "drive"]);
        assert_eq!(p.payloads[1].channels, ["drive"]);
        assert_eq!(p.bus, BusPart::Pointer { with_note: true });
        r.keep = true;
        let p = plan(&r, &c).unwrap();
        assert_eq!(p.payloads[0].channels, ["drive"]);
    }

    #[test]
    fn embedded_default_uses_the_local_folder_and_missing_channels_are_named() {
        let c = ctx(&["bus", "local"]);
        let mut r = req(None);
        r.files = vec![file("a.txt", 10)];
        assert_eq!(plan(&r, &c).unwrap().payloads[0].channels, ["local"]);
        let c = ctx(&["bus"]);
        let e = plan(&r, &c).unwrap_err().0;
        assert!(e.contains("[droplet] or [drive]"), "{e}");
        let mut r = req(Some("x"));
        r.doc = true;
        assert!(plan(&r, &c).unwrap_err().0.contains("[git]"));
        let mut r = req(Some("x"));
        r.urgent = true;
        assert!(plan(&r, &c).unwrap_err().0.contains("[sms]"));
    }

    #[test]
    fn pages_follow_the_configured_order_of_page_channels() {
        let mut c = ctx(&["bus", "sms", "slack", "imessage"]);
        let mut r = req(Some("prod down"));
        r.urgent = true;
        assert_eq!(plan(&r, &c).unwrap().page_via, ["sms", "imessage", "slack"]);
        c.page_order = Some(vec!["slack".into(), "sms".into()]);
        assert_eq!(plan(&r, &c).unwrap().page_via, ["slack", "sms"]);
        c.page_order = Some(vec!["discord".into()]);
        assert!(plan(&r, &c).unwrap_err().0.contains("discord, which is not configured"));
        c.page_order = Some(vec!["bus".into()]);
        assert!(plan(&r, &c).unwrap_err().0.contains("not a page channel"));
        r.urgent = false;
        assert!(plan(&r, &c).unwrap().page_via.is_empty());
    }

    #[test]
    fn without_git_documents_and_files_can_use_the_shared_folder() {
        let c = ctx(&["bus", "folder"]);
        let mut r = req(Some("x"));
        r.doc = true;
        r.files = vec![file("a.bin", 5)];
        let p = plan(&r, &c).unwrap();
        assert_eq!(
            (p.payloads[0].channels.as_slice(), p.payloads[1].channels.as_slice()),
            (&["folder".to_string()][..], &["folder".to_string()][..])
        );
    }

    #[test]
    fn via_overrides_and_is_checked() {
        let c = ctx(&["bus", "drive", "droplet"]);
        let mut r = req(None);
        r.files = vec![file("big.iso", 300 << 20)];
        r.via = Some("droplet".into());
        assert_eq!(plan(&r, &c).unwrap().payloads[0].channels, ["droplet"]);
        r.via = Some("git".into());
        assert!(plan(&r, &c).unwrap_err().0.contains("not configured"));
        assert!(plan(&req(None), &c).unwrap_err().0.contains("nothing to send"));
    }
}
