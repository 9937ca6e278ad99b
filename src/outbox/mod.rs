//! The durable local outbox: every send is written here *before* anything is attempted, each step's
//! receipt is recorded as it completes, and the job is removed only when every step is done. A killed
//! process, a down server or a flaky link therefore loses nothing, and a retry reuses the same
//! idempotency keys so nothing is delivered twice.
//!
//! A job leaves the outbox only when it is delivered or the user drops it ([`Outbox::drop_job`]): a job
//! that failed (on an explicit `handoff flush` or [`Outbox::retry`]) stays, listed by [`Outbox::list`].
//! A job whose file cannot be read is moved to `outbox/quarantine/` with a note, so it never blocks the
//! others. Folders are 0700 and files 0600 (they hold message text).

mod manage;

pub use manage::{EntryState, OutboxEntry};

use handoff_channels::fsutil::{sync_dir, write_atomic_private, write_replacing_private};
use handoff_channels::{Parcel, Receipt};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// Store a payload (document or file) on a channel.
    Payload,
    /// Post the message inline on the bus.
    Inline,
    /// Post one pointer to every payload of the job, once they are all stored.
    Pointer {
        /// Text the user gave alongside the files.
        note: Option<String>,
        /// Title of the handoff.
        title: Option<String>,
    },
    /// Page a human by SMS, naming the bus message (or carrying the summary when the bus is down).
    Page {
        /// One-line summary.
        summary: String,
    },
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What it does.
    pub role: Role,
    /// What it carries (its `key` is the idempotency key, fixed for the life of the job).
    pub parcel: Parcel,
    /// Channels to try, in order.
    pub channels: Vec<String>,
    /// Set once delivered.
    pub receipt: Option<Receipt>,
    /// Attempts so far.
    pub attempts: u32,
    /// Last failure, for `flush` and `doctor`.
    pub last_error: Option<String>,
    /// A permanent failure: the step will not be retried.
    #[serde(default)]
    pub failed: bool,
    /// For an encrypted payload: what it is before encryption (the pointer carries it, encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedItem>,
}

impl Step {
    /// A step not tried yet: `parcel` for `role`, over `channels` in order.
    pub fn new(role: Role, parcel: Parcel, channels: Vec<String>) -> Self {
        Self { role, parcel, channels, receipt: None, attempts: 0, last_error: None, failed: false, sealed: None }
    }

    /// A short name of what the step does (`payload`, `inline`, `pointer`, `page`).
    pub fn role_name(&self) -> &'static str {
        match &self.role {
            Role::Payload => "payload",
            Role::Inline => "inline",
            Role::Pointer { .. } => "pointer",
            Role::Page { .. } => "page",
        }
    }
}

/// What an encrypted payload holds once decrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedItem {
    /// The name the recipient gets (the stored copy has a neutral name).
    pub name: String,
    /// Plaintext size.
    pub size: u64,
    /// Plaintext sha256 (hex).
    pub sha256: String,
}

/// One send, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique, time-ordered id.
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Sending machine.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// End-to-end encrypted: the age public keys the pointer is encrypted to when it is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_to: Option<Vec<String>>,
    /// When the user dropped it (`handoff outbox drop`): it is in the history, never delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
    /// The bus its bus steps were queued for (`BusApi::location`: no credentials), so a later run never
    /// posts them to another bus. Jobs queued before this was recorded have none: they go to the bus of the
    /// day, as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

impl Job {
    /// True when every step is delivered.
    pub fn done(&self) -> bool {
        self.steps.iter().all(|s| s.receipt.is_some())
    }
    /// Steps still to deliver (not failed permanently).
    pub fn pending(&self) -> usize {
        self.steps.iter().filter(|s| s.receipt.is_none() && !s.failed).count()
    }
    /// True when a step failed for good: the job waits for the user (`outbox retry` or `outbox drop`).
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.failed)
    }
    /// The last error of any step not delivered yet.
    pub fn last_error(&self) -> Option<&str> {
        self.steps.iter().filter(|s| s.receipt.is_none()).find_map(|s| s.last_error.as_deref())
    }
    /// Why this job's bus steps must not be posted to the bus at `location` (the one configured now): they
    /// were queued for another bus. The step stays queued (a transient error) with this note.
    pub fn bus_mismatch(&self, location: &str) -> Option<handoff_channels::ChannelError> {
        let queued = self.bus.as_deref().filter(|q| !same_bus(q, location))?;
        let show = |l: &str| handoff_channels::untrusted::inline(&handoff_channels::untrusted::redact_url(l));
        Some(handoff_channels::ChannelError::transient(format!(
            "queued for the bus at {}, but this machine's bus is now {}: not posted there; it stays queued until \
             that bus is configured again (then `handoff flush`), or drop it with `handoff outbox drop {}`",
            show(queued),
            show(location),
            self.id
        )))
    }
    /// A one-line summary of what the job carries (title, first line of text, or file names).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for s in &self.steps {
            match (&s.parcel.file, &s.parcel.title, &s.role) {
                (Some(f), _, _) => parts.push(f.name.clone()),
                (None, Some(t), _) => parts.push(t.clone()),
                (None, None, Role::Inline) => {
                    parts.push(s.parcel.body.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string())
                }
                _ => {}
            }
        }
        crate::executor::truncate_chars(&parts.join(", "), 80)
    }
}

