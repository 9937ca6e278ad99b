//! `handoff doctor`: the new-machine checklist, one line per check with ✓/✗ and the fix.

use super::Session;
use crate::cli::DoctorArgs;
use crate::config::{Overrides, Settings};
use crate::exit;
use serde::Serialize;

/// One check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// Passed?
    pub ok: bool,
    /// Detail or the fix.
    pub detail: String,
}

/// Runs every check.
pub async fn run(o: &Overrides, _a: DoctorArgs, json: bool) -> anyhow::Result<i32> {
    let mut checks = Vec::new();
    let settings = match Settings::load(o) {
        Ok(s) => {
            checks.push(Check {
                check: "config".into(),
                ok: true,
                detail: match &s.file_path {
                    Some(p) => format!("{} is valid (machine {})", p.display(), s.machine),
                    None => format!("no config file: embedded default (machine {}, data in {})", s.machine, s.dirs.data.display()),
                },
            });
            Some(s)
        }
        Err(e) => {
            checks.push(Check { check: "config".into(), ok: false, detail: format!("{e:#}") });
            None
        }
    };
    if let Some(settings) = settings {
        match Session::open(settings) {
            Ok(s) => {
                for (name, ch) in &s.reg.channels {
                    match ch.health().await {
                        Ok(h) => checks.push(Check { check: name.clone(), ok: true, detail: format!("{}{}", h.check, h.detail.map(|d| format!(" ({d})")).unwrap_or_default()) }),
                        Err(e) => checks.push(Check { check: name.clone(), ok: false, detail: e.message }),
                    }
                }
                let waiting = s.outbox.len();
                checks.push(Check {
                    check: "outbox".into(),
                    ok: waiting == 0,
                    detail: if waiting == 0 { "empty".into() } else { format!("{waiting} job(s) waiting: run `handoff flush`") },
                });
            }
            Err(e) => checks.push(Check { check: "channels".into(), ok: false, detail: format!("{e:#}") }),
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    if json {
        println!("{}", serde_json::json!({ "ok": ok, "checks": checks }));
    } else {
        for c in &checks {
            println!("{} {}: {}", if c.ok { "✓" } else { "✗" }, c.check, c.detail);
        }
    }
    Ok(if ok { exit::OK } else { exit::FAILURE })
}
