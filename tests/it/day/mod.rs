//! Fitting into people's day (issue 8): Claude Code hooks, doctor, log, init, completions and man page.

mod docs;
mod doctor;
mod hooks;
mod init;
mod log;
mod proxy;
