//! Turns a plan into an outbox job and runs jobs: each step tries its channels in order, falls back on
//! transient failures, records receipts as it goes, and leaves what could not be delivered in the outbox.

use crate::outbox::{Job, LockedJob, Outbox, Role, Step, Taken};
use crate::registry::Registry;
use crate::router::{BusPart, Plan, SendRequest};
use anyhow::Context as _;
use handoff_channels::parcel::FileRef;
use handoff_channels::pointer::{POINTER_TAG, Pointer, PointerItem};
use handoff_channels::{ChannelError, Parcel, ParcelKind, Receipt};
use serde::Serialize;

/// Builds the job for a planned send. Files must already be hashed (`hashes[i]` for `req.files[i]`).
pub fn job_for(req: &SendRequest, plan: &Plan, from: &str, hashes: &[String]) -> Job {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut steps = Vec::new();
    let parcel = |i: usize, kind, title: Option<String>, body: String, file: Option<FileRef>| Parcel {
        key: format!("{id}-{i}"),
        from: from.to_string(),
        to: req.to.clone(),
        kind,
        title,
        body,
        tags: req.tags.clone(),
        file,
    };
    let mut file_iter = req.files.iter().zip(hashes);
    for item in &plan.payloads {
        let i = steps.len();
        let p = match item.kind {
            ParcelKind::Document => {
                parcel(i, ParcelKind::Document, Some(item.name.clone()), req.text.clone().unwrap_or_default(), None)
            }
            _ => {
                let (f, sha) = file_iter.next().expect("one planned item per file");
                let fr = FileRef { path: f.path.clone(), name: f.name.clone(), size: f.size, sha256: sha.clone() };
                parcel(i, ParcelKind::File, None, String::new(), Some(fr))
            }
        };
        steps.push(Step::new(Role::Payload, p, item.channels.clone()));
    }
    let i = steps.len();
    match plan.bus {
        BusPart::Inline { .. } => steps.push(Step::new(
            Role::Inline,
            parcel(i, ParcelKind::Text, None, req.text.clone().unwrap_or_default(), None),
            // the bus, or the chat channel `--via` named for a short message
            vec![plan.text_via.clone().unwrap_or_else(|| handoff_channels::bus::NAME.into())],
        )),
        BusPart::Pointer { with_note } => {
            let mut p = parcel(i, ParcelKind::Text, req.title.clone(), String::new(), None);
            if !p.tags.iter().any(|t| t == POINTER_TAG) {
                p.tags.push(POINTER_TAG.into());
            }
            let note = if with_note { req.text.clone() } else { None };
            steps.push(Step::new(
                Role::Pointer { note, title: req.title.clone() },
                p,
                vec![handoff_channels::bus::NAME.into()],
            ));
        }
    }
    if plan.page {
        let i = steps.len();
        let summary = summary_of(req);
        steps.push(Step::new(
            Role::Page { summary: summary.clone() },
            parcel(i, ParcelKind::Page, None, summary, None),
            plan.page_via.clone(),
        ));
    }
    Job {
        id,
        created: handoff_channels::bus::store::now_ts(),
        from: from.into(),
        to: req.to.clone(),
        steps,
        sealed_to: None,
        dropped: None,
        bus: None,
    }
}

/// A one-line summary of a send: the title, else the first line of the text, else the file names.
pub fn summary_of(req: &SendRequest) -> String {
    let s = req
        .title
        .clone()
        .or_else(|| {
            req.text
                .as_deref()
                .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().trim_start_matches('#').trim().to_string())
        })
        .unwrap_or_else(|| req.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "));
    truncate_chars(&s, 100)
}

