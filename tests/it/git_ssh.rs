//! The git channel over the system `ssh`: the user's whole ssh configuration applies (a host alias defined
//! only in an `Include`d file, reached through `ProxyJump` via a second loopback sshd), and a remote path
//! full of shell syntax reaches the server's git verbatim, running nothing.

use crate::git::{assert_document_committed, cli_clone, receipt_uri, send_doc};
use crate::support::bus::BusServer;
use crate::support::sshd::Sshd;
use crate::support::{Env, OutputExt};

/// `~/.ssh/config` gets `Include config.d/*.conf` at its top; the included file defines `behind` (the git
/// server, only through `ProxyJump hop`) and `hop` (the jump host).
fn include_proxyjump_config(env: &Env, server: &Sshd, jump: &Sshd) {
    let dot = env.home().join(".ssh");
    std::fs::create_dir_all(dot.join("config.d")).unwrap();
    let host = |alias: &str, s: &Sshd, extra: &str| {
        format!(
            "Host {alias}\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile ~/.ssh/id_handoff_test\n    \
             IdentitiesOnly yes\n{extra}",
            s.port, s.user
        )
    };
    let included = format!("{}{}", host("behind", server, "    ProxyJump hop\n"), host("hop", jump, ""));
    std::fs::write(dot.join("config.d/handoff-test.conf"), included).unwrap();
    let config = std::fs::read_to_string(dot.join("config")).unwrap();
    std::fs::write(dot.join("config"), format!("Include config.d/*.conf\n\n{config}")).unwrap();
    let known = std::fs::read_to_string(dot.join("known_hosts")).unwrap();
    std::fs::write(dot.join("known_hosts"), format!("{known}{}\n", jump.known_hosts_line())).unwrap();
}

#[test]
fn an_included_alias_behind_a_proxyjump_host_delivers_and_needs_the_jump_host() {
    let server = Sshd::start();
    let mut jump = Sshd::start();
    jump.accept_client_key_of(&server);
    let bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    server.setup_client(&mut env, "gitsrv");
    include_proxyjump_config(&env, &server, &jump);
    let bare = crate::git::bare_repo(&env, &server.server_dir("repos").join("handoffs.git"));
    let url = format!("behind:{}", bare.display());
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!("[git]\nremote = {url:?}\ncheckout = {:?}\n", checkout.display().to_string()));

    let sent = send_doc(&env, "win-box", "Through the jump host", "hopped\n");
    sent.ok();
    let (path, commit) = receipt_uri(&sent);
    assert!(
        jump.log_text().contains("Accepted publickey"),
        "the connection went through the jump host; its log:\n{}",
        jump.log_text()
    );
    let clone = cli_clone(&env, &url);
    assert_document_committed(&env, &clone, "win-box", "Through the jump host", "hopped\n", &path, &commit);

    // without the jump host the git server is not reachable: queued (75), delivered once it is back
    jump.stop();
    let o = send_doc(&env, "win-box", "while the hop is down", "later\n");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("behind"), "the error names the remote: {}", o.out());
    jump.restart();
    let mut c = env.handoff("win-box");
    c.arg("flush");
    crate::support::run(c).ok();
    crate::git::git_ok(&env, &clone, &["pull", "-q", "--ff-only"]);
    assert_eq!(crate::git::git_ok(&env, &clone, &["show", "HEAD:latest.md"]), "later\n");
}

#[test]
fn a_remote_path_with_shell_syntax_runs_nothing_on_the_server() {
    let server = Sshd::start();
    let bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    server.setup_client(&mut env, "gitsrv");
    let canary = server.canary_prefix();
    let hostile = format!("gitsrv:/tmp/x';touch {canary}a;'$(touch ${{HANDOFF_CANARY}}b)`touch {canary}c`.git");
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!("[git]\nremote = {hostile:?}\ncheckout = {:?}\n", checkout.display().to_string()));

    let o = send_doc(&env, "mac", "hostile", "x\n");
    assert_ne!(o.code(), 0, "there is no such repository: {}", o.out());
    assert!(o.out().contains("does not appear to be a git repository"), "the server's git names the path: {}", o.out());
    for suffix in ["a", "b", "c"] {
        let p = format!("{canary}{suffix}");
        assert!(!std::path::Path::new(&p).exists(), "{p} was created: the remote shell ran part of the path");
    }
    // a host that ssh would read as an option never reaches ssh (a fresh clone: the first one belongs to the
    // first remote)
    env.write_config(&format!(
        "[git]\nremote = \"ssh://-oProxyCommand=touch%20{canary}d/x.git\"\ncheckout = {:?}\n",
        env.home().join("other-clone").display().to_string()
    ));
    let o = send_doc(&env, "mac", "option", "x\n");
    assert_ne!(o.code(), 0);
    assert!(o.out().contains("would be read by ssh as an option"), "{}", o.out());
    assert!(!std::path::Path::new(&format!("{canary}d")).exists());
}

