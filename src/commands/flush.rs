//! `handoff flush`: deliver what the outbox holds.

use super::{Session, describe_report};
use crate::config::Settings;
use crate::exit;

/// Runs every waiting job once.
pub async fn run(settings: Settings, json: bool) -> anyhow::Result<i32> {
    let s = Session::open(settings)?;
    let reports = s.flush_outbox().await?;
    let queued: usize = reports.iter().map(|r| r.queued).sum();
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    let left = s.outbox.len();
    if json {
        println!("{}", serde_json::json!({ "ok": failed == 0 && left == 0, "jobs": reports, "left_in_outbox": left }));
    } else if reports.is_empty() {
        println!("outbox empty: nothing to deliver");
    } else {
        for r in &reports {
            println!("job {}:", r.job);
            print!("{}", describe_report(r));
        }
        if left > 0 {
            println!("{left} job(s) still in the outbox ({queued} step(s) waiting); run `handoff flush` again later");
        }
    }
    Ok(if failed > 0 {
        exit::UNAVAILABLE
    } else if left > 0 {
        exit::QUEUED
    } else {
        exit::OK
    })
}
