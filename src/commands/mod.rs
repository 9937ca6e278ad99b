//! One module per command; shared set-up in [`Session`].

pub mod bus;
pub mod digest;
pub mod docs;
pub mod doctor;
pub mod doctor_checks;
pub mod doctor_fixes;
pub mod droplet;
pub mod fetch;
pub mod flush;
pub mod hooks;
pub mod hooks_mcp;
pub mod inbox;
pub mod init;
pub mod init_check;
pub mod keys;
pub mod log;
pub mod mcp;
pub mod outbox;
pub mod reply;
pub mod send;
pub mod send_scan;
pub mod show;
pub mod status;
pub mod sync;
pub mod sync_open;
pub mod watch;

use crate::config::Settings;
use crate::executor::{Attempt, FlushOutcome, JobReport};
use crate::outbox::Outbox;
use crate::registry::Registry;
use handoff_channels::Context;

/// Runs the [`crate::cli::DayCommand`]s (hooks, log, completions, man, init).
pub async fn day(cmd: crate::cli::DayCommand, o: &crate::config::Overrides, json: bool) -> anyhow::Result<i32> {
    use crate::cli::DayCommand;
    match cmd {
        DayCommand::Hooks(h) => hooks::run(h, &crate::config::Dirs::platform()?.home, json),
        DayCommand::Log(a) => log::run(Settings::load(o)?, a, json),
        DayCommand::Completions(a) => Ok(docs::completions(a.shell)),
        DayCommand::Man => docs::man(),
        DayCommand::Init(a) => init::run(o, *a, json).await,
        DayCommand::Config(crate::cli::ConfigCommand::Example) => Ok(init::example()),
    }
}

/// What a command that talks to channels needs.
pub struct Session {
    /// Resolved settings.
    pub settings: Settings,
    /// The channels.
    pub reg: Registry,
    /// The outbox.
    pub outbox: Outbox,
}

impl Session {
    /// Builds the channels for `settings`.
    pub fn open(settings: Settings) -> anyhow::Result<Self> {
        let ctx = Context {
            machine: settings.machine.clone(),
            data_dir: settings.dirs.data.clone(),
            progress: crate::progress::sink(),
        };
        crate::config::private_dir(&settings.dirs.data)
            .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", settings.dirs.data.display()))?;
        let reg = Registry::build(&settings, ctx)?;
        let outbox = Outbox::new(&settings.dirs.data);
        Ok(Self { settings, reg, outbox })
    }

    /// Delivers what earlier runs left in the outbox (every network command starts with this). Implicit:
    /// it only retries, never marks a job failed; when another flush is running it does nothing.
    pub async fn flush_outbox(&self) -> anyhow::Result<FlushOutcome> {
        crate::executor::flush(&self.reg, &self.outbox, Attempt::Implicit, None).await
    }
}

/// Says outbox trouble first, on stderr (text mode): one `handoff: ` line each.
pub fn say_trouble(trouble: &[String]) {
    for t in trouble {
        eprintln!("handoff: {}", handoff_channels::untrusted::inline(t));
    }
}

/// One line per job report, for people.
pub fn describe_report(r: &JobReport) -> String {
    let mut out = String::new();
    for s in &r.steps {
        let where_ = s
            .receipt
            .as_ref()
            .map(|rc| {
                let mut w = rc.channel.clone();
                if let Some(id) = &rc.message_id {
                    w.push_str(&format!(" msg {id}"));
                }
                if let Some(u) = &rc.uri {
                    w.push_str(&format!(" {u}"));
                }
                // a page's receipt names the message SIDs and the numbers reached
                if let Some(d) = rc.detail.as_ref().filter(|_| s.step == "page") {
                    w.push_str(&format!(" {d}"));
                }
                w
            })
            .unwrap_or_default();
        match s.status {
            "delivered" => out.push_str(&format!("  ✓ {} {}: {}\n", s.step, s.what, where_)),
            st => out.push_str(&format!("  ✗ {} {}: {st}: {}\n", s.step, s.what, s.error.as_deref().unwrap_or(""))),
        }
    }
    out
}
