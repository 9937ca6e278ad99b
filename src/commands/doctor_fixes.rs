//! The fix `doctor` names on every ✗ line: for each channel's failed health probe (by channel and kind of
//! failure), for a probe that did not answer, and for a config that could not be read. The bus has its own
//! in [`super::doctor_checks::bus_fix`].

use crate::config::Settings;
use handoff_channels::{ChannelError, ErrorKind};

/// Where the config is, for a fix that says "change X in ...".
fn config_place(s: &Settings) -> String {
    match &s.file_path {
        Some(p) => p.display().to_string(),
        None => "the config file (`handoff init` writes one)".into(),
    }
}

/// `[droplet] host`, escaped (a placeholder in a build without the droplet).
fn droplet_host(s: &Settings) -> String {
    #[cfg(feature = "droplet")]
    return s.file.channels.droplet.as_ref().map(|d| handoff_channels::untrusted::inline(&d.host)).unwrap_or_default();
    #[cfg(not(feature = "droplet"))]
    return {
        let _ = s;
        "HOST".into()
    };
}

/// `[git] remote` without credentials, escaped (a placeholder in a build without git).
fn git_remote(s: &Settings) -> String {
    #[cfg(feature = "git")]
    return s
        .file
        .channels
        .git
        .as_ref()
        .map(|g| handoff_channels::untrusted::inline(&handoff_channels::untrusted::redact_url(&g.remote)))
        .unwrap_or_default();
    #[cfg(not(feature = "git"))]
    return {
        let _ = s;
        "URL".into()
    };
}

/// `[drive] remote`, escaped (a placeholder in a build without the drive).
fn drive_remote(s: &Settings) -> String {
    #[cfg(feature = "drive")]
    return s.file.channels.drive.as_ref().map(|d| handoff_channels::untrusted::inline(&d.remote)).unwrap_or_default();
    #[cfg(not(feature = "drive"))]
    return {
        let _ = s;
        "REMOTE".into()
    };
}

/// The fix for channel `name` whose health probe failed with `e`.
pub fn channel_fix(name: &str, e: &ChannelError, s: &Settings) -> String {
    let cfg = config_place(s);
    match name {
        "droplet" => {
            let host = droplet_host(s);
            match e.kind {
                ErrorKind::Auth => format!(
                    "`ssh {host}` must log in without a password prompt: put your public key in the server's ~/.ssh/authorized_keys and load it (`ssh-add`), or name it with IdentityFile in ~/.ssh/config"
                ),
                ErrorKind::Transient => format!(
                    "start the server or fix the network until `ssh {host}` answers; queued payloads go out when it does (`handoff flush`)"
                ),
                _ if e.message.contains("does not resolve") => format!(
                    "fix the host name: [droplet] host in {cfg}, or the HostName of {host} in ~/.ssh/config (`handoff init --force --droplet-host HOST` rewrites it)"
                ),
                _ => format!("run `ssh {host}` by hand and fix what it reports; [droplet] host and dir are in {cfg}"),
            }
        }
        "git" => {
            let remote = git_remote(s);
            match e.kind {
                ErrorKind::Auth => format!(
                    "`git ls-remote {remote}` must work without a prompt: check your ssh key or git credential helper for that host"
                ),
                _ if e.message.contains("does not exist") => format!(
                    "create the shared repository (`git init --bare {remote}`), or point [git] remote in {cfg} at an existing one (`handoff init --force --git-remote URL`)"
                ),
                ErrorKind::Transient => {
                    format!(
                        "`git ls-remote {remote}` must answer from this machine (is the server up, the network there?)"
                    )
                }
                _ => format!(
                    "fix [git] in {cfg} until `git ls-remote {remote}` works (`handoff init --force --git-remote URL` rewrites it)"
                ),
            }
        }
        "drive" => {
            let remote = drive_remote(s);
            format!(
                "`rclone lsd {remote}:` must work: `rclone config reconnect {remote}:` renews an expired login, `rclone config` adds a missing remote; [drive] is in {cfg}"
            )
        }
        "sms" => format!(
            "TWILIO_SID and TWILIO_TOKEN (the environment or [sms] env_file) must be your Twilio account's; [sms] from/to are in {cfg}"
        ),
        "email" => format!(
            "HANDOFF_IMAP_PASSWORD (the environment or the env file) must be an app password for [email] user; [email] imap is in {cfg}"
        ),
        "slack" => "SLACK_WEBHOOK_URL (the environment or [slack] env_file) must be a live incoming-webhook URL".into(),
        "discord" => "DISCORD_WEBHOOK_URL (the environment or [discord] env_file) must be a live webhook URL".into(),
        _ => format!("fix [{name}] in {cfg}; `handoff config example` explains every key"),
    }
}

/// The fix for a probe that gave no answer in time.
pub fn no_answer_fix(name: &str) -> String {
    format!("the {name} server did not answer: check that it is up and reachable; `handoff -v doctor` logs each step")
}

/// The fix for a config that could not be read, or channels that could not be set up from it.
pub fn config_fix() -> String {
    "correct the key and line named above (`handoff config example` explains every key), or write a new config with `handoff init --force`".into()
}
