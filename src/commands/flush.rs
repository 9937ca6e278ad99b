//! `handoff flush`: deliver what the outbox holds.

use super::{Session, describe_report};
use crate::cli::FlushArgs;
use crate::config::Settings;
use crate::exit;
use crate::outbox::Outbox;

/// Runs every waiting job once (or, with `--background`, starts a detached process that does).
pub async fn run(settings: Settings, a: FlushArgs, json: bool) -> anyhow::Result<i32> {
    if a.background {
        return background(&settings, json);
    }
    let s = Session::open(settings)?;
    let reports = s.flush_outbox().await?;
    let queued: usize = reports.iter().map(|r| r.queued).sum();
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    let left = s.outbox.len();
    let worst_kind = reports.iter().filter_map(|r| r.worst).max_by_key(|k| exit::of_kind(*k) == exit::AUTH);
    let code = exit::of_delivery(failed, left, worst_kind);
    if json {
        crate::output::json("flush", code, serde_json::json!({ "jobs": reports, "left_in_outbox": left }));
    } else if reports.is_empty() {
        crate::outln!("outbox empty: nothing to deliver");
    } else {
        for r in &reports {
            crate::outln!("job {}:", r.job);
            crate::out!("{}", describe_report(r));
        }
        if left > 0 {
            crate::outln!(
                "{left} job(s) still in the outbox ({queued} step(s) waiting); run `handoff flush` again later"
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
    let logs = settings.dirs.data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join("flush.log");
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    use std::io::Write;
    writeln!(log, "--- {} background flush of {waiting} job(s)", handoff_channels::bus::store::now_ts())?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("flush").arg("--machine").arg(&settings.machine);
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
    if json {
        crate::output::json(
            "flush_background",
            exit::OK,
            serde_json::json!({ "background": true, "waiting": waiting, "pid": child.id(), "log": log_path }),
        );
    } else {
        crate::outln!("flushing {waiting} job(s) in the background (pid {}, log {})", child.id(), log_path.display());
    }
    Ok(exit::OK)
}
