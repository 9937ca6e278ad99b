//! Managing the outbox by hand (`handoff outbox list|retry|drop`): what waits and why, a retry of one job
//! now, and dropping a job the user gives up on — the only way queued work ever leaves undelivered.

use super::{Job, Outbox, QUARANTINE, Taken};
use serde::Serialize;
use std::fs::File;
use std::path::PathBuf;

/// Where a job in the outbox stands, for `handoff outbox list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting: the next `handoff` run or `handoff flush` delivers it.
    Queued,
    /// A step failed for good on an explicit flush or retry: waits for `outbox retry` or `outbox drop`.
    Failed,
    /// Another process is delivering it right now.
    Busy,
    /// Its file could not be read; moved to `outbox/quarantine/` (see `note`).
    Quarantined,
}

/// One job in the outbox, as `handoff outbox list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    /// Job id (what `outbox retry` / `outbox drop` take).
    pub id: String,
    /// Where it stands.
    pub state: EntryState,
    /// When it was queued (empty when unreadable).
    pub created: String,
    /// Recipient (empty when unreadable).
    pub to: String,
    /// What it carries.
    pub summary: String,
    /// Steps still waiting.
    pub waiting: usize,
    /// The last error, or for a quarantined job what is wrong and the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its folder.
    pub path: PathBuf,
}

impl Outbox {
    /// Every job in the outbox (queued, failed, busy) and in its quarantine, oldest first.
    pub fn list(&self) -> std::io::Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            let path = self.dir.join(&id);
            let held = match File::options().write(true).open(path.join("lock")) {
                Ok(f) => match f.try_lock() {
                    Ok(()) => false,
                    Err(std::fs::TryLockError::WouldBlock) => true,
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                },
                Err(_) => false,
            };
            let job = std::fs::read(path.join("job.json")).ok().and_then(|t| serde_json::from_slice::<Job>(&t).ok());
            out.push(match job {
                Some(j) => OutboxEntry {
                    state: if held {
                        EntryState::Busy
                    } else if j.failed() {
                        EntryState::Failed
                    } else {
                        EntryState::Queued
                    },
                    created: j.created.clone(),
                    to: j.to.clone(),
                    summary: j.summary(),
                    waiting: j.steps.iter().filter(|s| s.receipt.is_none()).count(),
                    error: j.last_error().map(str::to_string),
                    id,
                    path,
                },
                None => OutboxEntry {
                    id: id.clone(),
                    state: if held { EntryState::Busy } else { EntryState::Queued },
                    created: String::new(),
                    to: String::new(),
                    summary: String::new(),
                    waiting: 0,
                    error: Some("unreadable: the next flush moves it to the quarantine".into()),
                    path,
                },
            });
        }
        let qdir = self.dir.join(QUARANTINE);
        if let Ok(rd) = std::fs::read_dir(&qdir) {
            let mut q: Vec<_> = rd.filter_map(Result::ok).filter(|e| e.path().is_dir()).collect();
            q.sort_by_key(|e| e.file_name());
            for e in q {
                let path = e.path();
                let note = std::fs::read_to_string(path.join("NOTE.txt")).unwrap_or_default();
                out.push(OutboxEntry {
                    id: e.file_name().to_string_lossy().into_owned(),
                    state: EntryState::Quarantined,
                    created: String::new(),
                    to: String::new(),
                    summary: String::new(),
                    waiting: 0,
                    error: Some(note.trim().to_string()),
                    path,
                });
            }
        }
        Ok(out)
    }

    /// Drops a job the user gives up on: a queued or failed job goes to the history marked dropped (never
    /// delivered afterwards), a quarantined one is deleted. `Ok(false)` when no such job is in the outbox;
    /// an error when another process is delivering it right now.
    pub fn drop_job(&self, id: &str) -> std::io::Result<bool> {
        if id.is_empty() || id.contains(['/', '\\']) || id == "." || id == ".." || id == QUARANTINE {
            return Ok(false);
        }
        let q = self.dir.join(QUARANTINE).join(id);
        if q.is_dir() {
            std::fs::remove_dir_all(&q)?;
            return Ok(true);
        }
        if !self.dir.join(id).join("job.json").exists() {
            return Ok(false);
        }
        match self.take(id)? {
            Taken::Job(mut locked) => {
                locked.job.dropped = Some(handoff_channels::bus::store::now_ts());
                self.finish(locked)?;
                Ok(true)
            }
            Taken::Quarantined(_) => {
                std::fs::remove_dir_all(self.dir.join(QUARANTINE).join(id))?;
                Ok(true)
            }
            Taken::Held => Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "outbox job {id} is being delivered by another handoff process right now; try again when it is done"
                ),
            )),
        }
    }

    /// Retries one job now, explicitly: a failed job gets a fresh start, and a step every channel refuses
    /// for good is reported failed (the job stays in the outbox until it is delivered or dropped).
    /// `Ok(None)` when no such job is waiting or another process holds it.
    pub async fn retry(
        &self,
        reg: &crate::registry::Registry,
        id: &str,
    ) -> anyhow::Result<Option<crate::executor::JobReport>> {
        let mut locked = match self.take(id)? {
            Taken::Job(j) => j,
            Taken::Held => return Ok(None),
            Taken::Quarantined(note) => anyhow::bail!(note),
        };
        for s in locked.job.steps.iter_mut().filter(|s| s.receipt.is_none()) {
            s.failed = false;
        }
        locked.save()?;
        Ok(Some(crate::executor::run_job(reg, self, locked, crate::executor::Attempt::Explicit).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Taken;

    #[test]
    fn an_unreadable_job_is_quarantined_with_a_note_and_dropping_it_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let ob = Outbox::new(d.path());
        let bad = d.path().join("outbox/0001");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("job.json"), b"{ not json").unwrap();
        let Taken::Quarantined(note) = ob.take("0001").unwrap() else { panic!("must be quarantined") };
        assert!(note.contains("quarantine") && note.contains("0001") && note.contains("outbox drop"), "{note}");
        assert!(ob.ids().unwrap().is_empty(), "no longer waiting");
        let listed = ob.list().unwrap();
        assert_eq!((listed.len(), listed[0].state), (1, EntryState::Quarantined));
        assert!(ob.drop_job("0001").unwrap());
        assert!(ob.list().unwrap().is_empty());
        assert!(!ob.drop_job("../x").unwrap(), "ids never name a path outside the outbox");
    }

    #[test]
    fn leftovers_of_a_killed_process_are_swept_but_a_fresh_folder_is_not() {
        let d = tempfile::tempdir().unwrap();
        let ob = Outbox::new(d.path());
        let old = d.path().join("outbox/0002");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("lock"), b"").unwrap();
        std::fs::write(old.join(".abc.tmp"), b"half").unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::open(&old).unwrap().set_modified(past).unwrap();
        let fresh = d.path().join("outbox/0003");
        std::fs::create_dir_all(&fresh).unwrap();
        assert_eq!(ob.sweep().unwrap(), 1);
        assert!(!old.exists() && fresh.exists());
    }

    #[test]
    fn one_flush_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let ob = Outbox::new(d.path());
        let held = ob.flush_lock(None).unwrap().expect("free");
        assert!(ob.flush_lock(Some(std::time::Duration::from_millis(100))).unwrap().is_none());
        drop(held);
        assert!(ob.flush_lock(None).unwrap().is_some());
    }
}
