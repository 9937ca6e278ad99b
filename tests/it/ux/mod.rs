//! The command line as a new user meets it (issue 16): closed pipes, the exit-code table, `--json` against
//! its schemas, quiet logs, the new commands, recipient typos, help and its examples.

mod commands;
mod completion_and_logs;
#[cfg(all(feature = "git", feature = "droplet"))]
mod doctor_fixes;
mod exit_codes;
mod init_checks;
pub mod json;
mod paper_cuts;
mod pipe;
mod sync_digest;
