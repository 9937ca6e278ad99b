//! `handoff reply ID TEXT`: a message back to the sender of message ID, tagged `re:ID` so `log`, `show`
//! and the web inbox can follow the thread. It is an ordinary `send` otherwise (outbox, exit codes).

use crate::cli::{ReplyArgs, SendArgs};
use crate::config::Settings;
use crate::exit;
use handoff_channels::untrusted::inline;

/// Runs `handoff reply`.
pub async fn run(settings: Settings, a: ReplyArgs, json: bool) -> anyhow::Result<i32> {
    let (id, text) = match (a.message, a.first, a.text) {
        (Some(id), text, None) => (id, text),
        (None, id, Some(text)) => (id, text),
        (Some(_), _, Some(_)) => return Err(usage("with -m ID, give only the TEXT: handoff reply -m ID TEXT")),
        (None, _, None) => return Err(usage("give the message id and the text: handoff reply ID TEXT")),
    };
    let state = crate::state::State::open(&settings.dirs.data)?;
    let Some(m) = state.find(&settings.machine, &id)? else {
        return Err(exit::with_code(
            exit::DATA,
            anyhow::anyhow!(
                "no received message {} here (`handoff log --show received` lists them; `handoff sync` fetches new ones)",
                inline(&id)
            ),
        ));
    };
    let to = m.from.clone();
    crate::config::validate_machine(&to).map_err(|e| {
        exit::with_code(
            exit::DATA,
            anyhow::anyhow!("message {} names a sender handoff cannot reply to: {e}", inline(&id)),
        )
    })?;
    let send = SendArgs {
        text: Some(text),
        to,
        new_machine: true,
        files: Vec::new(),
        doc: false,
        title: None,
        urgent: a.urgent,
        keep: false,
        tags: vec![format!("re:{id}")],
        via: None,
        dry_run: false,
        encrypt: false,
        no_encrypt: false,
        allow_secret: false,
    };
    super::send::run(settings, send, json).await
}

fn usage(msg: &str) -> anyhow::Error {
    exit::with_code(exit::USAGE, anyhow::anyhow!("{msg}"))
}
