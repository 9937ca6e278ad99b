//! The drive channel's part in `handoff init`: `--drive-remote` (one of rclone.conf's remotes, listed and
//! picked on a terminal), `--drive-folder` and `--rclone-config`.

use super::NAME;
use super::rclone_conf::RcloneConf;
use crate::ChannelError;
use crate::init::{InitChoice, InitFlags, InitPlace, InitSection, toml_string};
use crate::untrusted::inline;
use std::path::PathBuf;

/// The drive channel's flags of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct DriveInitFlags {
    /// rclone remote for files (one of rclone.conf's remotes).
    #[arg(long, value_name = "REMOTE")]
    pub drive_remote: Option<String>,
    /// Folder on the drive remote.
    #[arg(long, value_name = "FOLDER", default_value = "claude-handoffs")]
    pub drive_folder: String,
    /// rclone.conf to read (default: where rclone looks).
    #[arg(long, value_name = "PATH")]
    pub rclone_config: Option<PathBuf>,
}

impl InitFlags for DriveInitFlags {
    const LISTED_IN_PLAN: bool = true;

    fn choose(&self, place: &InitPlace<'_>) -> Result<InitChoice, ChannelError> {
        let conf = RcloneConf::load(self.rclone_config.as_deref())?;
        let names: Vec<String> = conf.remotes.iter().map(|r| r.name.clone()).collect();
        let listed: Vec<String> = conf.remotes.iter().map(|r| format!("{} ({})", r.name, r.kind())).collect();
        let chosen = place.pick("rclone remotes for files (drive)", &names, &listed, self.drive_remote.clone())?;
        let Some(remote) = chosen else {
            let notes = if names.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "rclone remotes found: {}; pass --drive-remote NAME to send files through one",
                    listed.join(", ")
                )]
            };
            return Ok(InitChoice { section: None, notes });
        };
        if conf.remote(&remote).is_err() {
            let place =
                conf.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "no rclone.conf found".into());
            return Err(ChannelError::config(format!(
                "--drive-remote {}: rclone has no remote by that name ({place}); remotes found: {}. Pass one of them to --drive-remote, or add it with `rclone config` first",
                inline(&remote),
                if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
            )));
        }
        let rclone_config = self.rclone_config.as_ref().map(|c| place.written_path(c));
        let mut toml =
            format!("[{NAME}]\nremote = {}\nfolder = {}\n", toml_string(&remote), toml_string(&self.drive_folder));
        if let Some(c) = &rclone_config {
            toml.push_str(&format!("rclone_config = {}\n", toml_string(c)));
        }
        let plan = serde_json::json!({ "remote": remote, "folder": self.drive_folder, "rclone_config": rclone_config });
        Ok(InitChoice { section: Some(InitSection { toml, plan: Some(plan) }), notes: Vec::new() })
    }
}
