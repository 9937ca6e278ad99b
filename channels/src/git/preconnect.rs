//! One ssh connection started ahead of a push, so that ssh's handshake (most of a push's time on a
//! quiet repository) runs while handoff writes the job to its outbox and builds the commit.
//!
//! `handoff send` calls [`start`] (through `Channel::preconnect`) once it knows a document goes to git
//! over ssh. The connection runs `git-receive-pack` and only waits: nothing is sent until libgit2 asks
//! the ssh transport for a receive-pack connection to the same URL, which then gets this one
//! ([`take`]). One that is not used (another path was taken, the delivery failed early) is hung up
//! cleanly with a flush packet, as `git push` does when it has nothing to send ([`discard`]).

use super::ssh::{SshStream, connect};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection older than this is not used (the server may have given up on an idle client).
const MAX_IDLE: Duration = Duration::from_secs(120);

/// The connection started ahead: for which URL and service, since when.
struct Started {
    url: String,
    service: &'static str,
    at: Instant,
    stream: SshStream,
}

/// At most one connection started ahead per process.
static STARTED: Mutex<Option<Started>> = Mutex::new(None);

/// Starts `ssh … git-receive-pack` to `url` now, for the push that follows. Failing to start is not an
/// error here: the push starts its own connection and reports what goes wrong.
pub(crate) fn start(url: &str, repo: Option<&std::path::Path>) {
    let service = "git-receive-pack";
    match connect(url, service, repo) {
        Ok(stream) => {
            let old = STARTED.lock().unwrap_or_else(|p| p.into_inner()).replace(Started {
                url: url.to_string(),
                service,
                at: Instant::now(),
                stream,
            });
            if let Some(old) = old {
                hang_up(old.stream);
            }
        }
        Err(e) => tracing::debug!(error = %e.message(), "could not start the ssh connection ahead"),
    }
}

/// The connection started ahead for `url` and `service`, if there is one and it is fresh.
pub(crate) fn take(url: &str, service: &str) -> Option<SshStream> {
    let mut slot = STARTED.lock().unwrap_or_else(|p| p.into_inner());
    if !slot.as_ref().is_some_and(|s| s.url == url && s.service == service) {
        return None;
    }
    let started = slot.take()?;
    drop(slot);
    if started.at.elapsed() > MAX_IDLE {
        hang_up(started.stream);
        return None;
    }
    Some(started.stream)
}

/// Hangs up a connection started ahead that nothing used.
pub(crate) fn discard() {
    let started = STARTED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(s) = started {
        tracing::debug!("hanging up the unused ssh connection started ahead");
        hang_up(s.stream);
    }
}

/// Ends an unused receive-pack connection the way `git push` ends one with nothing to push: a flush
/// packet, then end of input. Four bytes into a pipe nothing has written to do not block, so the caller
/// never waits for ssh's handshake; should the process end right after, ssh still delivers them and the
/// end of its input, and the server's git exits cleanly.
fn hang_up(mut stream: SshStream) {
    use std::io::Write;
    let _ = stream.write_all(b"0000").and_then(|()| stream.flush());
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection started ahead is handed out once, only for its own URL and service.
    #[test]
    fn taken_once_and_only_for_its_own_url_and_service() {
        // `cat` stands in for ssh: GIT_SSH names the program, so nothing reaches the network
        // SAFETY: this test is the only one in this crate that sets GIT_SSH
        unsafe { std::env::set_var("GIT_SSH", "cat") };
        start("ssh://h.invalid/a.git", None);
        assert!(take("ssh://h.invalid/b.git", "git-receive-pack").is_none(), "another URL");
        assert!(take("ssh://h.invalid/a.git", "git-upload-pack").is_none(), "another service");
        assert!(take("ssh://h.invalid/a.git", "git-receive-pack").is_some(), "its own URL and service");
        assert!(take("ssh://h.invalid/a.git", "git-receive-pack").is_none(), "handed out once");
        start("ssh://h.invalid/a.git", None);
        discard();
        assert!(take("ssh://h.invalid/a.git", "git-receive-pack").is_none(), "discarded");
        unsafe { std::env::remove_var("GIT_SSH") };
    }
}