/// How many ssh logins the server has accepted so far.
fn logins(server: &Sshd) -> usize {
    server.log_text().matches("Accepted publickey").count()
}

#[test]
fn a_send_pushes_on_the_one_connection_started_ahead_and_a_refused_one_connects_nowhere() {
    let server = Sshd::start();
    let bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    server.setup_client(&mut env, "gitsrv");
    let bare = crate::git::bare_repo(&env, &server.server_dir("repos").join("handoffs.git"));
    let url = format!("gitsrv:{}", bare.display());
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!("[git]\nremote = {url:?}\ncheckout = {:?}\n", checkout.display().to_string()));
    send_doc(&env, "mac", "first", "one\n").ok();

    // a quiet repository: the connection started while the outbox was written is the push's, not a second
    let before = logins(&server);
    let sent = send_doc(&env, "mac", "second", "two\n");
    sent.ok();
    assert_eq!(logins(&server) - before, 1, "one ssh connection per push; the server's log:\n{}", server.log_text());
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &url);
    assert_document_committed(&env, &clone, "mac", "second", "two\n", &path, &commit);

    // the secret scanner refuses before anything is planned: no connection is started for it
    let before = logins(&server);
    let o = send_doc(&env, "mac", "keys", "aws_access_key_id = AKIAZ7Q3PLMN4RST5UVW\n");
    assert_eq!(o.code(), 65, "{}\n{}", o.out(), o.err());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(logins(&server), before, "a refused send connected to the server:\n{}", server.log_text());

    // another machine moved the branch: the connection started ahead shows it, and the document goes the
    // long way (fetch, commit on top, push), once
    std::fs::write(clone.join("notes.txt"), "from the git CLI\n").unwrap();
    crate::git::git_ok(&env, &clone, &["add", "notes.txt"]);
    crate::git::git_ok(&env, &clone, &["commit", "-q", "-m", "cli"]);
    crate::git::git_ok(&env, &clone, &["push", "-q"]);
    let sent = send_doc(&env, "mac", "third", "three\n");
    sent.ok();
    crate::git::git_ok(&env, &clone, &["pull", "-q", "--ff-only"]);
    assert_eq!(crate::git::git_ok(&env, &clone, &["show", "HEAD:latest.md"]), "three\n");
    assert_eq!(std::fs::read_to_string(clone.join("notes.txt")).unwrap(), "from the git CLI\n");
    let log = crate::git::git_ok(&env, &clone, &["log", "--format=%s"]);
    assert_eq!(log.lines().filter(|l| l.contains("third")).count(), 1, "one commit for the document:\n{log}");
}

/// A send that fails after its connection was started ahead (here: its outbox cannot be written) hangs
/// that connection up as `git push` does when it has nothing to send: the server's git gets one flush
/// packet and the end of its input, nothing else, and the next send goes through on a connection of its
/// own.
#[test]
fn a_send_that_fails_after_starting_its_connection_hangs_it_up_having_sent_nothing() {
    let (_sshd, _bus, env, bare, _url) = crate::git::ssh_setup();
    // what handoff writes to ssh, kept by `tee` on the way (GIT_SSH_COMMAND, as git runs it: through sh)
    let to_ssh = env.path().join("to-ssh.bytes");
    let blocker = env.path().join("data/handoff/outbox");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, "a file where the outbox folder goes\n").unwrap();
    let mut c = env.handoff("mac");
    c.env("GIT_SSH_COMMAND", format!("tee {:?} | ssh", to_ssh.display().to_string()))
        .args(["send", "--doc", "-", "--title", "blocked"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"never queued\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(o.err().contains("the outbox") && o.err().contains(&blocker.display().to_string()), "{}", o.err());
    // ssh outlives handoff by its handshake: wait for what it was given, then make sure nothing follows
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read(&to_ssh).map(|b| b.is_empty()).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "ssh was never started for the send, or given nothing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(std::fs::read(&to_ssh).unwrap(), b"0000", "handoff sent the server more than a hang-up");
    let refs = crate::git::git_ok(&env, env.path(), &["--git-dir", &bare.display().to_string(), "for-each-ref"]);
    assert_eq!(refs, "", "the server's repository changed");

    std::fs::remove_file(&blocker).unwrap();
    send_doc(&env, "mac", "after", "delivered\n").ok();
    let count = crate::git::git_ok(
        &env,
        env.path(),
        &["--git-dir", &bare.display().to_string(), "rev-list", "--count", "main"],
    );
    assert_eq!(count.trim(), "1");
}
