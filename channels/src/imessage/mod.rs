//! The iMessage channel: pages to a phone through the Mac's Messages app, driven by `osascript`. The
//! AppleScript is fixed ([`SCRIPT`]); the page text and the recipient reach it only as arguments
//! (`item 1 of argv`, `item 2 of argv`), never as part of its source, so no text can run code. Where no
//! `osascript` is found (any machine but a Mac), the channel says so in `doctor` and when paging; nothing
//! fails at start-up. Each page is sent at most once per idempotency key.

use crate::sent_ledger::{AttemptError, SentLedger};
use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The script `osascript` runs: text and recipient are its arguments, never its source.
pub const SCRIPT: &str = r#"on run argv
	tell application "Messages"
		set targetService to 1st account whose service type = iMessage
		send (item 1 of argv) to participant (item 2 of argv) of targetService
	end tell
end run
"#;

/// How long one `osascript` run may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `[imessage]` in handoff's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImessageConfig {
    /// Who is paged: a phone number (`+15552223333`) or the Apple ID email of an iMessage account.
    pub to: String,
    /// The `osascript` to run (default: the one found on `PATH`, `/usr/bin/osascript` on macOS).
    #[serde(default)]
    pub osascript: Option<PathBuf>,
    /// Among page channels `[route] page` does not order, the higher priority is paged first (default [`PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts).
pub const NAME: &str = "imessage";
/// This channel's own priority among channels of its latency.
pub const PRIORITY: i32 = 30;

/// The iMessage channel's flag of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImessageInitFlags {
    /// Page this phone number or Apple ID through iMessage (macOS).
    #[arg(long, value_name = "TO")]
    pub imessage_to: Option<String>,
}

impl crate::init::InitFlags for ImessageInitFlags {
    fn choose(&self, _place: &crate::init::InitPlace<'_>) -> Result<crate::init::InitChoice, ChannelError> {
        Ok(match &self.imessage_to {
            Some(to) => crate::init::InitChoice::text(format!("[{NAME}]\nto = {}\n", crate::init::toml_string(to))),
            None => crate::init::InitChoice::default(),
        })
    }
}

impl crate::registration::ChannelSection for ImessageConfig {
    type InitFlags = ImessageInitFlags;

    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::Page];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(ImessageChannel::from_config(self, ctx)?))
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }
}

/// Pages through Messages.
pub struct ImessageChannel {
    to: String,
    osascript: Option<PathBuf>,
    script_path: PathBuf,
    ledger: SentLedger,
}

impl ImessageChannel {
    /// Builds the channel, checking the recipient. Finding `osascript` waits until it is needed.
    pub fn from_config(cfg: &ImessageConfig, ctx: &Context) -> Result<Self, ChannelError> {
        let to = cfg.to.trim();
        let phone = to.starts_with('+') && to.len() > 4 && to[1..].chars().all(|c| c.is_ascii_digit());
        let email = to.contains('@') && !to.contains(char::is_whitespace) && !to.starts_with('@') && !to.ends_with('@');
        if !(phone || email) || to.chars().any(char::is_control) {
            return Err(ChannelError::permanent(format!(
                "[imessage] to = {:?} is neither a phone number in E.164 form (+15552223333) nor an Apple ID email",
                crate::untrusted::inline(to)
            )));
        }
        let dir = ctx.data_dir.join("imessage");
        Ok(Self {
            to: to.to_string(),
            osascript: cfg.osascript.clone(),
            script_path: dir.join("page.applescript"),
            ledger: SentLedger::new(dir.join("sent.sqlite")),
        })
    }

    /// The `osascript` to run, or why there is none.
    pub fn osascript(&self) -> Result<PathBuf, ChannelError> {
        let unavailable = || {
            ChannelError::permanent(
                "unavailable on this machine: no `osascript` on PATH (iMessage pages need macOS's Messages app); \
                 remove [imessage] here or list another page channel in [route] page",
            )
        };
        match &self.osascript {
            Some(p) if p.is_file() => Ok(p.clone()),
            Some(p) => Err(ChannelError::permanent(format!("[imessage] osascript = {} does not exist", p.display()))),
            None => find_on_path("osascript").ok_or_else(unavailable),
        }
    }

