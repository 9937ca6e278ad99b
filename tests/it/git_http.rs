//! The git channel over https: the real `handoff` binary against a real git smart-HTTP server
//! (`git http-backend` behind TLS and basic auth, see `support::git_http`), with the token only in a git
//! credential helper; the git CLI checks the result in its own clone of the same bare repository.

use crate::git::{
    BODY, assert_document_committed, cli_clone, env_with_git, flush, git_ok, receipt_uri, send_doc, sync_json,
};
use crate::support::bus::BusServer;
use crate::support::git_http::GitHttpServer;
use crate::support::{Env, OutputExt};
use std::process::Output;

const USER: &str = "handoff-bot";
const TOKEN: &str = "ghp_tok3n-only-in-the-helper-9f2c";

/// How the client trusts the server's certificate.
enum Trust {
    /// `http.sslCAInfo` in the user's git config names the test CA.
    GitConfig,
    /// `GIT_SSL_CAINFO` in the environment names it.
    EnvVar,
    /// Nothing: only the system's CAs.
    SystemOnly,
}

/// An env whose `[git] remote` is the server's URL (no credentials in it); `~/.gitconfig` names a
/// `git credential-store` file holding `USER` with `password` for that server.
fn https_env(server: &GitHttpServer, bus: &BusServer, password: &str, trust: Trust) -> Env {
    let mut env = env_with_git(&server.url("handoffs.git"), bus);
    let store = env.write_secret_file(
        "git-credentials",
        &format!("{}://{USER}:{password}@localhost:{}\n", server.scheme(), server.port),
    );
    let mut gitconfig = format!("[credential]\n\thelper = store --file {}\n", store.display());
    match trust {
        Trust::GitConfig => gitconfig.push_str(&format!("[http]\n\tsslCAInfo = {}\n", server.ca().display())),
        Trust::EnvVar => {
            env.var("GIT_SSL_CAINFO", server.ca().display().to_string());
        }
        Trust::SystemOnly => {}
    }
    std::fs::write(env.home().join(".gitconfig"), gitconfig).unwrap();
    env
}

fn assert_no_secret(o: &Output, secret: &str) {
    assert!(!o.out().contains(secret) && !o.err().contains(secret), "the password leaked:\n{}\n{}", o.out(), o.err());
}

