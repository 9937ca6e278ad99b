//! Errors a channel reports, split so the router knows whether to retry, fall back or give up.

/// How the router should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The channel may work later (network down, 5xx, timeout): fall back or queue in the outbox.
    Transient,
    /// Retrying will not help (rejected input, a remote that refuses): report it.
    Permanent,
    /// The channel is configured but cannot work as configured (its credentials are not set anywhere, a
    /// setting it needs is missing): permanent, fixed by the user's configuration (exit 78, EX_CONFIG).
    Config,
    /// Credentials were refused: permanent, reported with its own exit code.
    Auth,
    /// The input was refused as something this channel could not have written: an item uri outside its
    /// configured remote, folder, host or clone, or an item larger than its pointer claims (EX_DATAERR).
    Refused,
}

impl ErrorKind {
    /// The most serious of `kinds`, the one the user must deal with first: a configuration to correct,
    /// credentials refused, then input refused, then a permanent failure, then one that may go away by
    /// itself (the order of the exit codes 78, 77, 65, 69, 75). `None` when there are none.
    pub fn most_serious(kinds: impl IntoIterator<Item = ErrorKind>) -> Option<ErrorKind> {
        let rank = |k: &ErrorKind| match k {
            ErrorKind::Config => 4,
            ErrorKind::Auth => 3,
            ErrorKind::Refused => 2,
            ErrorKind::Permanent => 1,
            ErrorKind::Transient => 0,
        };
        kinds.into_iter().max_by_key(rank)
    }
}

/// A channel failure with a message that names the problem and, where possible, the fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChannelError {
    /// Whether it is worth retrying.
    pub kind: ErrorKind,
    /// Human-readable description, never containing a secret.
    pub message: String,
}

impl ChannelError {
    /// A failure that may go away by itself.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Transient, message: message.into() }
    }
    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Permanent, message: message.into() }
    }
    /// The channel's configuration is missing something it needs (see [`ErrorKind::Config`]).
    pub fn config(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Config, message: message.into() }
    }
    /// Credentials refused.
    pub fn auth(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Auth, message: message.into() }
    }
    /// An item refused as hostile or malformed input (see [`ErrorKind::Refused`]).
    pub fn refused(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Refused, message: message.into() }
    }
    /// The refusal for an item that holds more bytes than `max`, the size its pointer claims.
    pub fn over_claimed(what: &str, max: u64) -> Self {
        Self::refused(format!(
            "{what} holds more than the {max} bytes its pointer claims; reading stopped there and nothing was kept"
        ))
    }
    /// True when the router should try again later (or fall back to another channel).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        Self { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

/// An I/O error becomes transient when the connection or the pipe went away, permanent otherwise; one that
/// carries a [`ChannelError`] (a refusal raised inside a reader or writer, such as
/// [`crate::hashing::Hashing::at_most`]'s) becomes that error again.
impl From<std::io::Error> for ChannelError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let e = match e.downcast::<ChannelError>() {
            Ok(carried) => return carried,
            Err(e) => e,
        };
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::TimedOut
            | K::Interrupted
            | K::BrokenPipe
            | K::NotConnected
            | K::WouldBlock => Self::transient(e.to_string()),
            _ => Self::permanent(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind::{self, *};

    #[test]
    fn the_most_serious_kind_wins_whatever_the_order() {
        assert_eq!(ErrorKind::most_serious([]), None);
        assert_eq!(ErrorKind::most_serious([Transient, Transient]), Some(Transient));
        assert_eq!(ErrorKind::most_serious([Transient, Permanent, Transient]), Some(Permanent));
        assert_eq!(ErrorKind::most_serious([Permanent, Refused]), Some(Refused));
        for order in [[Auth, Refused, Permanent, Transient], [Transient, Permanent, Refused, Auth]] {
            assert_eq!(ErrorKind::most_serious(order), Some(Auth));
        }
        assert_eq!(ErrorKind::most_serious([Auth, Config, Permanent]), Some(Config));
    }
}
