//! `handoff send`: plan, write the job to the outbox, deliver it, report.

use super::send_scan::ScanInFlight;
use super::{Session, describe_report};
use crate::cli::SendArgs;
use crate::config::Settings;
use crate::executor::{Attempt, FlushOutcome, job_for, run_job};
use crate::exit;
use crate::router::{FileInfo, RouteContext, SendRequest, plan};
use crate::secrets::Scanner;
use anyhow::Context as _;
use std::io::Read;
use std::path::Path;

/// Tag of a bus message sent with `--urgent`, so every reader can mark it (one definition, in the channels
/// crate).
pub use handoff_channels::bus::tags::URGENT_TAG;

/// Largest text read from stdin or a --doc file (documents are for prose, not payloads).
const MAX_TEXT: u64 = 16 * 1024 * 1024;

/// Builds the request from the command line (reads stdin / the document file, measures files).
pub fn request_from_args(a: &SendArgs) -> anyhow::Result<SendRequest> {
    let text = match a.text.as_deref() {
        None => None,
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .take(MAX_TEXT + 1)
                .read_to_string(&mut s)
                .context("reading the message from stdin (it must be UTF-8 text)")?;
            if s.len() as u64 > MAX_TEXT {
                return Err(exit::with_code(
                    exit::DATA,
                    anyhow::anyhow!("stdin holds more than 16 MiB of text; send it as --file instead"),
                ));
            }
            Some(s)
        }
        Some(t) if a.doc && Path::new(t).is_file() => {
            let len = std::fs::metadata(t)?.len();
            if len > MAX_TEXT {
                return Err(exit::with_code(
                    exit::DATA,
                    anyhow::anyhow!("{t} is {len} bytes; documents are at most 16 MiB — send it as --file"),
                ));
            }
            Some(std::fs::read_to_string(t).map_err(|e| {
                exit::with_code(exit::DATA, anyhow::anyhow!("{t}: {e} (a document must be UTF-8 text)"))
            })?)
        }
        Some(t)
            if a.doc
                && !t.contains(char::is_whitespace)
                && (t.ends_with(".md") || t.ends_with(".txt") || t.contains('/')) =>
        {
            return Err(exit::with_code(exit::DATA, anyhow::anyhow!("--doc {t}: no such file")));
        }
        Some(t) => Some(t.to_string()),
    };
    let text = text.filter(|t| !t.is_empty());
    let mut files = Vec::new();
    for p in &a.files {
        let meta = std::fs::metadata(p)
            .map_err(|e| exit::with_code(exit::DATA, anyhow::anyhow!("--file {}: {e}", p.display())))?;
        if !meta.is_file() {
            return Err(exit::with_code(
                exit::DATA,
                anyhow::anyhow!("--file {}: not a regular file (send a directory as an archive)", p.display()),
            ));
        }
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        files.push(FileInfo { path: std::path::absolute(p)?, name, size: meta.len() });
    }
    let title = a.title.clone().or_else(|| {
        if a.doc {
            text.as_deref().and_then(|t| t.lines().find(|l| l.starts_with("# "))).map(|l| l[2..].trim().to_string())
        } else {
            None
        }
    });
    Ok(SendRequest {
        to: a.to.clone(),
        text,
        doc: a.doc,
        title,
        files,
        urgent: a.urgent,
        keep: a.keep,
        tags: a.tags.clone(),
        via: a.via.clone(),
    })
}

/// What a send came to, before anything is printed (shared by the CLI and the MCP `send` tool).
#[derive(Debug)]
pub enum SendOutcome {
    /// The secret scanner refused the content (exit 65); nothing was planned, queued or sent.
    Refused {
        /// The refusal: kinds and places, never the values.
        message: String,
        /// What was found (kind and line, never the value).
        findings: Vec<crate::secrets::Finding>,
    },
    /// `--dry-run`: the plan, nothing sent.
    Planned {
        /// The plan.
        plan: crate::router::Plan,
        /// The plan for people.
        described: String,
        /// Keys it would be encrypted to (None: not encrypted).
        encrypted_to: Option<usize>,
    },
    /// The job ran: delivered, queued in the outbox or failed.
    Ran {
        /// The exit code it comes to (0, 75, 69, 77).
        code: i32,
        /// Whether it went end-to-end encrypted.
        encrypted: bool,
        /// What each step did.
        report: crate::executor::JobReport,
        /// Jobs from the outbox delivered first.
        earlier: Vec<crate::executor::JobReport>,
        /// Trouble the outbox had before this send (quarantined or failed jobs, a flush cut short): said first.
        trouble: Vec<String>,
    },
}

