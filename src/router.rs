//! The router's plan (SPEC §3): where each piece of content goes, in which fallback order, and what
//! goes on the bus. A pure function of the request, the configured channels and the thresholds, so it is
//! unit-tested without any network and printed by `send --dry-run`.

use handoff_channels::{Capability, ChannelSections, ParcelKind};
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

/// The router's thresholds and the channels it may use (name → capability). Size limits are the
/// channels' own ([`Capability::max_size`], e.g. `[droplet] max_size`).
#[derive(Debug, Clone)]
pub struct RouteContext {
    /// Text above this becomes a document.
    pub inline_max: u64,
    /// Configured channels.
    pub channels: BTreeMap<String, Capability>,
    /// `[route] page`: the page channels in the order to try (`None` = every configured page channel, by
    /// latency then priority).
    pub page_order: Option<Vec<String>>,
}

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
    /// The channel a short message goes through with `--via` (a chat channel that takes text); `None` =
    /// the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_via: Option<String>,
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

/// Whether the request's text travels as a document (a payload) rather than as a bus message: `--doc`,
/// over `inline_max`, or `--via` a channel that takes documents and no files ride along.
pub fn text_is_a_document(req: &SendRequest, ctx: &RouteContext) -> bool {
    let Some(text) = &req.text else { return false };
    let size = text.len() as u64;
    let via_takes_documents = req
        .via
        .as_deref()
        .filter(|v| *v != handoff_channels::bus::NAME)
        .and_then(|v| ctx.channels.get(v))
        .is_some_and(|c| c.accepts(ParcelKind::Document, size));
    req.doc || size > ctx.inline_max || (req.files.is_empty() && via_takes_documents)
}

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
    let mut payloads = Vec::new();
    let mut bus = BusPart::Pointer { with_note: false };
    let mut text_via = None;
    let bus_name = handoff_channels::bus::NAME;
    let other_via = req.via.as_deref().filter(|v| *v != bus_name);
    let via_cap =
        |kind: ParcelKind, size: u64| other_via.and_then(|v| ctx.channels.get(v)).map(|c| c.accepts(kind, size));

    if let Some(text) = &req.text {
        let size = text.len() as u64;
        if text_is_a_document(req, ctx) {
            let channels = pick(ParcelKind::Document, size, other_via, false, ctx)?;
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
            if let Some(v) = other_via {
                // a channel that takes short messages (a chat webhook) carries it instead of the bus
                if via_cap(ParcelKind::Text, size) != Some(true) {
                    return Err(PlanError(format!(
                        "--via {v}: the {v} channel cannot take a short message (use --doc to make it a document)"
                    )));
                }
                text_via = Some(v.to_string());
            }
            bus = BusPart::Inline { size };
        } else {
            bus = BusPart::Pointer { with_note: true };
        }
    }
    for f in &req.files {
        let channels = pick(ParcelKind::File, f.size, req.via.as_deref(), req.keep, ctx)?;
        let first = &ctx.channels[&channels[0]];
        let reason = if req.via.is_some() {
            format!("--via {}", channels[0])
        } else if req.keep {
            format!("--keep asks for a lasting copy: {} keeps it", channels[0])
        } else {
            let skipped: Vec<String> = ctx
                .channels
                .iter()
                .filter(|(_, c)| c.files && !c.routes(ParcelKind::File, f.size))
                .filter_map(|(n, c)| c.routed_max.or(c.max_size).map(|m| format!("{n} takes at most {m} bytes")))
                .collect();
            let mut why =
                format!("{} takes {} ({:?} latency, priority {})", channels[0], f.name, first.latency, first.priority);
            if !skipped.is_empty() {
                why.push_str(&format!("; {}", skipped.join(", ")));
            }
            why
        };
        payloads.push(PlannedItem { kind: ParcelKind::File, name: f.name.clone(), size: f.size, channels, reason });
    }
    let page_via = if req.urgent { page_channels(ctx)? } else { Vec::new() };
    Ok(Plan { payloads, bus, page: req.urgent, page_via, text_via })
}

