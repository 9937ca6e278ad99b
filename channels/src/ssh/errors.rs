//! Turning what `ssh` printed when it failed into a [`ChannelError`] that names the peer, the cause and the
//! fix, with the right kind: unreachable → transient (the send is queued), refused key or host-key trouble
//! → auth/permanent (retrying would not help, and host-key checking is never turned off to "fix" it).

use crate::ChannelError;

/// Lines of ssh's output worth quoting (no banners, no blank lines, no `@@@@` frames).
fn meaningful_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("ssh: ").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.starts_with("Warning: Permanently added"))
        .collect()
}

/// Classifies a failed ssh connection attempt to the droplet `host`, from ssh's diagnostic output.
pub fn classify(host: &str, stderr: &str) -> ChannelError {
    classify_as(&format!("droplet host {host}"), &format!("ssh {host}"), stderr)
}

/// Classifies a failed ssh connection attempt, from ssh's diagnostic output. `label` names the peer in the
/// message (`droplet host h`, `sftp remote box (me@h:22)`); `ssh_cmd` is the command that reaches it, quoted
/// where the fix is to run ssh once by hand.
pub fn classify_as(label: &str, ssh_cmd: &str, stderr: &str) -> ChannelError {
    let lines = meaningful_lines(stderr);
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    let last = lines.last().copied().unwrap_or("ssh failed without saying why");

    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("has changed and you have requested strict checking") {
        let fingerprint = lines
            .iter()
            .find(|l| l.starts_with("SHA256:") || l.starts_with("MD5:"))
            .map(|l| l.trim_end_matches('.'))
            .map(|f| format!(" (it now presents {f})"))
            .unwrap_or_default();
        return ChannelError::permanent(format!(
            "{label}: the server's host key does not match the one in your known_hosts{fingerprint}. \
             This can be an attack, so handoff refuses to connect. If the server was really reinstalled, verify \
             the new key with its administrator, then run `ssh-keygen -R <host>` and `{ssh_cmd}` once to accept it."
        ));
    }
    if has("Host key verification failed") || has("host key is known for") {
        return ChannelError::permanent(format!(
            "{label}: its host key is not in your known_hosts, and handoff never accepts unknown keys \
             on its own. Run `{ssh_cmd}` once, check the fingerprint, and answer yes; then retry."
        ));
    }
    if has("Permission denied (") || has("Too many authentication failures") {
        return ChannelError::auth(format!(
            "{label} refused the login ({last}). Check that your public key is in the server's \
             ~/.ssh/authorized_keys and that the key is loaded (`ssh-add -l`) or named by IdentityFile for this \
             host in ~/.ssh/config; `{ssh_cmd}` must work without a password prompt."
        ));
    }
    // a name that does not exist stays that way: refused for good, not retried forever (a resolver that
    // could not answer right now says "Temporary failure" and is retried like any network blip)
    const NO_SUCH_HOST: [&str; 3] =
        ["Name or service not known", "nodename nor servname provided", "No such host is known"];
    if has("Could not resolve hostname") && NO_SUCH_HOST.iter().any(|n| has(n)) {
        return ChannelError::permanent(format!(
            "{label}: the host name does not resolve ({last}); fix the name (or the HostName of this alias in \
             ~/.ssh/config) and check that `{ssh_cmd}` works"
        ));
    }
    const UNREACHABLE: [&str; 12] = [
        "Connection refused",
        "Connection timed out",
        "Operation timed out",
        "Network is unreachable",
        "No route to host",
        "Connection reset",
        "Connection closed",
        "closed by remote host",
        "kex_exchange_identification",
        "Could not resolve hostname",
        "Temporary failure in name resolution",
        "Broken pipe",
    ];
    if UNREACHABLE.iter().any(|n| has(n)) {
        return ChannelError::transient(format!(
            "{label} is unreachable ({last}); the payload is kept and sent when it answers again"
        ));
    }
    if has("Bad configuration option") || has("Bad owner or permissions") || has("Can't open user config file") {
        return ChannelError::permanent(format!(
            "{label}: your ssh configuration is unusable ({last}); fix ~/.ssh/config and retry"
        ));
    }
    ChannelError::permanent(format!("{label}: ssh failed: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ssh_failures_get_the_right_kind_and_name_the_host() {
        let changed = "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@\n\
            The fingerprint for the ED25519 key sent by the remote host is\nSHA256:FSZDD9Xb851.\n\
            Host key for [127.0.0.1]:34091 has changed and you have requested strict checking.\n\
            Host key verification failed.\n";
        let e = classify("droplet", changed);
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.message.contains("droplet host droplet") && e.message.contains("does not match"), "{e}");
        assert!(e.message.contains("SHA256:FSZDD9Xb851"), "{e}");

        let unknown = "No ED25519 host key is known for [127.0.0.1]:5 and you have requested strict checking.\n\
            Host key verification failed.\n";
        let e = classify("d", unknown);
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.message.contains("not in your known_hosts"), "{e}");

        let e = classify("me@h", "me@h: Permission denied (publickey).\n");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("me@h refused the login"), "{e}");

        for down in [
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\n",
            "ssh: connect to host 10.0.0.1 port 22: Connection timed out\n",
            "ssh: Could not resolve hostname nowhere: Temporary failure in name resolution\n",
            "kex_exchange_identification: Connection closed by remote host\n",
        ] {
            let e = classify("h", down);
            assert_eq!(e.kind, ErrorKind::Transient, "{down}");
            assert!(e.message.contains("droplet host h is unreachable"), "{e}");
        }
        assert_eq!(classify("h", "something new\n").kind, ErrorKind::Permanent);
        // a name that does not exist is refused for good (never retried forever), naming the fix
        let e = classify(
            "nosuchhost.invalid",
            "ssh: Could not resolve hostname nosuchhost.invalid: Name or service not known\n",
        );
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.message.contains("does not resolve") && e.message.contains("ssh nosuchhost.invalid"), "{e}");
    }

    #[test]
    fn other_peers_are_named_with_the_ssh_command_that_reaches_them() {
        let (label, cmd) = ("sftp remote box (me@h:2222)", "ssh -p 2222 me@h");
        let e = classify_as(label, cmd, "Host key verification failed.\n");
        assert!(e.message.starts_with("sftp remote box (me@h:2222): its host key") && e.message.contains(cmd), "{e}");
        let e = classify_as(label, cmd, "ssh: connect to host h port 2222: Connection refused\n");
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.starts_with("sftp remote box (me@h:2222) is unreachable"), "{e}");
    }
}
