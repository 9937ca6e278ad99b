//! `handoff droplet prune`: removes old payloads handoff stored on the SSH droplet, and nothing else.

use crate::cli::PruneArgs;
use crate::config::{ConfigError, Settings};
#[cfg(feature = "droplet")]
use crate::exit;
#[cfg(feature = "droplet")]
use handoff_channels::{AsAny, Channel, droplet::DropletChannel, pointer::human_size};

/// Runs `handoff droplet prune` in a build without the droplet channel: says so.
#[cfg(not(feature = "droplet"))]
pub async fn prune(settings: Settings, a: PruneArgs, json: bool) -> anyhow::Result<i32> {
    let _ = (settings, a, json);
    Err(ConfigError("this handoff was built without the droplet channel: rebuild it with `--features droplet`".into())
        .into())
}

/// Runs `handoff droplet prune`.
#[cfg(feature = "droplet")]
pub async fn prune(settings: Settings, a: PruneArgs, json: bool) -> anyhow::Result<i32> {
    if settings.file.channels.droplet.is_none() {
        return Err(ConfigError(
            "no [droplet] section in the config: add host = \"user@host\" and dir = \"/path\" under [droplet]".into(),
        )
        .into());
    }
    // the droplet the registry built from [droplet], not a second one beside it
    let session = super::Session::open(settings)?;
    let registered: &dyn Channel = session.reg.get(handoff_channels::droplet::NAME)?.as_ref();
    let ch = <dyn Channel as AsAny>::as_any(registered)
        .downcast_ref::<DropletChannel>()
        .ok_or_else(|| anyhow::anyhow!("the droplet channel in the registry is not the SSH droplet"))?;
    let report = ch.prune(a.older_than, a.dry_run).await?;
    if json {
        crate::output::json(
            "droplet_prune",
            exit::OK,
            serde_json::json!({ "host": ch.host(), "dir": ch.dir(), "dry_run": a.dry_run, "report": report }),
        );
    } else {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        // the names come from the droplet's directory listing: whoever can write there chose them
        for name in &report.removed {
            crate::outln!("{verb} {}/{}", ch.dir(), handoff_channels::untrusted::inline(name));
        }
        crate::outln!(
            "{verb} {} payload(s), {} on {}:{}; kept {} younger; left {} other entr(ies) alone",
            report.removed.len(),
            human_size(report.bytes_freed),
            ch.host(),
            ch.dir(),
            report.kept,
            report.foreign
        );
    }
    Ok(exit::OK)
}
