//! `handoff outbox list|retry|drop`: see what waits in the outbox and decide about it. Implicit runs
//! (flush, the start of every network command) only retry; dropping work is the user's call, made here.

use super::{Session, describe_report};
use crate::cli::OutboxCommand;
use crate::config::Settings;
use crate::exit;
use crate::outbox::{Job, Outbox};
use handoff_channels::untrusted::inline;
use serde::Serialize;

/// One waiting job, as `outbox list` shows it.
#[derive(Debug, Serialize)]
pub struct Waiting {
    /// Job id (what `retry` and `drop` take).
    pub id: String,
    /// When it was queued (RFC 3339).
    pub created: String,
    /// Recipient.
    pub to: String,
    /// Steps still to deliver.
    pub pending: usize,
    /// Steps that failed for good (retried only by `outbox retry`).
    pub failed: usize,
    /// Attempts of its most tried step.
    pub attempts: u32,
    /// The last error of any step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What it carries: the first line of its text, a title or file names.
    pub summary: String,
}

/// The waiting jobs, oldest first.
pub fn waiting(outbox: &Outbox) -> anyhow::Result<Vec<(Job, Waiting)>> {
    let mut out = Vec::new();
    for id in outbox.ids()? {
        let Some(job) = outbox.load(&id)? else { continue };
        let entry = super::log::sent_entry(&job, true, None);
        let w = Waiting {
            id: job.id.clone(),
            created: job.created.clone(),
            to: job.to.clone(),
            pending: job.pending(),
            failed: job.steps.iter().filter(|s| s.failed).count(),
            attempts: job.steps.iter().map(|s| s.attempts).max().unwrap_or(0),
            last_error: job.steps.iter().rev().find_map(|s| s.last_error.clone()),
            summary: entry.summary,
        };
        out.push((job, w));
    }
    Ok(out)
}

/// Runs `handoff outbox ...`.
pub async fn run(settings: Settings, cmd: OutboxCommand, json: bool) -> anyhow::Result<i32> {
    match cmd {
        OutboxCommand::List => {
            let outbox = Outbox::new(&settings.dirs.data);
            let jobs: Vec<Waiting> = waiting(&outbox)?.into_iter().map(|(_, w)| w).collect();
            if json {
                crate::output::json("outbox", exit::OK, serde_json::json!({ "action": "list", "jobs": jobs }));
                return Ok(exit::OK);
            }
            if jobs.is_empty() {
                crate::outln!("outbox empty: nothing waits");
            }
            for w in &jobs {
                let failed = if w.failed > 0 { format!(", {} failed for good", w.failed) } else { String::new() };
                crate::outln!(
                    "{} {} → {}: {} ({} step(s) waiting{failed}, {} attempt(s))",
                    w.id,
                    crate::commands::log::local_time(&w.created),
                    inline(&w.to),
                    inline(&w.summary),
                    w.pending,
                    w.attempts
                );
                if let Some(e) = &w.last_error {
                    crate::outln!("    last error: {}", inline(e));
                }
            }
            if !jobs.is_empty() {
                crate::outln!("retry one now: handoff outbox retry ID · discard one: handoff outbox drop ID");
            }
            Ok(exit::OK)
        }
        OutboxCommand::Retry(a) => {
            let s = Session::open(settings)?;
            let mut locked = lock(&s.outbox, &a.id)?;
            // the user asked: steps that failed for good get another chance too
            for step in locked.job.steps.iter_mut().filter(|st| st.receipt.is_none()) {
                step.failed = false;
            }
            locked.save()?;
            let report =
                crate::executor::run_job(&s.reg, &s.outbox, locked, crate::executor::Attempt::Explicit).await?;
            let code = exit::of_delivery(report.failed, report.queued, report.worst);
            if json {
                crate::output::json(
                    "outbox",
                    code,
                    serde_json::json!({ "action": "retry", "id": a.id, "report": report }),
                );
            } else {
                crate::outln!("job {}:", a.id);
                crate::out!("{}", describe_report(&report));
            }
            Ok(code)
        }
        OutboxCommand::Drop(a) => {
            let outbox = Outbox::new(&settings.dirs.data);
            let locked = lock(&outbox, &a.id)?;
            outbox.discard(locked).map_err(|e| anyhow::anyhow!("cannot drop job {}: {e}", a.id))?;
            if json {
                crate::output::json("outbox", exit::OK, serde_json::json!({ "action": "drop", "id": a.id }));
            } else {
                crate::outln!("dropped job {}: nothing of it will be delivered", a.id);
            }
            Ok(exit::OK)
        }
    }
}

fn lock(outbox: &Outbox, id: &str) -> anyhow::Result<crate::outbox::LockedJob> {
    let known = outbox.ids()?;
    if !known.iter().any(|k| k == id) || id.contains(['/', '\\']) {
        return Err(exit::with_code(
            exit::DATA,
            anyhow::anyhow!("no job {} in the outbox (`handoff outbox list` shows the waiting ones)", inline(id)),
        ));
    }
    outbox.try_lock(id)?.ok_or_else(|| {
        exit::with_code(
            exit::UNAVAILABLE,
            anyhow::anyhow!("job {id} is being delivered by another handoff process right now; try again in a moment"),
        )
    })
}
