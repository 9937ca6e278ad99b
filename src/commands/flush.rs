//! `handoff flush`: deliver what the outbox holds.

use super::{Session, describe_report, say_trouble};
use crate::cli::FlushArgs;
use crate::config::Settings;
use crate::executor::Attempt;
use crate::exit;
use crate::outbox::Outbox;

/// How long an explicit `handoff flush` waits for another flush to finish.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs every waiting job once (or, with `--background`, starts a detached process that does). An
/// explicit flush marks a step every channel refuses for good as failed (the job stays listed in the
/// outbox); `--implicit` (the background flush of a hook) only retries.
pub async fn run(settings: Settings, a: FlushArgs, json: bool) -> anyhow::Result<i32> {
    if a.background {
        return background(&settings, json);
    }
    let s = Session::open(settings)?;
    let attempt = if a.implicit { Attempt::Implicit } else { Attempt::Explicit };
    let outcome = crate::executor::flush(&s.reg, &s.outbox, attempt, Some(FLUSH_WAIT)).await?;
    let reports = &outcome.jobs;
    let queued: usize = reports.iter().map(|r| r.queued).sum();
    use crate::outbox::EntryState;
    let failed =
        s.outbox.list()?.iter().filter(|e| matches!(e.state, EntryState::Failed | EntryState::Quarantined)).count();
    let left = s.outbox.len();
    let worst_kind = reports.iter().filter_map(|r| r.worst).max_by_key(|k| exit::of_kind(*k) == exit::AUTH);
    let code = exit::of_delivery(failed, left + usize::from(outcome.busy), worst_kind);
    if json {
        crate::output::json(
            "flush",
            code,
            serde_json::json!({ "trouble": outcome.trouble, "busy": outcome.busy, "jobs": reports, "left_in_outbox": left }),
        );
    } else {
        say_trouble(&outcome.trouble);
        if outcome.busy {
            crate::outln!("another flush is still running after {}s; try again later", FLUSH_WAIT.as_secs());
        } else if reports.is_empty() && left == 0 {
            crate::outln!("outbox empty: nothing to deliver");
        }
        for r in reports {
            crate::outln!("job {}:", r.job);
            crate::out!("{}", describe_report(r));
        }
        if left > 0 {
            crate::outln!(
                "{left} job(s) still in the outbox ({queued} step(s) waiting); `handoff outbox list` shows them, `handoff flush` retries"
            );
        }
    }
    Ok(code)
}

/// Starts `handoff flush` as a detached process (its own session, no terminal, output appended to
/// `<data>/logs/flush.log`) and returns at once — for Claude Code's SessionEnd hook, which is killed after
/// about 1.5 s. Does nothing when the outbox is empty.
fn background(settings: &Settings, json: bool) -> anyhow::Result<i32> {
    let waiting = Outbox::new(&settings.dirs.data).len();
    if waiting == 0 {
        if json {
            crate::output::json("flush_background", exit::OK, serde_json::json!({ "background": false, "waiting": 0 }));
        } else {
            crate::outln!("outbox empty: nothing to deliver");
        }
        return Ok(exit::OK);
    }
    let (pid, log_path) = spawn(settings, waiting)?;
    if json {
        crate::output::json(
            "flush_background",
            exit::OK,
            serde_json::json!({ "background": true, "waiting": waiting, "pid": pid, "log": log_path }),
        );
    } else {
        crate::outln!("flushing {waiting} job(s) in the background (pid {pid}, log {})", log_path.display());
    }
    Ok(exit::OK)
}

/// Starts a detached implicit flush (it only retries) and returns its log file: what a hook leaves
/// behind when the outbox does not fit in its budget.
pub fn spawn_background(settings: &Settings) -> anyhow::Result<std::path::PathBuf> {
    let waiting = Outbox::new(&settings.dirs.data).len();
    Ok(spawn(settings, waiting)?.1)
}

fn spawn(settings: &Settings, waiting: usize) -> anyhow::Result<(u32, std::path::PathBuf)> {
    let logs = settings.dirs.data.join("logs");
    crate::config::private_dir(&logs)?;
    let log_path = logs.join("flush.log");
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    use std::io::Write;
    writeln!(log, "--- {} background flush of {waiting} job(s)", handoff_channels::bus::store::now_ts())?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    // the background run was not asked for by the user: it only retries
    cmd.arg("flush").arg("--implicit").arg("--machine").arg(&settings.machine);
    if let Some(p) = &settings.file_path {
        cmd.arg("--config").arg(p);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid() is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    let child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start the background flush: {e}"))?;
    Ok((child.id(), log_path))
}
