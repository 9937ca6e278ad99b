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

/// The exit code for an error chain: the first [`ExitError`], channel error or config error found, else 1.
/// This and [`of_kind`], [`of_delivery`] and [`worst`] are the one mapping from failure to exit code (the
/// README's table); commands never pick sysexits numbers on their own.
pub fn code_of(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(x) = cause.downcast_ref::<ExitError>() {
            return x.code;
        }
        if let Some(c) = cause.downcast_ref::<handoff_channels::ChannelError>() {
            return of_kind(c.kind);
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some() {
            return CONFIG;
        }
    }
    FAILURE
}

/// The exit code of a channel failure that left nothing queued: refused (69) whether it was a blip or for
/// good — only a send that wrote work to the outbox exits [`QUEUED`] ([`of_delivery`]) — credentials
/// refused (77), a channel configured without what it needs (78).
pub fn of_kind(kind: handoff_channels::ErrorKind) -> i32 {
    match kind {
        handoff_channels::ErrorKind::Auth => AUTH,
        handoff_channels::ErrorKind::Transient | handoff_channels::ErrorKind::Permanent => UNAVAILABLE,
        handoff_channels::ErrorKind::Refused => DATA,
        handoff_channels::ErrorKind::Config => CONFIG,
    }
}

/// The exit code of a delivery: a step that failed for good decides (by its kind), else anything left in
/// the outbox is [`QUEUED`], else [`OK`].
pub fn of_delivery(failed: usize, queued: usize, worst_kind: Option<handoff_channels::ErrorKind>) -> i32 {
    if failed > 0 {
        worst_kind.map(of_kind).unwrap_or(UNAVAILABLE)
    } else if queued > 0 {
        QUEUED
    } else {
        OK
    }
}

/// Which code wins when one command met several outcomes: what the user must fix first. A bad command
/// line, then config, credentials, refused input, a refused channel, any other failure, and last work
/// that is merely queued.
pub fn worst(a: i32, b: i32) -> i32 {
    const ORDER: [i32; 8] = [USAGE, CONFIG, AUTH, DATA, UNAVAILABLE, FAILURE, QUEUED, OK];
    let rank = |c: i32| ORDER.iter().position(|x| *x == c).unwrap_or(ORDER.len() - 3);
    if rank(a) <= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_channels::ErrorKind;

    #[test]
    fn queued_only_when_something_was_queued_and_the_fix_first_wins() {
        assert_eq!(of_kind(ErrorKind::Transient), UNAVAILABLE);
        assert_eq!(of_kind(ErrorKind::Auth), AUTH);
        assert_eq!(of_kind(ErrorKind::Config), CONFIG);
        assert_eq!(of_delivery(0, 2, Some(ErrorKind::Transient)), QUEUED);
        assert_eq!(of_delivery(1, 2, Some(ErrorKind::Auth)), AUTH);
        assert_eq!(of_delivery(0, 0, None), OK);
        // a queued step never outranks a refused channel (max() over sysexits numbers did: 75 > 69)
        assert_eq!(worst(QUEUED, UNAVAILABLE), UNAVAILABLE);
        assert_eq!(worst(UNAVAILABLE, AUTH), AUTH);
        assert_eq!(worst(OK, DATA), DATA);
        assert_eq!(worst(CONFIG, USAGE), USAGE);
    }
}