/// Every configured channel that takes a parcel of `kind` and `size` (only lasting ones with `keep`), in
/// the order to try: faster first, then higher priority, then by name; nothing after a channel that takes
/// no fallback (git).
pub fn candidates(kind: ParcelKind, size: u64, keep: bool, ctx: &RouteContext) -> Vec<String> {
    let mut found: Vec<(&String, &Capability)> =
        ctx.channels.iter().filter(|(_, c)| c.routes(kind, size) && (!keep || c.lasting)).collect();
    found.sort_by(|(an, a), (bn, b)| a.latency.cmp(&b.latency).then(b.priority.cmp(&a.priority)).then(an.cmp(bn)));
    let end = found.iter().position(|(_, c)| c.no_fallback).map_or(found.len(), |i| i + 1);
    found[..end].iter().map(|(n, _)| n.to_string()).collect()
}

/// The page channels for `--urgent`: `[route] page` in its order (each must be configured and able to
/// page), else every configured page channel by latency and priority.
fn page_channels(ctx: &RouteContext) -> Result<Vec<String>, PlanError> {
    let pages = |name: &str| ctx.channels.get(name).is_some_and(|c| c.pages);
    let out: Vec<String> = match &ctx.page_order {
        Some(order) => {
            if let Some(bad) = order.iter().find(|n| !pages(n)) {
                let pagers = ChannelSections::carrying(ParcelKind::Page).join(", ");
                return Err(PlanError(format!(
                    "[route] page lists {bad}, which is {} (page channels: {pagers})",
                    if ctx.channels.contains_key(bad.as_str()) { "not a page channel" } else { "not configured" }
                )));
            }
            order.clone()
        }
        None => {
            let mut all: Vec<(&String, &Capability)> = ctx.channels.iter().filter(|(_, c)| c.pages).collect();
            all.sort_by(|(an, a), (bn, b)| {
                a.latency.cmp(&b.latency).then(b.priority.cmp(&a.priority)).then(an.cmp(bn))
            });
            all.into_iter().map(|(n, _)| n.clone()).collect()
        }
    };
    if out.is_empty() {
        return Err(PlanError(format!(
            "--urgent pages a human, but no page channel is configured: add {}",
            sections(ParcelKind::Page, " or ")
        )));
    }
    Ok(out)
}

/// `[a], [b] or [c]`: the sections of this build's channels that carry `kind`.
fn sections(kind: ParcelKind, last_sep: &str) -> String {
    let names: Vec<String> = ChannelSections::carrying(kind).iter().map(|n| format!("[{n}]")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}{last_sep}{last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => "a channel that takes it (this build has none: rebuild with its feature)".into(),
    }
}