    /// Writes [`SCRIPT`] where `osascript` reads it (once; rewritten only if it differs).
    fn script(&self) -> Result<&Path, ChannelError> {
        if std::fs::read_to_string(&self.script_path).ok().as_deref() != Some(SCRIPT) {
            let dir = self.script_path.parent().expect("under the data dir");
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".page.{}.tmp", uuid::Uuid::new_v4().simple()));
            std::fs::write(&tmp, SCRIPT)?;
            std::fs::rename(&tmp, &self.script_path)?;
        }
        Ok(&self.script_path)
    }

    async fn run(&self, osascript: &Path, text: &str) -> Result<String, AttemptError> {
        let script = self.script().map_err(AttemptError::NotSent)?;
        let child = tokio::process::Command::new(osascript)
            .arg(script)
            .arg(text)
            .arg(&self.to)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                AttemptError::NotSent(ChannelError::permanent(format!("cannot run {}: {e}", osascript.display())))
            })?;
        let out = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| AttemptError::Uncertain(ChannelError::transient(format!("osascript: {e}"))))?,
            Err(_) => {
                return Err(AttemptError::Uncertain(ChannelError::transient(format!(
                    "osascript gave no answer within {}s; the page may have gone",
                    TIMEOUT.as_secs()
                ))));
            }
        };
        if out.status.success() {
            Ok(format!("sent by Messages to {}", mask(&self.to)))
        } else {
            let err = crate::untrusted::inline(String::from_utf8_lossy(&out.stderr).trim());
            Err(AttemptError::NotSent(ChannelError::permanent(format!(
                "Messages did not send the page ({}): {err}; check that Messages is signed in to iMessage",
                out.status
            ))))
        }
    }
}

/// `+1555…3333` → `+1…33`; `me@x.com` → `m…@x.com`: enough to recognise, not to copy.
fn mask(to: &str) -> String {
    match to.split_once('@') {
        Some((user, host)) => format!("{}…@{host}", user.chars().next().unwrap_or('?')),
        None => {
            let n = to.chars().count();
            format!(
                "{}…{}",
                to.chars().take(2).collect::<String>(),
                to.chars().skip(n.saturating_sub(2)).collect::<String>()
            )
        }
    }
}

/// The first executable `name` in `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            p.is_file()
        }
    })
}

#[async_trait]
impl Channel for ImessageChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::pager(Some(16 * 1024), false, PRIORITY)
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let osascript = self.osascript()?;
        if parcel.body.contains('\0') {
            return Err(ChannelError::permanent("a page cannot hold a NUL character"));
        }
        crate::sent_ledger::once(&self.ledger, NAME, parcel, || self.run(&osascript, &parcel.body)).await
    }

    /// Finds `osascript`; sends nothing.
    async fn health(&self) -> Result<Health, ChannelError> {
        let p = self.osascript()?;
        Ok(Health {
            check: format!("osascript at {}", p.display()),
            detail: Some(format!("pages go to {} through Messages", mask(&self.to))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_takes_text_and_recipient_as_arguments_only() {
        assert!(SCRIPT.contains("send (item 1 of argv) to participant (item 2 of argv)"));
        assert!(!SCRIPT.contains("do shell script"));
    }

    #[test]
    fn recipients_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let ctx = Context::quiet("m", d.path().into());
        for ok in ["+15552223333", "me@icloud.com"] {
            ImessageChannel::from_config(&ImessageConfig { to: ok.into(), osascript: None, priority: None }, &ctx)
                .unwrap();
        }
        for bad in ["5552223333", "me", "+1 555", "a@b\nc"] {
            assert!(
                ImessageChannel::from_config(&ImessageConfig { to: bad.into(), osascript: None, priority: None }, &ctx)
                    .is_err()
            );
        }
        assert_eq!(mask("+15552223333"), "+1…33");
    }
}
