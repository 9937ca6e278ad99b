//! What `handoff init` checks before it writes, as each channel's section asks
//! (`ChannelSection::init_probe`): the git remote exists and answers, the droplet host resolves and answers
//! ssh (its directory writable). A check that fails for good (a host name that does
//! not resolve, a repository that is not there, credentials refused) refuses the whole config, nothing
//! written; a check that could not be made now (the host is down, the network is away) is said, and the
//! config is written. `--no-check` skips them (an offline set-up).

use crate::config::ConfigError;
use crate::exit;
use handoff_channels::init::InitProbe;
use handoff_channels::untrusted::inline;
use handoff_channels::{Channel, ChannelError, Context, ErrorKind};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Longest one check may take (ssh's own connect timeout is 15 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// One check `init` made.
#[derive(Debug, Serialize)]
pub struct InitCheck {
    /// What was checked (`git`, `droplet`).
    pub check: String,
    /// It passed.
    pub ok: bool,
    /// What was found, or why it could not be checked.
    pub detail: String,
}

/// A failed check as init's error: refused for good → the config would not work (78), credentials
/// refused → 77; both name the fix and `--no-check`.
fn refusal(what: &str, e: &ChannelError) -> anyhow::Error {
    let text = format!(
        "{what}: {} — nothing was written; fix it and run `handoff init` again (or pass --no-check to write it unchecked)",
        inline(&e.message)
    );
    match e.kind {
        ErrorKind::Auth => exit::with_code(exit::AUTH, anyhow::anyhow!(text)),
        _ => ConfigError(text).into(),
    }
}

/// Runs one channel's health probe within [`CHECK_TIMEOUT`]: `Ok(Some(check))` when it passed or could
/// not be made now, `Err` when it failed for good.
async fn probe(what: &str, ch: &dyn Channel) -> anyhow::Result<InitCheck> {
    match tokio::time::timeout(CHECK_TIMEOUT, ch.health()).await {
        Ok(Ok(h)) => Ok(InitCheck { check: what.into(), ok: true, detail: h.check }),
        Ok(Err(e)) if e.is_transient() => Ok(InitCheck {
            check: what.into(),
            ok: false,
            detail: format!(
                "could not be checked now ({}); written anyway: `handoff doctor` checks it again",
                inline(&e.message)
            ),
        }),
        Ok(Err(e)) => Err(refusal(what, &e)),
        Err(_) => Ok(InitCheck {
            check: what.into(),
            ok: false,
            detail: format!(
                "no answer within {}s; written anyway: `handoff doctor` checks it again",
                CHECK_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// Checks what each channel section of the config `text` init is about to write asks for (its
/// [`init_probe`](handoff_channels::registration::ChannelSection::init_probe): the git remote exists
/// and answers, the droplet host answers ssh). Returns what was checked; an error (nothing may be
/// written) when a check failed for good.
pub async fn check(text: &str, home: &Path, data_dir: &Path, machine: &str) -> anyhow::Result<Vec<InitCheck>> {
    let file = crate::config::parse(text)
        .map_err(|e| anyhow::anyhow!("internal error: init wrote an invalid config ({e})"))?;
    let ctx = Context::quiet(machine, data_dir.to_path_buf());
    let mut out = Vec::new();
    for (name, wanted) in file.channels.init_probes(home) {
        match wanted {
            InitProbe::Refuse(e) => return Err(ConfigError(e.message).into()),
            InitProbe::Health { label } => {
                let Some(built) = file.channels.build_one(name, &ctx) else { continue };
                let ch = built.map_err(|e| refusal(&label, &e))?;
                out.push(probe(name, ch.as_ref()).await?);
            }
        }
    }
    Ok(out)
}