/// Whether two bus locations name the same bus: an HTTP bus is its server (scheme, host and port; a
/// changed path or password is still that bus), the embedded one its file.
fn same_bus(a: &str, b: &str) -> bool {
    fn server(l: &str) -> &str {
        match l.find("://") {
            Some(i) => {
                let end = l[i + 3..].find(['/', '?', '#']).map_or(l.len(), |e| i + 3 + e);
                let authority_start = l[i + 3..end].rfind('@').map_or(i + 3, |at| i + 3 + at + 1);
                // host:port, without any user
                &l[authority_start..end]
            }
            None => l,
        }
    }
    let scheme = |l: &str| l.find("://").map(|i| l[..i].to_ascii_lowercase());
    scheme(a) == scheme(b) && server(a).eq_ignore_ascii_case(server(b))
}

/// What [`Outbox::take`] found.
pub enum Taken {
    /// The job, locked by this process.
    Job(LockedJob),
    /// Another process holds it (or it vanished meanwhile).
    Held,
    /// Its file was unreadable: it was moved to the quarantine; the note names the path and the fix.
    Quarantined(String),
}

/// The outbox directory.
pub struct Outbox {
    dir: PathBuf,
    sent: PathBuf,
}

/// Held while a flush runs (released on drop): one flush at a time per data directory.
pub struct FlushLock {
    _file: File,
}

/// Folders without a job file older than this are leftovers of a killed process (a live `create` writes
/// its job file within milliseconds).
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(60);
/// The folder of unreadable jobs, inside the outbox.
pub const QUARANTINE: &str = "quarantine";

/// A job held under an exclusive lock (released on drop), so two processes never run it at once.
pub struct LockedJob {
    /// The job.
    pub job: Job,
    /// Written by this process just now ([`Outbox::create`]), not taken from the outbox: no earlier run
    /// handed any of its parcels to a channel.
    pub fresh: bool,
    dir: PathBuf,
    _lock: File,
}

