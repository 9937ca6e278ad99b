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
    /// How to fix a failed check, when it is not already in `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(check: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self { check: check.into(), ok, detail: detail.into(), fix: None }
    }
}

/// The config file in use (or that there is none), with the machine name and the data directory.
fn config_line(s: &Settings) -> String {
    match &s.file_path {
        Some(p) => format!("{} is valid (machine {})", p.display(), s.machine),
        None => format!("no config file (machine {}, data in {})", s.machine, s.dirs.data.display()),
    }
}

/// Which bus is used and where that came from: the env file, the environment or the config.
fn bus_line(s: &Settings) -> String {
    match (&s.bus, &s.bus_from) {
        (crate::config::BusTarget::Http { url, .. }, Some(from)) => {
            format!("bus {} (from {from})", handoff_channels::untrusted::redact_url(url))
        }
        (crate::config::BusTarget::Http { url, .. }, None) => {
            format!("bus {}", handoff_channels::untrusted::redact_url(url))
        }
        (crate::config::BusTarget::Local { path }, _) => {
            format!("bus: the embedded default's local store {} (no BUS_URL anywhere)", path.display())
        }
    }
}

/// How long one channel's health check may take before it counts as failed.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs every check.
pub async fn run(o: &Overrides, a: DoctorArgs, json: bool) -> anyhow::Result<i32> {
    let mut checks = Vec::new();
    let settings = match Settings::load(o) {
        Ok(s) => {
            checks.push(Check::new("config", true, format!("{}; {}", config_line(&s), bus_line(&s))));
            Some(s)
        }
        Err(e) => {
            let mut c = Check::new("config", false, format!("{e:#}"));
            c.fix = Some(super::doctor_fixes::config_fix());
            checks.push(c);
            None
        }
    };
    checks.extend(super::doctor_checks::secret_files(settings.as_ref()));
    checks.extend(super::doctor_checks::encryption(settings.as_ref()));
    if let Some(settings) = settings {
        match Session::open(settings) {
            Ok(s) => {
                let env_file = super::doctor_checks::bus_env_file(&s.settings);
                let probes = s.reg.channels.iter().map(|(name, ch)| async move {
                    let r = tokio::time::timeout(CHECK_TIMEOUT, ch.health()).await;
                    (name.clone(), r)
                });
                for (name, r) in futures::future::join_all(probes).await {
                    checks.push(match r {
                        Ok(Ok(h)) => Check::new(
                            name.clone(),
                            true,
                            format!("{}{}", h.check, h.detail.map(|d| format!(" ({d})")).unwrap_or_default()),
                        ),
                        // the embedded documents repository (no [git] configured) is made by the first document
                        Ok(Err(_))
                            if name == "git"
                                && !s.settings.file.channels.configured("git")
                                && !s.settings.dirs.data.join("handoffs.git").exists() =>
                        {
                            Check::new(
                                name.clone(),
                                true,
                                format!(
                                    "no [git] configured: documents go to the embedded repository {}, created with the first one",
                                    s.settings.dirs.data.join("handoffs.git").display()
                                ),
                            )
                        }
                        Ok(Err(e)) => {
                            let mut c = Check::new(name.clone(), false, e.message.clone());
                            c.fix = Some(if name == "bus" {
                                super::doctor_checks::bus_fix(&e, &s.settings, env_file.as_deref())
                            } else {
                                super::doctor_fixes::channel_fix(&name, &e, &s.settings)
                            });
                            c
                        }
                        Err(_) => {
                            let mut c = Check::new(
                                name.clone(),
                                false,
                                format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
                            );
                            c.fix = Some(super::doctor_fixes::no_answer_fix(&name));
                            c
                        }
                    });
                }
                if a.send_test {
                    checks.push(super::doctor_checks::send_test(&s).await);
                }
                let waiting = s.outbox.len();
                let mut c = Check::new(
                    "outbox",
                    waiting == 0,
                    if waiting == 0 { "empty".into() } else { format!("{waiting} job(s) waiting") },
                );
                if waiting > 0 {
                    c.fix = Some("`handoff flush` delivers them (`handoff outbox list` shows what waits)".into());
                }
                checks.push(c);
            }
            Err(e) => {
                let mut c = Check::new("channels", false, format!("{e:#}"));
                c.fix = Some(super::doctor_fixes::config_fix());
                checks.push(c);
            }
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    let code = if ok { exit::OK } else { exit::FAILURE };
    if json {
        crate::output::json("doctor", code, serde_json::json!({ "checks": checks }));
    } else {
        for c in &checks {
            let fix = c.fix.as_deref().map(|f| format!(" — fix: {f}")).unwrap_or_default();
            crate::outln!("{} {}: {}{fix}", if c.ok { "✓" } else { "✗" }, c.check, c.detail);
        }
    }
    Ok(code)
}