/// Cuts a string to `n` characters, adding `…` when cut.
pub fn truncate_chars(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// What happened to one step, for receipts.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Step role name.
    pub step: String,
    /// What it carried.
    pub what: String,
    /// `delivered`, `queued` or `failed`.
    pub status: &'static str,
    /// The receipt when delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The error otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of running a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Job id.
    pub job: String,
    /// Per-step outcome.
    pub steps: Vec<StepReport>,
    /// Steps left in the outbox.
    pub queued: usize,
    /// Steps that failed permanently.
    pub failed: usize,
    /// Steps every channel refused for good on an implicit attempt: still queued (only an explicit
    /// `handoff flush` or `outbox retry` marks a step failed), reported as outbox trouble.
    pub refused: usize,
    /// Recipient of the job.
    pub to: String,
    /// Worst error kind seen among failed steps (for the exit code).
    #[serde(skip)]
    pub worst: Option<handoff_channels::ErrorKind>,
}

/// Who asked for an attempt: decides whether a refusal for good marks the step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The opportunistic flush every command runs first (sync, hooks, fetch, send's earlier work): it
    /// only retries; a refusal for good is recorded and reported, the step stays queued.
    Implicit,
    /// The user asked for this delivery (`send`, `handoff flush`, `outbox retry`): a step every channel
    /// refuses for good is marked failed, and the job stays in the outbox until retried or dropped.
    Explicit,
}

/// What one flush of the outbox did, and the trouble it found (said first by every command).
#[derive(Debug, Default, Serialize)]
pub struct FlushOutcome {
    /// One report per job tried.
    pub jobs: Vec<JobReport>,
    /// Outbox trouble in one line each: refusals, failed jobs waiting for the user, quarantined jobs.
    pub trouble: Vec<String>,
    /// Another flush was running, so this one did nothing.
    pub busy: bool,
}

impl FlushOutcome {
    /// Jobs delivered completely.
    pub fn delivered(&self) -> usize {
        self.jobs.iter().filter(|r| r.queued == 0 && r.failed == 0).count()
    }
}

impl JobReport {
    /// The bus message id of the job (inline message or pointer), if posted.
    pub fn bus_message_id(&self) -> Option<&str> {
        self.steps
            .iter()
            .filter(|s| s.step == "inline" || s.step == "pointer")
            .find_map(|s| s.receipt.as_ref()?.message_id.as_deref())
    }
}