impl SendOutcome {
    /// The exit code of this outcome.
    pub fn code(&self) -> i32 {
        match self {
            SendOutcome::Refused { .. } => exit::DATA,
            SendOutcome::Planned { .. } => exit::OK,
            SendOutcome::Ran { code, .. } => *code,
        }
    }
}

/// Plans, scans and delivers a send; prints nothing on stdout (the MCP server's stdout is its transport).
pub async fn execute(settings: Settings, a: &SendArgs) -> anyhow::Result<SendOutcome> {
    if a.to != handoff_channels::bus::BROADCAST {
        crate::config::validate_machine(&a.to)
            .map_err(|e| exit::with_code(exit::USAGE, anyhow::anyhow!("--to: {e}")))?;
    }
    let req = request_from_args(a)?;
    if req.text.is_none() && req.files.is_empty() {
        return Err(exit::with_code(
            exit::USAGE,
            anyhow::anyhow!("nothing to send: give a message, `-` for stdin, or --file PATH"),
        ));
    }
    // Nothing with a secret in it reaches the outbox or connects anywhere, and a refusal wins over every
    // other error. The scan runs on a thread of its own while the send is checked and planned; its verdict
    // comes before anything is printed, started, queued or sent.
    let scan =
        (!a.allow_secret).then(|| ScanInFlight::start(&req, Scanner::new(crate::secrets::known::gather(&settings))));
    let prepared = prepare(settings, a, req);
    if let Some(scan) = scan {
        let findings = scan.verdict()?;
        if !findings.is_empty() {
            return Ok(SendOutcome::Refused { message: crate::secrets::refusal(&findings), findings });
        }
    }
    let Prepared { session, req, travelling, plan, sealing, recipient_note } = prepared?;
    if let Some(note) = recipient_note {
        eprintln!("{note}");
    }
    if let Some(s) = &sealing {
        for w in &s.warnings {
            eprintln!("handoff: warning: {w}");
        }
    }
    let encrypt = sealing.is_some();
    if a.dry_run {
        let described = plan.describe(&req);
        return Ok(SendOutcome::Planned { plan, described, encrypted_to: sealing.as_ref().map(|s| s.len()) });
    }
    // the first payload's channel starts what takes long (ssh's handshake to a git remote) now, while the
    // outbox is written; nothing is sent before the job is in the outbox, and what the delivery does not
    // take is hung up when this goes
    let _started_ahead = plan
        .payloads
        .first()
        .and_then(|p| p.channels.first())
        .and_then(|c| session.reg.channels.get(c))
        .map(|ch| StartedAhead::start(ch.clone()));
    // earlier work first, so order is kept; all of it within the send deadline
    let limit = session.settings.file.budget.send;
    // the deadline is for sends that should be quick (text, documents, pages); a file upload is bound by
    // its size, shows progress and is never cut short by it
    let deadline = tokio::time::Instant::now()
        + if req.files.is_empty() { limit } else { std::time::Duration::from_secs(365 * 24 * 3600) };
    let earlier = match tokio::time::timeout_at(deadline, session.flush_outbox()).await {
        Ok(r) => r?,
        Err(_) => FlushOutcome {
            trouble: vec![format!(
                "the outbox's earlier jobs were not delivered within the send deadline ({limit:?}, [budget] send); they stay queued"
            )],
            ..Default::default()
        },
    };
    // No sha256 pass here: the channel hashes each file while uploading it (one read, not two) and the
    // executor records that hash before the pointer is built; encrypting hashes the plaintext while it
    // reads it (Sealing::seal_job). A file that cannot be read fails before anything is queued.
    for f in req.files.iter() {
        std::fs::File::open(&f.path)
            .map_err(|e| exit::with_code(exit::DATA, anyhow::anyhow!("{}: {e}", f.path.display())))?;
    }
    let hashes = vec![String::new(); req.files.len()];
    let mut job = job_for(&travelling, &plan, &session.settings.machine, &hashes);
    job.bus = Some(session.reg.bus.location());
    if let Some(s) = &sealing
        && let Err(e) = s.seal_job(&mut job, &req, &session.outbox)
    {
        let _ = std::fs::remove_dir_all(session.outbox.files_dir(&job.id).parent().expect("job dir"));
        return Err(exit::with_code(exit::DATA, e));
    }
    let job_id = job.id.clone();
    let locked = session.outbox.create(job).context("writing the send to the outbox")?;
    let report = match tokio::time::timeout_at(
        deadline,
        run_job(&session.reg, &session.outbox, locked, Attempt::Explicit),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            // cut short: what was delivered is recorded step by step; the rest waits in the outbox
            eprintln!(
                "handoff: not delivered within the send deadline ({limit:?}, [budget] send); the rest waits in the outbox"
            );
            match session.outbox.take(&job_id)? {
                crate::outbox::Taken::Job(mut l) => {
                    l.snapshot_files()?;
                    crate::executor::report_of(&l.job, None)
                }
                _ => anyhow::bail!(
                    "outbox job {job_id} vanished after the send deadline; `handoff outbox list` shows what waits"
                ),
            }
        }
    };
    let code = exit::of_delivery(report.failed, report.queued, report.worst);
    Ok(SendOutcome::Ran { code, encrypted: encrypt, report, earlier: earlier.jobs, trouble: earlier.trouble })
}

