//! `handoff status`: where things stand on one screen — this machine, the bus (reachable? unread?), the
//! outbox (how many, the oldest), the last sync, and each configured channel with its last error.

use super::Session;
use crate::commands::log::local_time;
use crate::config::Settings;
use crate::exit;
use handoff_channels::bus::MessageQuery;
use handoff_channels::untrusted::{inline, redact_url};
use serde::Serialize;
use std::collections::BTreeMap;

/// How long the bus may take to answer before it counts as unreachable here.
const BUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The bus as seen from here.
#[derive(Debug, Serialize)]
pub struct BusState {
    /// Where it is (credentials redacted).
    pub location: String,
    /// It answered.
    pub reachable: bool,
    /// Messages for this machine not yet read (500 = that many or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<usize>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outbox at a glance.
#[derive(Debug, Serialize)]
pub struct OutboxState {
    /// Jobs waiting.
    pub waiting: usize,
    /// The oldest waiting job's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_id: Option<String>,
    /// When it was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_created: Option<String>,
}

/// Runs `handoff status`.
pub async fn run(settings: Settings, json: bool) -> anyhow::Result<i32> {
    let s = Session::open(settings)?;
    let me = s.settings.machine.clone();
    let q = MessageQuery { to: Some(me.clone()), unread_by: Some(me.clone()), limit: Some(500), ..Default::default() };
    let bus = match tokio::time::timeout(BUS_TIMEOUT, s.reg.bus.messages(&q)).await {
        Ok(Ok(msgs)) => BusState {
            location: redact_url(&s.reg.bus.location()),
            reachable: true,
            unread: Some(msgs.iter().filter(|m| m.from != me).count()),
            error: None,
        },
        Ok(Err(e)) => BusState {
            location: redact_url(&s.reg.bus.location()),
            reachable: false,
            unread: None,
            error: Some(e.to_string()),
        },
        Err(_) => BusState {
            location: redact_url(&s.reg.bus.location()),
            reachable: false,
            unread: None,
            error: Some(format!("no answer within {}s", BUS_TIMEOUT.as_secs())),
        },
    };
    let waiting = super::outbox::waiting(&s.outbox)?;
    let outbox = OutboxState {
        waiting: waiting.len(),
        oldest_id: waiting.first().map(|(j, _)| j.id.clone()),
        oldest_created: waiting.first().map(|(j, _)| j.created.clone()),
    };
    // each channel's last error: from the steps still waiting for it
    let mut channels: BTreeMap<String, Option<String>> = s.reg.channels.keys().map(|k| (k.clone(), None)).collect();
    for (job, _) in &waiting {
        for step in job.steps.iter().filter(|st| st.receipt.is_none()) {
            if let Some(e) = &step.last_error {
                for c in &step.channels {
                    channels.insert(c.clone(), Some(e.clone()));
                }
            }
        }
    }
    let last_sync = crate::state::State::open(&s.settings.dirs.data)?.cursor(&me, LAST_SYNC)?;
    if json {
        let channels: Vec<_> =
            channels.iter().map(|(n, e)| serde_json::json!({ "name": n, "last_error": e })).collect();
        crate::output::json(
            "status",
            exit::OK,
            serde_json::json!({ "machine": me, "config": s.settings.file_path, "bus": bus, "outbox": outbox, "last_sync": last_sync, "channels": channels }),
        );
        return Ok(exit::OK);
    }
    let config = match &s.settings.file_path {
        Some(p) => p.display().to_string(),
        None => "no config file (embedded default)".into(),
    };
    crate::outln!("machine   {me} ({config})");
    match (&bus.unread, &bus.error) {
        (Some(n), _) => crate::outln!(
            "bus       {} reachable; {} unread{}",
            bus.location,
            n,
            if *n > 0 { " — `handoff sync` reads them" } else { "" }
        ),
        (None, e) => crate::outln!("bus       {} NOT reachable: {}", bus.location, inline(e.as_deref().unwrap_or(""))),
    }
    match (&outbox.oldest_id, &outbox.oldest_created) {
        (Some(id), Some(t)) => crate::outln!(
            "outbox    {} job(s) waiting; oldest {id} from {} — `handoff outbox list`",
            outbox.waiting,
            local_time(t)
        ),
        _ => crate::outln!("outbox    empty"),
    }
    crate::outln!("last sync {}", last_sync.as_deref().map(local_time).unwrap_or_else(|| "never".into()));
    for (name, e) in &channels {
        match e {
            Some(e) => crate::outln!("channel   {name}: last error: {}", inline(e)),
            None => crate::outln!("channel   {name}: ok"),
        }
    }
    Ok(exit::OK)
}

/// The state cursor under which `sync` records when it last ran.
pub const LAST_SYNC: &str = "@last-sync";
