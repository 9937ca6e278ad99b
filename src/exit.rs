//! Stable exit codes (documented in README.md) and the error type that carries one to `main`.

/// Everything went through.
pub const OK: i32 = 0;
/// Something failed that has no more specific code.
pub const FAILURE: i32 = 1;
/// Bad command line (clap's own code).
pub const USAGE: i32 = 2;
/// The input was refused: a secret was found, a file is unreadable, a name is hostile (EX_DATAERR).
pub const DATA: i32 = 65;
/// A channel refused permanently (not a network blip) (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// Not delivered yet: written to the outbox, the next run or `handoff flush` delivers it (EX_TEMPFAIL).
pub const QUEUED: i32 = 75;
/// Credentials refused (EX_NOPERM).
pub const AUTH: i32 = 77;
/// Configuration missing or invalid (EX_CONFIG).
pub const CONFIG: i32 = 78;

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct ExitError {
    /// Process exit code.
    pub code: i32,
    /// What to print (already clear and secret-free).
    pub error: anyhow::Error,
}

impl std::fmt::Display for ExitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for ExitError {}

/// Wraps an error with an exit code.
pub fn with_code(code: i32, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(ExitError { code, error: error.into() })
}

/// The exit code for an error chain: the first [`ExitError`] or channel error kind found, else 1.
pub fn code_of(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(x) = cause.downcast_ref::<ExitError>() {
            return x.code;
        }
        if let Some(c) = cause.downcast_ref::<handoff_channels::ChannelError>() {
            return match c.kind {
                handoff_channels::ErrorKind::Transient => QUEUED,
                handoff_channels::ErrorKind::Permanent => UNAVAILABLE,
                handoff_channels::ErrorKind::Auth => AUTH,
                handoff_channels::ErrorKind::Refused => DATA,
            };
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some() {
            return CONFIG;
        }
    }
    FAILURE
}
