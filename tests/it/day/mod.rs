//! Fitting into people's day (issue 8): Claude Code hooks, doctor, log, init, completions and man page.

mod docs;
// They set up every channel, so they need every channel compiled in.
#[cfg(all(feature = "git", feature = "drive", feature = "droplet", feature = "sms"))]
mod doctor;
mod hooks;
#[cfg(all(feature = "git", feature = "drive", feature = "droplet", feature = "sms"))]
mod init;
mod log;
mod proxy;