/// Runs every pending step of a locked job, saving after each, and files the job away when delivered. A
/// job with a failed step stays in the outbox (listed) until the user retries or drops it.
pub async fn run_job(
    reg: &Registry,
    outbox: &Outbox,
    mut locked: LockedJob,
    attempt: Attempt,
) -> anyhow::Result<JobReport> {
    let n = locked.job.steps.len();
    let mut worst = None;
    let mut refused = 0;
    for i in 0..n {
        if locked.job.steps[i].receipt.is_some() || locked.job.steps[i].failed {
            continue;
        }
        if let Err(reason) = prepare(&mut locked.job, i) {
            let payload_failed = locked.job.steps.iter().any(|s| s.role == Role::Payload && s.failed);
            locked.job.steps[i].last_error = Some(reason);
            // a pointer to a payload that can never be stored is never posted
            locked.job.steps[i].failed = payload_failed && matches!(locked.job.steps[i].role, Role::Pointer { .. });
            locked.save()?;
            continue;
        }
        let step = locked.job.steps[i].clone();
        // a page is an ordinary parcel whose words each page channel chooses
        let page_note = match &step.role {
            Role::Page { summary } => Some(crate::urgent::page_note(&locked.job, summary)),
            _ => None,
        };
        let mut errors: Vec<ChannelError> = Vec::new();
        for name in &step.channels {
            let Some(ch) = reg.channels.get(name) else {
                errors.push(ChannelError::permanent(format!(
                    "the {name} channel is not configured on this machine any more"
                )));
                continue;
            };
            if name == handoff_channels::bus::NAME
                && let Some(e) = locked.job.bus_mismatch(&reg.bus.location())
            {
                errors.push(e);
                continue;
            }
            let parcel = match &page_note {
                Some(note) => std::borrow::Cow::Owned(Parcel { body: ch.render_page(note), ..step.parcel.clone() }),
                None => std::borrow::Cow::Borrowed(&step.parcel),
            };
            // the one check of what a channel takes (no channel repeats it at the top of `deliver`)
            if !ch.capability().accepts(parcel.kind, parcel.size()) {
                let kind = format!("{:?}", parcel.kind).to_lowercase();
                errors.push(ChannelError::permanent(format!(
                    "the {name} channel cannot take a {kind} of {} bytes",
                    parcel.size()
                )));
                continue;
            }
            tracing::info!(step = i, channel = %name, "delivering");
            // a job this process just wrote: no channel has seen its keys (each channel is tried once here)
            let delivered = if locked.fresh && step.attempts == 0 {
                ch.deliver_new(&parcel).await
            } else {
                ch.deliver(&parcel).await
            };
            match delivered {
                Ok(mut r) => {
                    // receipts (and the pointers built from them) carry the registry's name
                    r.channel = name.clone();
                    errors.clear();
                    record_file_hash(&mut locked.job.steps[i], &r)?;
                    locked.job.steps[i].receipt = Some(r);
                    break;
                }
                // fall back to the next acceptable channel, whatever the failure
                Err(e) => {
                    tracing::warn!(channel = %name, error = %e, "delivery failed");
                    errors.push(e.context(name));
                }
            }
        }
        let s = &mut locked.job.steps[i];
        s.attempts += 1;
        if errors.is_empty() {
            s.last_error = None;
        } else {
            // queued while any channel may work later; failed only when every channel refused for good, and
            // then of the kind the user must deal with first (config, credentials, ...)
            let kind = if errors.iter().any(|e| e.is_transient()) {
                handoff_channels::ErrorKind::Transient
            } else {
                handoff_channels::ErrorKind::most_serious(errors.iter().map(|e| e.kind))
                    .unwrap_or(handoff_channels::ErrorKind::Permanent)
            };
            // only the user's own request gives up on a step; an opportunistic flush keeps it queued
            s.failed = kind != handoff_channels::ErrorKind::Transient && attempt == Attempt::Explicit;
            if kind != handoff_channels::ErrorKind::Transient {
                refused += 1;
            }
            worst = handoff_channels::ErrorKind::most_serious(worst.into_iter().chain([kind]));
            s.last_error = Some(errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "));
        }
        // a job with nothing left to do is written once more only by `finish` (into the history, before
        // its job file goes): the same crash window as saving here, one durable write fewer. A delivered
        // step without a file is written with the next step: delivering it again after a crash in between
        // makes no second copy (`Channel::deliver` is idempotent per key), so only a file's upload and the
        // hash it recorded are worth a durable write of their own.
        let later = locked.job.steps[i + 1..].iter().any(|s| s.receipt.is_none() && !s.failed);
        let written_with_next = errors.is_empty() && locked.job.steps[i].parcel.file.is_none() && later;
        if !locked.job.done() && !written_with_next {
            locked.save()?;
        }
    }
    let mut report = report_of(&locked.job, worst);
    report.refused = if attempt == Attempt::Implicit { refused } else { 0 };
    if locked.job.done() {
        outbox.finish(locked)?;
    } else {
        locked.snapshot_files()?;
    }
    Ok(report)
}

/// A file sent without a known sha256 (see `handoff send`) gets the one the channel computed while
/// uploading; when the channel sent nothing now (the object was already there), the local file is hashed.
/// Saved with the job before the pointer that carries it is built.
fn record_file_hash(step: &mut Step, receipt: &handoff_channels::Receipt) -> anyhow::Result<()> {
    if let Some(f) = step.parcel.file.as_mut()
        && f.sha256.is_empty()
    {
        f.sha256 = match &receipt.sha256 {
            Some(sha) => sha.clone(),
            None => {
                handoff_channels::hashing::sha256_file(&f.path)
                    .with_context(|| format!("hashing {}", f.path.display()))?
                    .0
            }
        };
    }
    Ok(())
}

/// Fills in a step whose content depends on earlier steps (pointer, page). `Err` = not ready yet.
fn prepare(job: &mut Job, i: usize) -> Result<(), String> {
    let role = job.steps[i].role.clone();
    match role {
        Role::Pointer { note, title } => {
            let mut items = Vec::new();
            for s in job.steps.iter().filter(|s| s.role == Role::Payload) {
                let Some(r) = &s.receipt else {
                    return Err(if s.failed {
                        "a payload failed; no pointer posted".into()
                    } else {
                        "waiting for the payloads".into()
                    });
                };
                let (size, sha256, mut name) = match &s.parcel.file {
                    Some(f) => (f.size, f.sha256.clone(), f.name.clone()),
                    None => {
                        let title = s.parcel.title.clone().unwrap_or_else(|| "handoff".into());
                        let name = if title.ends_with(".md") { title } else { format!("{title}.md") };
                        (
                            s.parcel.body.len() as u64,
                            handoff_channels::hashing::sha256_hex(s.parcel.body.as_bytes()),
                            name,
                        )
                    }
                };
                let plain = s.sealed.as_ref().map(|p| {
                    name = p.name.clone();
                    handoff_channels::pointer::PlainContent { size: p.size, sha256: p.sha256.clone() }
                });
                items.push(PointerItem {
                    channel: r.channel.clone(),
                    name,
                    size,
                    sha256,
                    uri: r.uri.clone().unwrap_or_default(),
                    plain,
                });
            }
            let body = Pointer { title, note, items }.to_body();
            job.steps[i].parcel.body = match &job.sealed_to {
                Some(keys) => crate::crypto::seal_with_keys(&body, keys)?,
                None => body,
            };
            Ok(())
        }
        Role::Page { summary } => {
            // the plain wording, kept with the job; each page channel renders its own when delivering
            job.steps[i].parcel.body = crate::urgent::page_note(job, &summary).plain();
            // a page is about the bus message: `re:<id>` lets a channel name it when it shortens
            if let crate::urgent::BusOutcome::Posted(id) = crate::urgent::bus_outcome(job) {
                let tag = format!("re:{id}");
                if !job.steps[i].parcel.tags.contains(&tag) {
                    job.steps[i].parcel.tags.push(tag);
                }
            }
            Ok(())
        }
        Role::Payload | Role::Inline => Ok(()),
    }
}

/// The report of a job as it stands.
pub fn report_of(job: &Job, worst: Option<handoff_channels::ErrorKind>) -> JobReport {
    let steps = job
        .steps
        .iter()
        .map(|s| StepReport {
            step: s.role_name().to_string(),
            what: match (&s.parcel.file, &s.parcel.title, s.parcel.kind) {
                (Some(f), _, _) => f.name.clone(),
                (None, Some(t), ParcelKind::Document) => t.clone(),
                _ => format!("{:?}", s.parcel.kind).to_lowercase(),
            },
            status: if s.receipt.is_some() {
                "delivered"
            } else if s.failed {
                "failed"
            } else {
                "queued"
            },
            receipt: s.receipt.clone(),
            error: s.last_error.clone(),
        })
        .collect();
    JobReport {
        job: job.id.clone(),
        steps,
        queued: job.pending(),
        failed: job.steps.iter().filter(|s| s.failed).count(),
        refused: 0,
        to: job.to.clone(),
        worst,
    }
}

/// Delivers what the outbox holds, one flush at a time (a second one waits up to `wait` for the lock,
/// then does nothing), oldest job first. Per recipient, send order is kept: once a job to a recipient
/// stays queued, later jobs to that recipient wait for the next flush. A job that failed for good waits
/// for the user and is named in the trouble; an unreadable one is quarantined and named; every other job
/// flows. Leftovers of killed processes are swept first.
pub async fn flush(
    reg: &Registry,
    outbox: &Outbox,
    attempt: Attempt,
    wait: Option<std::time::Duration>,
) -> anyhow::Result<FlushOutcome> {
    let mut out = FlushOutcome::default();
    let Some(_flushing) = outbox.flush_lock(wait)? else {
        out.busy = true;
        return Ok(out);
    };
    if let Err(e) = outbox.sweep() {
        tracing::warn!(error = %e, "cleaning up outbox leftovers");
    }
    let mut behind: std::collections::HashSet<String> = Default::default();
    for id in outbox.ids()? {
        let locked = match outbox.take(&id)? {
            Taken::Job(j) => j,
            Taken::Held => continue,
            Taken::Quarantined(note) => {
                out.trouble.push(note);
                continue;
            }
        };
        if locked.job.failed() {
            out.trouble.push(format!(
                "outbox job {id} to {} failed and waits for you: {}; `handoff outbox retry {id}` tries again, `handoff outbox drop {id}` discards it",
                locked.job.to,
                locked.job.last_error().unwrap_or("a step was refused")
            ));
            continue;
        }
        if behind.contains(&locked.job.to) {
            continue;
        }
        let to = locked.job.to.clone();
        let report = run_job(reg, outbox, locked, attempt).await?;
        if report.queued > 0 || report.failed > 0 {
            behind.insert(to);
        }
        out.trouble.extend(trouble_of(&report));
        out.jobs.push(report);
    }
    Ok(out)
}

/// The outbox trouble one job report holds, one line each (nothing for a job that is only waiting on a
/// transient failure).
pub fn trouble_of(r: &JobReport) -> Vec<String> {
    let error = || r.steps.iter().find_map(|s| s.error.clone()).unwrap_or_default();
    let mut out = Vec::new();
    if r.failed > 0 {
        out.push(format!(
            "outbox job {} to {} failed: {}; it stays in the outbox: `handoff outbox retry {}` tries again, `handoff outbox drop {}` discards it",
            r.job,
            r.to,
            error(),
            r.job,
            r.job
        ));
    } else if r.refused > 0 {
        out.push(format!(
            "outbox job {} to {} was refused: {}; it stays queued (fix the cause, then `handoff flush`; `handoff outbox drop {}` discards it)",
            r.job,
            r.to,
            error(),
            r.job
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::FileInfo;
    use async_trait::async_trait;
    use handoff_channels::bus::local::LocalBus;
    use handoff_channels::bus::{BusApi, BusChannel};
    use handoff_channels::{Capability, Channel, Context, Health};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file channel that fails with a fixed kind (or succeeds when `None`), counting calls (and those
    /// of them for a parcel never handed out before).
    struct Scripted {
        name: &'static str,
        fail: Option<handoff_channels::ErrorKind>,
        calls: AtomicUsize,
        new_calls: AtomicUsize,
    }

    impl Scripted {
        fn new(name: &'static str, fail: Option<handoff_channels::ErrorKind>) -> Self {
            Self { name, fail, calls: AtomicUsize::new(0), new_calls: AtomicUsize::new(0) }
        }
    }

    #[async_trait]
    impl Channel for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }
        fn capability(&self) -> Capability {
            Capability::file_store(true, 0)
        }
        async fn deliver(&self, p: &Parcel) -> Result<Receipt, ChannelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.fail {
                None => Ok(Receipt {
                    channel: self.name.into(),
                    uri: Some(format!("{}:{}", self.name, p.key)),
                    message_id: None,
                    detail: None,
                    sha256: None,
                }),
                Some(kind) => Err(ChannelError { kind, message: format!("{} says no", self.name) }),
            }
        }
        async fn deliver_new(&self, p: &Parcel) -> Result<Receipt, ChannelError> {
            self.new_calls.fetch_add(1, Ordering::SeqCst);
            self.deliver(p).await
        }
        async fn health(&self) -> Result<Health, ChannelError> {
            Ok(Health { check: self.name.into(), detail: None })
        }
    }

    fn setup(
        first: Option<handoff_channels::ErrorKind>,
        second: Option<handoff_channels::ErrorKind>,
    ) -> (tempfile::TempDir, Registry, Outbox, Job) {
        let dir = tempfile::tempdir().unwrap();
        let bus: Arc<dyn BusApi> = Arc::new(LocalBus::open(dir.path().join("bus.sqlite")).unwrap());
        let mut channels: std::collections::BTreeMap<String, Arc<dyn Channel>> = Default::default();
        channels.insert("bus".into(), Arc::new(BusChannel::new(bus.clone())));
        channels.insert("droplet".into(), Arc::new(Scripted::new("droplet", first)));
        channels.insert("drive".into(), Arc::new(Scripted::new("drive", second)));
        let reg = Registry {
            bus,
            channels,
            ctx: Context::quiet("a", dir.path().to_path_buf()),
            priorities: Default::default(),
        };
        let f = dir.path().join("x.bin");
        std::fs::write(&f, b"abc").unwrap();
        let req = SendRequest {
            to: "b".into(),
            files: vec![FileInfo { path: f, name: "x.bin".into(), size: 3 }],
            ..Default::default()
        };
        let plan = Plan {
            payloads: vec![crate::router::PlannedItem {
                kind: ParcelKind::File,
                name: "x.bin".into(),
                size: 3,
                channels: vec!["droplet".into(), "drive".into()],
                reason: String::new(),
            }],
            bus: BusPart::Pointer { with_note: false },
            page: false,
            page_via: vec![],
            text_via: None,
        };
        let job = job_for(&req, &plan, "a", &["00".repeat(32)]);
        let outbox = Outbox::new(dir.path());
        (dir, reg, outbox, job)
    }

    #[tokio::test]
    async fn a_failing_channel_falls_back_to_the_next_and_the_pointer_names_it() {
        use handoff_channels::ErrorKind::*;
        for first in [Transient, Permanent, Auth] {
            let (_d, reg, outbox, job) = setup(Some(first), None);
            let r = run_job(&reg, &outbox, outbox.create(job).unwrap(), Attempt::Explicit).await.unwrap();
            assert_eq!((r.queued, r.failed), (0, 0), "{first:?}");
            assert_eq!(r.steps[0].receipt.as_ref().unwrap().channel, "drive");
            let ptr = reg.bus.messages(&Default::default()).await.unwrap();
            assert!(ptr[0].body.contains("via drive"), "{}", ptr[0].body);
            assert!(outbox.ids().unwrap().is_empty(), "a delivered job leaves the outbox");
        }
    }

    #[tokio::test]
    async fn the_step_is_queued_while_any_channel_may_recover_and_failed_when_none_can() {
        use handoff_channels::ErrorKind::*;
        let (_d, reg, outbox, job) = setup(Some(Transient), Some(Permanent));
        let r = run_job(&reg, &outbox, outbox.create(job).unwrap(), Attempt::Explicit).await.unwrap();
        assert_eq!((r.queued, r.failed), (2, 0), "payload and pointer wait in the outbox");
        assert_eq!(outbox.ids().unwrap().len(), 1);
        assert!(r.steps[0].error.as_deref().unwrap().contains("droplet: droplet says no; drive: drive says no"));
        let (_d, reg, outbox, job) = setup(Some(Permanent), Some(Auth));
        let id = job.id.clone();
        // an opportunistic flush only retries: refused for good, yet still queued
        let r = run_job(&reg, &outbox, outbox.create(job).unwrap(), Attempt::Implicit).await.unwrap();
        assert_eq!((r.failed, r.refused, r.queued), (0, 1, 2), "{r:?}");
        assert!(trouble_of(&r)[0].contains("refused") && trouble_of(&r)[0].contains(&id));
        let r = flush(&reg, &outbox, Attempt::Implicit, None).await.unwrap();
        assert_eq!(r.jobs[0].failed, 0);
        assert_eq!(outbox.list().unwrap()[0].state, crate::outbox::EntryState::Queued);
        // the user's own flush gives up on it, and the job stays listed until dropped
        let r = flush(&reg, &outbox, Attempt::Explicit, None).await.unwrap();
        assert_eq!(r.jobs[0].failed, 2, "the payload and its pointer");
        assert_eq!(r.jobs[0].worst, Some(Auth));
        assert!(reg.bus.messages(&Default::default()).await.unwrap().is_empty(), "no pointer to a payload that failed");
        assert_eq!(outbox.ids().unwrap(), std::slice::from_ref(&id), "a failed job stays in the outbox");
        assert_eq!(outbox.list().unwrap()[0].state, crate::outbox::EntryState::Failed);
        let again = flush(&reg, &outbox, Attempt::Implicit, None).await.unwrap();
        assert!(again.jobs.is_empty() && again.trouble[0].contains("failed and waits for you"), "{again:?}");
        assert!(outbox.drop_job(&id).unwrap());
        assert!(outbox.ids().unwrap().is_empty());
        let h = outbox.history().unwrap();
        assert!(h[0].dropped.is_some());
        assert_eq!(h[0].steps[1].last_error.as_deref(), Some("a payload failed; no pointer posted"));
    }

    #[tokio::test]
    async fn a_channel_that_cannot_take_the_parcel_is_never_called_and_receipts_carry_the_registry_name() {
        let (_d, mut reg, outbox, mut job) = setup(None, None);
        // registered as "drive" by a channel that calls itself something else: the receipt says "drive"
        let impostor = Arc::new(Scripted::new("not-drive", None));
        reg.channels.insert("drive".into(), impostor.clone());
        job.steps[0].channels = vec!["droplet".into(), "drive".into()];
        // a document routed to file stores: refused by their capability, deliver never runs
        job.steps[0].parcel.kind = ParcelKind::Document;
        let id = job.id.clone();
        let r = run_job(&reg, &outbox, outbox.create(job).unwrap(), Attempt::Explicit).await.unwrap();
        assert_eq!(impostor.calls.load(Ordering::SeqCst), 0);
        let e = r.steps[0].error.as_deref().unwrap();
        assert!(e.contains("the droplet channel cannot take a document") && e.contains("the drive channel"), "{e}");
        assert!(outbox.drop_job(&id).unwrap());

        let (_d, mut reg, outbox, job) = setup(Some(handoff_channels::ErrorKind::Transient), None);
        reg.channels.insert("drive".into(), impostor.clone());
        let r = run_job(&reg, &outbox, outbox.create(job).unwrap(), Attempt::Explicit).await.unwrap();
        assert_eq!(impostor.calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.steps[0].receipt.as_ref().unwrap().channel, "drive");
    }

    #[tokio::test]
    async fn only_a_job_this_process_just_wrote_is_handed_out_as_new_and_only_on_its_first_try() {
        let (_d, mut reg, outbox, job) = setup(Some(handoff_channels::ErrorKind::Transient), None);
        let droplet = Arc::new(Scripted::new("droplet", Some(handoff_channels::ErrorKind::Transient)));
        let drive = Arc::new(Scripted::new("drive", Some(handoff_channels::ErrorKind::Transient)));
        reg.channels.insert("droplet".into(), droplet.clone());
        reg.channels.insert("drive".into(), drive.clone());
        let id = job.id.clone();
        let created = outbox.create(job).unwrap();
        assert!(created.fresh);
        let r = run_job(&reg, &outbox, created, Attempt::Explicit).await.unwrap();
        assert_eq!(r.queued, 2, "{r:?}");
        for ch in [&droplet, &drive] {
            assert_eq!((ch.calls.load(Ordering::SeqCst), ch.new_calls.load(Ordering::SeqCst)), (1, 1), "{}", ch.name);
        }
        // a later run takes it from the outbox: an earlier try may have left a copy, so it is not new
        let taken = outbox.try_lock(&id).unwrap().unwrap();
        assert!(!taken.fresh);
        run_job(&reg, &outbox, taken, Attempt::Implicit).await.unwrap();
        for ch in [&droplet, &drive] {
            assert_eq!((ch.calls.load(Ordering::SeqCst), ch.new_calls.load(Ordering::SeqCst)), (2, 1), "{}", ch.name);
        }
    }
}
