//! `handoff send`: plan, write the job to the outbox, deliver it, report.

use super::{Session, describe_report};
use crate::cli::SendArgs;
use crate::config::Settings;
use crate::executor::{Attempt, FlushOutcome, job_for, run_job};
use crate::exit;
use crate::router::{FileInfo, RouteContext, SendRequest, plan};
use crate::secrets::{FileScan, Scanner};
use anyhow::Context as _;
use std::io::Read;
use std::path::Path;

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

/// Runs `handoff send`.
pub async fn run(settings: Settings, a: SendArgs, json: bool) -> anyhow::Result<i32> {
    if a.to != handoff_channels::bus::BROADCAST {
        crate::config::validate_machine(&a.to)
            .map_err(|e| exit::with_code(exit::USAGE, anyhow::anyhow!("--to: {e}")))?;
    }
    let req = request_from_args(&a)?;
    // before anything is planned, queued or sent: nothing with a secret in it reaches the outbox
    if !a.allow_secret && refuse_secrets(&req, &Scanner::new(crate::secrets::known::gather(&settings)), json)? {
        return Ok(exit::DATA);
    }
    let mut req = req;
    if req.urgent {
        mark_urgent(&mut req, &settings);
    }
    let encrypt = !a.no_encrypt && (a.encrypt || settings.file.encrypt == crate::config::EncryptMode::Always);
    // before anything is planned or queued: a missing key is a clear error, nothing is sent
    let sealing = if encrypt {
        let s = crate::crypto::seal::Sealing::prepare(&settings, &req.to)?;
        for w in &s.warnings {
            eprintln!("handoff: warning: {w}");
        }
        Some(s)
    } else {
        None
    };
    let session = Session::open(settings)?;
    let route = RouteContext {
        inline_max: session.settings.file.route.inline_max.as_u64(),
        droplet_max: session.settings.file.route.droplet_max.as_u64(),
        channels: session.reg.capabilities(),
    };
    // the router plans on what travels: with encryption, the ciphertext and its size
    let travelling = match &sealing {
        Some(s) => s.request(&req)?,
        None => req.clone(),
    };
    let plan = plan(&travelling, &route).map_err(|e| exit::with_code(exit::CONFIG, e))?;
    if a.dry_run {
        if json {
            println!("{}", serde_json::json!({ "ok": true, "dry_run": true, "plan": plan, "encrypted": encrypt }));
        } else {
            print!("{}", plan.describe(&req));
            if let Some(s) = &sealing {
                println!("(end-to-end encrypted to {} key(s), this machine's included)", s.len());
            }
        }
        return Ok(exit::OK);
    }
    // earlier work first, so order is kept; all of it within the send deadline
    let limit = session.settings.file.budget.send;
    let deadline = tokio::time::Instant::now() + limit;
    let earlier = match tokio::time::timeout_at(deadline, session.flush_outbox()).await {
        Ok(r) => r?,
        Err(_) => FlushOutcome {
            trouble: vec![format!(
                "the outbox's earlier jobs were not delivered within the send deadline ({limit:?}, [budget] send); they stay queued"
            )],
            ..Default::default()
        },
    };
    // outbox trouble first
    if !json {
        super::say_trouble(&earlier.trouble);
    }
    // No sha256 pass here: the channel hashes each file while uploading it (one read, not two) and the
    // executor records that hash before the pointer is built; encrypting hashes the plaintext while it
    // reads it (Sealing::seal_job). A file that cannot be read fails before anything is queued.
    for f in req.files.iter() {
        std::fs::File::open(&f.path)
            .map_err(|e| exit::with_code(exit::DATA, anyhow::anyhow!("{}: {e}", f.path.display())))?;
    }
    let hashes = vec![String::new(); req.files.len()];
    let mut job = job_for(&travelling, &plan, &session.settings.machine, &hashes);
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
    let code = if report.failed > 0 {
        match report.worst {
            Some(handoff_channels::ErrorKind::Auth) => exit::AUTH,
            _ => exit::UNAVAILABLE,
        }
    } else if report.queued > 0 {
        exit::QUEUED
    } else {
        exit::OK
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": code == exit::OK, "exit_code": code, "outbox_trouble": earlier.trouble, "encrypted": encrypt, "receipt": report, "flushed_earlier": earlier.jobs })
        );
    } else {
        match code {
            exit::OK => {
                println!(
                    "sent{}{}:",
                    report.bus_message_id().map(|i| format!(" (bus msg {i})")).unwrap_or_default(),
                    if encrypt { ", end-to-end encrypted" } else { "" }
                )
            }
            exit::QUEUED => println!(
                "queued: not everything could be delivered now; it is in the outbox and the next `handoff` run (or `handoff flush`) delivers it"
            ),
            _ => println!(
                "failed (it stays in the outbox: `handoff outbox retry {}` tries again, `handoff outbox drop {}` discards it):",
                report.job, report.job
            ),
        }
        print!("{}", describe_report(&report));
    }
    if code == exit::QUEUED {
        eprintln!("handoff: queued in the outbox ({} step(s) waiting)", report.queued);
    }
    Ok(code)
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
    if let Some(sms) = &settings.file.sms {
        sms.to.iter().take(MAX_PAGED_TAGS).for_each(|n| add(paged_tag(n)));
    }
    #[cfg(not(feature = "sms"))]
    let _ = (settings, MAX_PAGED_TAGS, paged_tag);
}

/// Scans everything of `req` that leaves the machine as text; when a secret is found, says so (kind and
/// line, never the value) and returns true: the send is refused with exit 65.
fn refuse_secrets(req: &SendRequest, scanner: &Scanner, json: bool) -> anyhow::Result<bool> {
    let mut findings = Vec::new();
    if let Some(t) = &req.text {
        findings.extend(scanner.scan_text(t, if req.doc { "the document" } else { "the message text" }));
    }
    if let Some(t) = &req.title {
        findings.extend(scanner.scan_text(t, "--title"));
    }
    for t in &req.tags {
        findings.extend(scanner.scan_text(t, "--tag"));
    }
    for f in &req.files {
        let source = format!("--file {}", f.name);
        match scanner.scan_file(&f.path, &source) {
            Ok(FileScan::Text(found)) => findings.extend(found),
            Ok(FileScan::Binary) => {}
            Err(e) => return Err(exit::with_code(exit::DATA, anyhow::anyhow!("{}: {e}", f.path.display()))),
        }
    }
    if findings.is_empty() {
        return Ok(false);
    }
    let message = crate::secrets::refusal(&findings);
    if json {
        let v = serde_json::json!({ "ok": false, "exit_code": exit::DATA, "refused": "secret", "error": message, "findings": findings });
        println!("{v}");
    }
    eprintln!("handoff: {message}");
    Ok(true)
}