/// A send checked and planned, not yet queued.
struct Prepared {
    session: Session,
    /// The request as the user gave it (plus handoff's own tags and a document's title).
    req: SendRequest,
    /// What travels: the request, encrypted when the send is.
    travelling: SendRequest,
    plan: crate::router::Plan,
    sealing: Option<crate::crypto::seal::Sealing>,
    /// Said once the send is not refused: the recipient is a machine not seen yet.
    recipient_note: Option<String>,
}

/// Checks the recipient, prepares encryption, opens the channels and plans `req`, while the secret scan
/// runs: everything here stays in this process.
fn prepare(settings: Settings, a: &SendArgs, mut req: SendRequest) -> anyhow::Result<Prepared> {
    let recipient_note = if !a.new_machine && !a.dry_run { check_recipient(&settings, &req.to)? } else { None };
    if req.urgent {
        mark_urgent(&mut req, &settings);
    }
    let encrypt = !a.no_encrypt && (a.encrypt || settings.file.encrypt == crate::config::EncryptMode::Always);
    // before anything is planned or queued: a missing key is a clear error, nothing is sent
    let sealing = if encrypt { Some(crate::crypto::seal::Sealing::prepare(&settings, &req.to)?) } else { None };
    let session = Session::open(settings)?;
    let route = RouteContext {
        inline_max: session.settings.file.route.inline_max.as_u64(),
        channels: session.reg.capabilities(),
        page_order: session.settings.file.route.page.clone(),
    };
    if req.title.is_none()
        && crate::router::text_is_a_document(&req, &route)
        && let Some(t) = req.text.as_deref()
    {
        // text that becomes a document (too long for the bus, --doc, --via a document channel): its first
        // line names it, not "handoff"
        let first = t.lines().map(|l| l.trim().trim_start_matches('#').trim()).find(|l| !l.is_empty());
        req.title = first.map(|l| crate::executor::truncate_chars(l, 80));
    }
    // the router plans on what travels: with encryption, the ciphertext and its size
    let travelling = match &sealing {
        Some(s) => s.request(&req)?,
        None => req.clone(),
    };
    let plan = plan(&travelling, &route)
        .map_err(|e| exit::with_code(exit::CONFIG, anyhow::anyhow!("{}", routing_error(&req, &route, &e.0))))?;
    Ok(Prepared { session, req, travelling, plan, sealing, recipient_note })
}

/// A channel's connection started ahead ([`handoff_channels::Channel::preconnect`]); whatever the
/// delivery did not take is hung up when this is dropped.
struct StartedAhead(std::sync::Arc<dyn handoff_channels::Channel>);

impl StartedAhead {
    fn start(ch: std::sync::Arc<dyn handoff_channels::Channel>) -> Self {
        ch.preconnect();
        Self(ch)
    }
}

impl Drop for StartedAhead {
    fn drop(&mut self) {
        self.0.hang_up_preconnect();
    }
}

/// Tags an urgent send's bus message `urgent`, plus one page record per number the page goes to
/// (`paged:<hash>`), so the bus server can route a person's SMS answer back to this machine's message.
fn mark_urgent(req: &mut SendRequest, settings: &Settings) {
    use handoff_channels::bus::tags::{MAX_PAGED_TAGS, URGENT_TAG, paged_tag};
    let mut add = |t: String| {
        if !req.tags.contains(&t) {
            req.tags.push(t);
        }
    };
    add(URGENT_TAG.to_string());
    #[cfg(feature = "sms")]
    if let Some(sms) = &settings.file.channels.sms {
        sms.to.iter().take(MAX_PAGED_TAGS).for_each(|n| add(paged_tag(n)));
    }
    #[cfg(not(feature = "sms"))]
    let _ = (settings, MAX_PAGED_TAGS, paged_tag);
}

/// Refuses a recipient that is probably a typo of a known machine (differs only in case, or by an edit or
/// two): "did you mean X?", exit 2, nothing posted. A name that resembles nothing known is accepted with a
/// note (returned, for the caller to print once the send is not refused). `--new-machine` skips the check.
fn check_recipient(settings: &Settings, to: &str) -> anyhow::Result<Option<String>> {
    if to == handoff_channels::bus::BROADCAST {
        return Ok(None);
    }
    let known = crate::known::machines(settings);
    if known.contains(to) {
        return Ok(None);
    }
    if let Some(k) = crate::known::did_you_mean(to, &known) {
        return Err(exit::with_code(
            exit::USAGE,
            anyhow::anyhow!(
                "--to {to}: no machine of that name is known; did you mean {k}? (nothing was sent; if {to} is a new machine, send again with --new-machine)"
            ),
        ));
    }
    Ok(Some(format!(
        "handoff: note: no machine named {to} has been seen yet; it gets the message when it first runs `handoff sync`"
    )))
}