/// The channels to try for one item: `via` alone if given (and able), else [`candidates`].
fn pick(
    kind: ParcelKind,
    size: u64,
    via: Option<&str>,
    keep: bool,
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
    let out = candidates(kind, size, keep, ctx);
    if out.is_empty() {
        let lasting = if keep { "a lasting place for " } else { "" };
        return Err(PlanError(format!(
            "sending {lasting}{what} of {size} bytes needs {} configured; none that takes it is",
            sections(kind, " or ")
        )));
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
            BusPart::Inline { size } => out.push_str(&format!(
                "message ({size} bytes) -> {}, inline, to {}\n",
                self.text_via.as_deref().unwrap_or(handoff_channels::bus::NAME),
                req.to
            )),
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

    /// The capabilities the real channels declare (their own defaults).
    fn real(name: &str) -> Capability {
        use LatencyClass::*;
        let base = Capability::NOTHING;
        match name {
            "bus" => Capability { max_size: Some(65536), text: true, lasting: true, ..base },
            "git" => Capability {
                latency: TensOfSeconds,
                documents: true,
                lasting: true,
                priority: 10,
                no_fallback: true,
                ..base
            },
            "email" => Capability {
                latency: TensOfSeconds,
                max_size: Some(16 << 20),
                text: true,
                documents: true,
                pages: true,
                lasting: true,
                ..base
            },
            "drive" => Capability::file_store(true, 0),
            "droplet" => Capability { routed_max: Some(256 << 20), ..Capability::file_store(false, 10) },
            "folder" => Capability { documents: true, ..Capability::file_store(true, -5) },
            "local" => Capability { documents: true, ..Capability::file_store(true, -10) },
            "sms" => Capability::pager(Some(1600), false, 40),
            "imessage" => Capability::pager(Some(16 * 1024), false, 30),
            "slack" => Capability::pager(None, true, 20),
            "discord" => Capability::pager(None, true, 10),
            _ => unreachable!(),
        }
    }

    fn ctx(names: &[&str]) -> RouteContext {
        let channels = names.iter().map(|n| (n.to_string(), real(n))).collect();
        RouteContext { inline_max: 48 * 1024, channels, page_order: None }
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
        assert!(e.contains("needs") && e.contains("none that takes it"), "{e}");
        let mut d = req(Some("x"));
        d.doc = true;
        let mut u = req(Some("x"));
        u.urgent = true;
        if cfg!(all(feature = "drive", feature = "droplet", feature = "folder", feature = "git", feature = "sms")) {
            assert!(e.contains("[drive], [droplet] or [folder]"), "{e}");
            assert!(plan(&d, &c).unwrap_err().0.contains("[git]"));
            assert!(plan(&u, &c).unwrap_err().0.contains("[sms]"));
        } else {
            assert!(plan(&d, &c).is_err() && plan(&u, &c).is_err());
        }
    }

    #[test]
    fn the_order_comes_from_capabilities_and_priorities() {
        // documents: git (no fallback after it), else email, then the shared folder, then local
        let mut d = req(Some("x"));
        d.doc = true;
        assert_eq!(plan(&d, &ctx(&["bus", "git", "email", "folder"])).unwrap().payloads[0].channels, ["git"]);
        assert_eq!(
            plan(&d, &ctx(&["bus", "email", "folder", "local"])).unwrap().payloads[0].channels,
            ["email", "folder", "local"]
        );
        // files: droplet, drive, folder; --keep only lasting ones
        let mut f = req(None);
        f.files = vec![file("a.bin", 10)];
        let c = ctx(&["bus", "drive", "droplet", "folder"]);
        assert_eq!(plan(&f, &c).unwrap().payloads[0].channels, ["droplet", "drive", "folder"]);
        f.keep = true;
        assert_eq!(plan(&f, &c).unwrap().payloads[0].channels, ["drive", "folder"]);
        f.keep = false;
        // `priority = N` in a section reorders channels of the same latency
        let mut c = c;
        c.channels.get_mut("folder").unwrap().priority = 50;
        assert_eq!(plan(&f, &c).unwrap().payloads[0].channels, ["folder", "droplet", "drive"]);
        // the droplet's own max_size sends a larger file elsewhere unless --via asks for the droplet
        c.channels.get_mut("droplet").unwrap().routed_max = Some(5);
        let p = plan(&f, &c).unwrap();
        assert_eq!(p.payloads[0].channels, ["folder", "drive"]);
        assert!(p.payloads[0].reason.contains("droplet takes at most 5 bytes"), "{}", p.payloads[0].reason);
        f.via = Some("droplet".into());
        assert_eq!(plan(&f, &c).unwrap().payloads[0].channels, ["droplet"]);
        // a hard limit is one even with --via
        c.channels.get_mut("droplet").unwrap().max_size = Some(5);
        assert!(plan(&f, &c).unwrap_err().0.contains("cannot take a file of 10 bytes"));
    }

    #[test]
    fn a_short_message_can_go_through_a_chat_channel_but_not_a_pager_that_takes_no_text() {
        let c = ctx(&["bus", "slack", "discord", "sms"]);
        let mut r = req(Some("build is green"));
        for via in ["slack", "discord"] {
            r.via = Some(via.into());
            let p = plan(&r, &c).unwrap();
            assert_eq!((p.bus.clone(), p.text_via.as_deref()), (BusPart::Inline { size: 14 }, Some(via)));
            assert!(p.payloads.is_empty() && p.describe(&r).contains(&format!("-> {via}, inline")));
        }
        r.via = Some("sms".into());
        assert!(plan(&r, &c).unwrap_err().0.contains("cannot take a short message"), "an SMS is a page only");
        r.via = Some("bus".into());
        assert_eq!(plan(&r, &c).unwrap().text_via, None);
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
        // without [route] page: fastest first, then each channel's priority (email's drafts come last)
        let all = ctx(&["bus", "email", "discord", "slack", "imessage", "sms"]);
        assert_eq!(plan(&r, &all).unwrap().page_via, ["sms", "imessage", "slack", "discord", "email"]);
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