#[test]
fn https_remote_with_the_token_only_in_a_credential_helper_delivers_and_another_machine_syncs_it() {
    let server = GitHttpServer::start(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let env = https_env(&server, &bus, TOKEN, Trust::GitConfig);

    let sent = send_doc(&env, "mac-studio", "Over https", BODY);
    sent.ok();
    assert_no_secret(&sent, TOKEN);
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &format!("file://{}", bare.display()));
    assert_eq!(git_ok(&env, &clone, &["rev-parse", "HEAD"]).trim(), commit, "the pushed commit is the branch tip");
    assert_document_committed(&env, &clone, "mac-studio", "Over https", BODY, &path, &commit);
    // the server demanded credentials, and the helper's answer got the push through
    let log = server.log();
    assert!(log.contains("GET /handoffs.git/info/refs?service=git-receive-pack 401"), "{log}");
    assert!(log.contains("GET /handoffs.git/info/refs?service=git-receive-pack 200"), "{log}");
    assert!(log.contains("POST /handoffs.git/git-receive-pack 200"), "{log}");
    let stored = std::fs::read_to_string(env.path().join("git-credentials")).unwrap();
    assert!(stored.contains(TOKEN), "credentials that worked stay in the helper: {stored}");

    // a second machine (its own HOME and clone, the same helper setup) syncs over https
    let laptop = https_env(&server, &bus, TOKEN, Trust::GitConfig);
    let v = sync_json(&laptop, "laptop");
    let docs = v["sync"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{v}");
    assert_eq!(docs[0]["title"], "Over https");
    assert_eq!(docs[0]["from"], "mac-studio");
    assert_eq!(docs[0]["content"], BODY);
    assert!(server.log().contains("POST /handoffs.git/git-upload-pack 200"), "cloned over https: {}", server.log());
    assert_eq!(sync_json(&laptop, "laptop")["sync"]["documents"].as_array().unwrap().len(), 0, "nothing new twice");
}

#[test]
fn a_wrong_password_from_the_credential_helper_is_an_auth_failure_naming_the_remote() {
    let server = GitHttpServer::start(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let wrong = "not-the-token-5521";
    let env = https_env(&server, &bus, wrong, Trust::GitConfig);

    let o = send_doc(&env, "mac", "denied", "x\n");
    assert_eq!(o.code(), 77, "an auth failure: {}\n{}", o.out(), o.err());
    assert!(!o.json()["ok"].as_bool().unwrap());
    let out = o.out();
    assert!(
        out.contains("authentication")
            && out.contains(&format!("localhost:{}/handoffs.git", server.port))
            && out.contains("git credential helper"),
        "{out}"
    );
    assert_no_secret(&o, wrong);
    assert_no_secret(&o, TOKEN);
    let log = server.log();
    assert_eq!(
        log.lines().filter(|l| l.ends_with(" 401")).count(),
        2,
        "asked once without, once with the helper's answer: {log}"
    );
    assert!(!log.lines().any(|l| l.ends_with(" 200")), "{log}");
    // the refused password is erased from the helper's store (`git credential reject`), as git does
    let stored = std::fs::read_to_string(env.path().join("git-credentials")).unwrap();
    assert!(!stored.contains(wrong), "the refused password is still stored: {stored}");
    let heads = std::process::Command::new("git").arg("-C").arg(&bare).args(["for-each-ref"]).output().unwrap();
    assert!(heads.stdout.is_empty(), "nothing landed");
}

#[test]
fn a_renamed_repository_redirect_is_followed_for_the_whole_push_as_git_does() {
    let server = GitHttpServer::start_with_moved(USER, TOKEN, "old.git=handoffs.git");
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let env = https_env(&server, &bus, TOKEN, Trust::GitConfig);
    // the config still names the repository's old path
    let config = env.path().join("config/handoff/config.toml");
    env.write_config(&std::fs::read_to_string(&config).unwrap().replace("handoffs.git", "old.git"));

    let sent = send_doc(&env, "mac-studio", "Moved", BODY);
    sent.ok();
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &format!("file://{}", bare.display()));
    assert_document_committed(&env, &clone, "mac-studio", "Moved", BODY, &path, &commit);
    let log = server.log();
    assert!(log.contains("GET /old.git/info/refs?service=git-receive-pack 301"), "{log}");
    // the pack goes straight to where the first request was redirected, never to the old path
    assert!(log.contains("POST /handoffs.git/git-receive-pack 200"), "{log}");
    assert!(!log.contains("POST /old.git/"), "{log}");
}

#[test]
fn a_plain_http_remote_with_the_token_in_a_credential_helper_delivers() {
    let server = GitHttpServer::start_plain(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let env = https_env(&server, &bus, TOKEN, Trust::SystemOnly);
    assert!(server.url("handoffs.git").starts_with("http://"));

    let sent = send_doc(&env, "mac-studio", "Plain", BODY);
    sent.ok();
    assert_no_secret(&sent, TOKEN);
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &format!("file://{}", bare.display()));
    assert_document_committed(&env, &clone, "mac-studio", "Plain", BODY, &path, &commit);
    let log = server.log();
    assert!(log.contains("GET /handoffs.git/info/refs?service=git-receive-pack 401"), "{log}");
    assert!(log.contains("POST /handoffs.git/git-receive-pack 200"), "{log}");
}

#[test]
fn https_server_down_queues_with_exit_75_then_delivers_exactly_once() {
    let mut server = GitHttpServer::start(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let env = https_env(&server, &bus, TOKEN, Trust::EnvVar);
    send_doc(&env, "mac", "first", "one\n").ok();

    server.stop();
    let o = send_doc(&env, "mac", "while down", "two\n");
    assert_eq!(o.code(), 75, "queued: {}\n{}", o.out(), o.err());
    assert!(o.out().contains("not reachable"), "{}", o.out());
    assert_eq!(flush(&env, "mac").code(), 75, "still down: still queued");

    server.restart();
    flush(&env, "mac").ok();
    flush(&env, "mac").ok();
    let clone = cli_clone(&env, &format!("file://{}", bare.display()));
    assert_eq!(
        git_ok(&env, &clone, &["log", "--format=%s"]).lines().collect::<Vec<_>>(),
        ["handoff from mac: while down", "handoff from mac: first"],
        "delivered once"
    );
    assert_eq!(git_ok(&env, &clone, &["show", "HEAD:latest.md"]), "two\n");
}

#[test]
fn a_certificate_no_trusted_ca_signed_is_a_clear_tls_error_never_a_success() {
    let server = GitHttpServer::start(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let bus = BusServer::start();
    let env = https_env(&server, &bus, TOKEN, Trust::SystemOnly);

    let o = send_doc(&env, "mac", "untrusted", "x\n");
    assert_ne!(o.code(), 0, "{}", o.out());
    assert_ne!(o.code(), 75, "retrying would not help: {}", o.out());
    assert!(!o.json()["ok"].as_bool().unwrap());
    let out = o.out();
    assert!(out.contains("TLS") && out.contains("not trusted") && out.contains("http.sslCAInfo"), "{out}");
    assert_no_secret(&o, TOKEN);
    assert_eq!(server.log(), "", "no request got past the TLS handshake");
    let heads = std::process::Command::new("git").arg("-C").arg(&bare).args(["for-each-ref"]).output().unwrap();
    assert!(heads.stdout.is_empty(), "nothing landed");
}