/// A routing error that says what the user asked for and the one command that makes it possible.
fn routing_error(req: &SendRequest, route: &RouteContext, reason: &str) -> String {
    let has = |c: &str| route.channels.contains_key(c);
    let enable = |c: &str| match c {
        "git" => "handoff init --git-remote URL".to_string(),
        "drive" => "handoff init --drive-remote NAME".to_string(),
        "droplet" => "handoff init --droplet-host HOST".to_string(),
        other => format!("a [{other}] section in the config"),
    };
    if let Some(via) = req.via.as_deref().filter(|v| !has(v)) {
        if via == "local" {
            return format!(
                "--via local: the local payload folder is the embedded default's, used only when no config file is in use; here the channels are {} — pick one of them",
                route.channels.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        return format!("--via {via}: the {via} channel is not configured here; enable it with `{}`", enable(via));
    }
    if !req.files.is_empty() && !["droplet", "drive", "local"].iter().any(|c| has(c)) {
        return format!(
            "--file: sending files needs a place to store them and none is configured; enable one with `{}` (or `{}`)",
            enable("drive"),
            enable("droplet")
        );
    }
    if let Some(t) = &req.text
        && (req.doc || t.len() as u64 > route.inline_max)
        && !has("git")
        && !has("local")
    {
        let why = if req.doc {
            "--doc sends a document".to_string()
        } else {
            format!(
                "the text is {}, over the bus's inline_max of {}, so it goes as a document",
                handoff_channels::pointer::human_size(t.len() as u64),
                handoff_channels::pointer::human_size(route.inline_max)
            )
        };
        return format!("{why}, which needs a git repo: enable one with `{}`", enable("git"));
    }
    reason.to_string()
}

/// The one-line summary of a send that ran, for people (CLI) and agents (MCP).
pub fn headline(code: i32, report: &crate::executor::JobReport, encrypted: bool) -> String {
    match code {
        exit::OK => format!(
            "sent{}{}:",
            report.bus_message_id().map(|i| format!(" (bus msg {i})")).unwrap_or_default(),
            if encrypted { ", end-to-end encrypted" } else { "" }
        ),
        exit::QUEUED => "queued: not everything could be delivered now; it is in the outbox and the next `handoff` run (or `handoff flush`) delivers it".to_string(),
        _ => format!(
            "failed (it stays in the outbox: `handoff outbox retry {}` tries again, `handoff outbox drop {}` discards it):",
            report.job, report.job
        ),
    }
}

/// Runs `handoff send`.
pub async fn run(settings: Settings, a: SendArgs, json: bool) -> anyhow::Result<i32> {
    let outcome = execute(settings, &a).await?;
    match &outcome {
        SendOutcome::Refused { message, findings } => {
            if json {
                crate::output::json(
                    "error",
                    exit::DATA,
                    serde_json::json!({ "refused": "secret", "error": message, "findings": findings }),
                );
            }
            eprintln!("handoff: {message}");
        }
        SendOutcome::Planned { plan, described, encrypted_to } => {
            if json {
                crate::output::json(
                    "send_plan",
                    exit::OK,
                    serde_json::json!({ "dry_run": true, "plan": plan, "encrypted": encrypted_to.is_some() }),
                );
            } else {
                crate::out!("{described}");
                if let Some(n) = encrypted_to {
                    crate::outln!("(end-to-end encrypted to {n} key(s), this machine's included)");
                }
            }
        }
        SendOutcome::Ran { code, encrypted, report, earlier, trouble } => {
            if json {
                crate::output::json(
                    "send",
                    *code,
                    serde_json::json!({ "outbox_trouble": trouble, "encrypted": encrypted, "receipt": report, "flushed_earlier": earlier }),
                );
            } else {
                super::say_trouble(trouble);
                // a queued send: the ✗ lines say what failed, the one stderr line below says why it is 75
                if *code != exit::QUEUED {
                    crate::outln!("{}", headline(*code, report, *encrypted));
                }
                crate::out!("{}", describe_report(report));
            }
            if *code == exit::QUEUED {
                eprintln!(
                    "handoff: queued in the outbox ({} step(s) waiting); the next `handoff` run or `handoff flush` delivers it",
                    report.queued
                );
            }
        }
    }
    Ok(outcome.code())
}