impl Outbox {
    /// Opens the outbox under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("outbox"), sent: data_dir.join("sent") }
    }

    /// Where queued file copies of a job live.
    pub fn files_dir(&self, job_id: &str) -> PathBuf {
        self.dir.join(job_id).join("files")
    }

    /// An error about the outbox as a whole, saying which folder that is.
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("the outbox {}: {e}", self.dir.display()))
    }

    /// Writes a new job durably and returns it locked.
    pub fn create(&self, job: Job) -> std::io::Result<LockedJob> {
        let dir = self.dir.join(&job.id);
        crate::config::private_dir(&self.dir).map_err(|e| self.named(e))?;
        crate::config::private_dir(&dir)?;
        let lock = private_file(&dir.join("lock"))?;
        lock.lock()?;
        let locked = LockedJob { job, fresh: true, dir, _lock: lock };
        locked.save()?;
        sync_dir(&self.dir)?;
        Ok(locked)
    }

    /// Ids of the jobs waiting, oldest first.
    pub fn ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e?;
                    if e.path().join("job.json").exists() {
                        ids.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.named(e)),
        }
        ids.sort();
        Ok(ids)
    }

    /// Locks and loads a job. An unreadable job file is moved to the quarantine (and reported), a
    /// temporary file a killed writer left is removed.
    pub fn take(&self, id: &str) -> std::io::Result<Taken> {
        let dir = self.dir.join(id);
        let lock = match File::options().create(true).truncate(false).write(true).open(dir.join("lock")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Taken::Held),
            Err(e) => return Err(e),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Taken::Held),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        remove_temporaries(&dir);
        let text = match std::fs::read(dir.join("job.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Taken::Held),
            Err(e) => return Ok(Taken::Quarantined(self.quarantine(id, &format!("cannot read it: {e}"))?)),
        };
        match serde_json::from_slice::<Job>(&text) {
            Ok(job) => Ok(Taken::Job(LockedJob { job, fresh: false, dir, _lock: lock })),
            Err(e) => {
                drop(lock);
                Ok(Taken::Quarantined(self.quarantine(id, &format!("it is not a job handoff can read ({e})"))?))
            }
        }
    }

    /// Locks and loads a job; `None` when another process holds it, it vanished, or it was unreadable
    /// (then it is in the quarantine: see [`Outbox::take`] for the note).
    pub fn try_lock(&self, id: &str) -> std::io::Result<Option<LockedJob>> {
        Ok(match self.take(id)? {
            Taken::Job(j) => Some(j),
            Taken::Held | Taken::Quarantined(_) => None,
        })
    }

    /// Moves an unreadable job to `outbox/quarantine/<id>` with a `NOTE.txt`; returns the note.
    fn quarantine(&self, id: &str, why: &str) -> std::io::Result<String> {
        let qdir = self.dir.join(QUARANTINE);
        crate::config::private_dir(&qdir)?;
        let dest = qdir.join(id);
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
        std::fs::rename(self.dir.join(id), &dest)?;
        let note = format!(
            "outbox job {id} was unreadable ({why}); it was moved to {} and everything else is delivered. \
             Look at its job.json there: repair it and move the folder back into the outbox, or delete it \
             (`handoff outbox drop {id}`)",
            dest.display()
        );
        write_atomic_private(&dest.join("NOTE.txt"), format!("{note}\n").as_bytes())?;
        tracing::warn!(job = id, "quarantined an unreadable outbox job");
        Ok(note)
    }

    /// Removes what killed processes left: job folders that never got (or already lost) their job file,
    /// once no process holds them and they are old enough not to be a send being written right now.
    pub fn sweep(&self) -> std::io::Result<usize> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for e in rd {
            let e = e?;
            let path = e.path();
            let name = e.file_name();
            if name == QUARANTINE || !e.file_type()?.is_dir() || path.join("job.json").exists() {
                continue;
            }
            let old =
                e.metadata()?.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > LEFTOVER_AGE);
            if !old {
                continue;
            }
            let Ok(lock) = File::options().write(true).open(path.join("lock")) else {
                std::fs::remove_dir_all(&path)?;
                removed += 1;
                continue;
            };
            if lock.try_lock().is_ok() && !path.join("job.json").exists() {
                std::fs::remove_dir_all(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Takes the outbox's flush lock: at once (`wait` = `None`) or waiting up to `wait`; `None` when
    /// another flush holds it.
    pub fn flush_lock(&self, wait: Option<std::time::Duration>) -> std::io::Result<Option<FlushLock>> {
        crate::config::private_dir(&self.dir).map_err(|e| self.named(e))?;
        // beside the outbox, not in it: the outbox holds job folders only
        let file = private_file(&self.dir.with_extension("lock")).map_err(|e| self.named(e))?;
        let until = wait.map(|w| std::time::Instant::now() + w);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(FlushLock { _file: file })),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            match until {
                Some(u) if std::time::Instant::now() < u => std::thread::sleep(std::time::Duration::from_millis(50)),
                _ => return Ok(None),
            }
        }
    }

    /// Reads a waiting job without locking it (for `outbox list`, `status`, `show`); `None` when absent.
    pub fn load(&self, id: &str) -> std::io::Result<Option<Job>> {
        match std::fs::read(self.dir.join(id).join("job.json")) {
            Ok(t) => serde_json::from_slice(&t).map(Some).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("outbox job {id} is unreadable: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Discards a waiting job the user chose to drop (`handoff outbox drop`): its record and its queued
    /// file copies go. The job is locked first, so one being delivered right now is not pulled away.
    pub fn discard(&self, locked: LockedJob) -> std::io::Result<()> {
        std::fs::remove_file(locked.dir.join("job.json"))?;
        let dir = locked.dir.clone();
        drop(locked);
        std::fs::remove_dir_all(&dir)
    }

    /// Number of jobs waiting.
    pub fn len(&self) -> usize {
        self.ids().map(|v| v.len()).unwrap_or(0)
    }

    /// True when no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves a delivered (or dropped) job to the history and removes it from the outbox.
    ///
    /// Without an fsync, unlike every other write of a job: what it records is durable elsewhere already
    /// (each delivery in the place it went: the server's repository, the bus's database). A killed process
    /// leaves the history record whole or absent (written aside and renamed into place) and the job file
    /// there or gone, in that order. Only a power loss within the kernel's writeback delay can bring the
    /// job file back; the job is then delivered again, which makes no second copy (every delivery is
    /// idempotent per key). This is the last write of a send, after the delivery: its fsyncs were about
    /// 1 % of a send over ssh, for a record that is a log.
    pub fn finish(&self, locked: LockedJob) -> std::io::Result<()> {
        crate::config::private_dir(&self.sent)?;
        let dest = self.sent.join(format!("{}.json", locked.job.id));
        write_replacing_private(&dest, &serde_json::to_vec_pretty(&locked.job).expect("job serialises"))?;
        // the job file goes after the record is in place: a crash in between leaves the job to be delivered
        // again (no second copy), never a job without its record
        std::fs::remove_file(locked.dir.join("job.json"))?;
        let dir = locked.dir.clone();
        drop(locked);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// The history of finished jobs, oldest first.
    pub fn history(&self) -> std::io::Result<Vec<Job>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.sent) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in rd {
            let p = e?.path();
            if let Ok(job) = serde_json::from_slice::<Job>(&std::fs::read(&p)?) {
                out.push(job);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

impl LockedJob {
    /// Writes the job's current state durably.
    pub fn save(&self) -> std::io::Result<()> {
        write_atomic_private(&self.dir.join("job.json"), &serde_json::to_vec_pretty(&self.job).expect("job serialises"))
    }

    /// Copies the user's files into the job (so a later flush does not depend on them staying put),
    /// pointing pending steps at the copies.
    pub fn snapshot_files(&mut self) -> std::io::Result<()> {
        let files = self.dir.join("files");
        for (i, step) in self.job.steps.iter_mut().enumerate() {
            if step.receipt.is_some() {
                continue;
            }
            if let Some(f) = step.parcel.file.as_mut() {
                if f.path.starts_with(&files) {
                    continue;
                }
                crate::config::private_dir(&files)?;
                let dest = files.join(i.to_string());
                if std::fs::hard_link(&f.path, &dest).is_err() {
                    std::fs::copy(&f.path, &dest)?;
                }
                File::open(&dest)?.sync_all()?;
                if f.sha256.is_empty() {
                    // a queued file keeps the content it had when it was queued
                    f.sha256 = handoff_channels::hashing::sha256_file(&dest)?.0;
                }
                f.path = dest;
            }
        }
        self.save()
    }
}

/// Opens (creating, mode 0600) a file for locking.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut opts = File::options();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// Removes temporary files (`.<uuid>.tmp`) a killed writer left in a job folder this process holds.
fn remove_temporaries(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_channels::ParcelKind;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            created: "t".into(),
            from: "a".into(),
            to: "b".into(),
            steps: vec![Step::new(
                Role::Inline,
                Parcel {
                    key: format!("{id}-0"),
                    from: "a".into(),
                    to: "b".into(),
                    kind: ParcelKind::Text,
                    title: None,
                    body: "hi".into(),
                    tags: vec![],
                    file: None,
                },
                vec!["bus".into()],
            )],
            sealed_to: None,
            dropped: None,
            bus: None,
        }
    }

    #[test]
    fn a_bus_step_goes_only_to_the_bus_it_was_queued_for() {
        let mut j = job("01");
        assert!(
            j.bus_mismatch("local:/d/bus.sqlite").is_none(),
            "a job queued before buses were recorded goes anywhere"
        );
        j.bus = Some("http://***@bus.example:8080".into());
        for same in ["http://bus.example:8080", "http://***@BUS.example:8080/moved#x", "http://bus.example:8080/"] {
            assert!(j.bus_mismatch(same).is_none(), "{same} is the same bus");
        }
        for other in
            ["local:/d/bus.sqlite", "https://bus.example:8080", "http://bus.example:8081", "http://evil.example:8080"]
        {
            let e = j.bus_mismatch(other).unwrap_or_else(|| panic!("{other} is another bus"));
            assert!(e.is_transient() && e.message.contains("outbox drop 01"), "{}", e.message);
        }
    }

    #[test]
    fn a_locked_job_is_skipped_by_others_and_finishing_moves_it_to_history() {
        let d = tempfile::tempdir().unwrap();
        let ob = Outbox::new(d.path());
        let held = ob.create(job("01")).unwrap();
        assert_eq!(ob.ids().unwrap(), ["01"]);
        assert!(ob.try_lock("01").unwrap().is_none(), "a second holder must not get the job");
        drop(held);
        let mut again = ob.try_lock("01").unwrap().expect("free after drop");
        again.job.steps[0].attempts = 3;
        again.save().unwrap();
        drop(again);
        let again = ob.try_lock("01").unwrap().unwrap();
        assert_eq!(again.job.steps[0].attempts, 3);
        ob.finish(again).unwrap();
        assert!(ob.ids().unwrap().is_empty());
        assert_eq!(ob.history().unwrap().len(), 1);
    }
}
