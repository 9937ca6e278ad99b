//! The durable local outbox: every send is written here *before* anything is attempted, each step's
//! receipt is recorded as it completes, and the job is removed only when every step is done. A killed
//! process, a down server or a flaky link therefore loses nothing, and a retry reuses the same
//! idempotency keys so nothing is delivered twice.

use handoff_channels::{Parcel, Receipt};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
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
}

/// The outbox directory.
pub struct Outbox {
    dir: PathBuf,
    sent: PathBuf,
}

/// A job held under an exclusive lock (released on drop), so two processes never run it at once.
pub struct LockedJob {
    /// The job.
    pub job: Job,
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

    /// Writes a new job durably and returns it locked.
    pub fn create(&self, job: Job) -> std::io::Result<LockedJob> {
        let dir = self.dir.join(&job.id);
        std::fs::create_dir_all(&dir)?;
        let lock = File::create(dir.join("lock"))?;
        lock.lock()?;
        let locked = LockedJob { job, dir, _lock: lock };
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
            Err(e) => return Err(e),
        }
        ids.sort();
        Ok(ids)
    }

    /// Locks and loads a job; `None` when another process holds it (or it vanished).
    pub fn try_lock(&self, id: &str) -> std::io::Result<Option<LockedJob>> {
        let dir = self.dir.join(id);
        let lock = match File::options().create(true).truncate(false).write(true).open(dir.join("lock")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let text = match std::fs::read(dir.join("job.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let job: Job = serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("outbox job {id} is unreadable: {e}"))
        })?;
        Ok(Some(LockedJob { job, dir, _lock: lock }))
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

    /// Moves a finished (or permanently failed) job to the history and removes it from the outbox.
    pub fn finish(&self, locked: LockedJob) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.sent)?;
        let dest = self.sent.join(format!("{}.json", locked.job.id));
        write_atomic(&dest, &serde_json::to_vec_pretty(&locked.job).expect("job serialises"))?;
        // remove job.json first: a crash after this point leaves only an empty dir, never a second delivery
        std::fs::remove_file(locked.dir.join("job.json"))?;
        sync_dir(&locked.dir)?;
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
        write_atomic(&self.dir.join("job.json"), &serde_json::to_vec_pretty(&self.job).expect("job serialises"))
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
                std::fs::create_dir_all(&files)?;
                let dest = files.join(i.to_string());
                if std::fs::hard_link(&f.path, &dest).is_err() {
                    std::fs::copy(&f.path, &dest)?;
                }
                File::open(&dest)?.sync_all()?;
                if f.sha256.is_empty() {
                    // a queued file keeps the content it had when it was queued
                    f.sha256 = crate::hash::sha256_file(&dest)?.0;
                }
                f.path = dest;
            }
        }
        self.save()
    }
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename, so readers see old or new, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    {
        // 0600: jobs hold message text, which may hold what the user chose to send with --allow-secret
        let mut opts = File::options();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
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
            steps: vec![Step {
                role: Role::Inline,
                parcel: Parcel {
                    key: format!("{id}-0"),
                    from: "a".into(),
                    to: "b".into(),
                    kind: ParcelKind::Text,
                    title: None,
                    body: "hi".into(),
                    tags: vec![],
                    file: None,
                },
                channels: vec!["bus".into()],
                receipt: None,
                attempts: 0,
                last_error: None,
                failed: false,
                sealed: None,
            }],
            sealed_to: None,
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
