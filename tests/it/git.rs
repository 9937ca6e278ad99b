//! The git channel end to end: the real `handoff` binary committing documents to real bare repositories
//! over `file://` and over `ssh://` to a real sshd; the git CLI, in its own clone, checks the result.

use crate::support::bus::BusServer;
use crate::support::sshd::Sshd;
use crate::support::{Env, OutputExt, run};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The git CLI in `env` (its HOME, no system config), in `dir`.
pub(crate) fn git(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    env.apply(&mut c);
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "user.name=Tester", "-c", "user.email=t@example.com"])
        .args(args);
    run(c)
}

/// `git ...` that must succeed; its stdout.
pub(crate) fn git_ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    let o = git(env, dir, args);
    o.ok();
    o.out()
}

/// A bare repository with `main` as its default branch.
pub(crate) fn bare_repo(env: &Env, at: &Path) -> PathBuf {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    git_ok(env, at.parent().unwrap(), &["init", "-q", "--bare", "-b", "main", at.to_str().unwrap()]);
    at.to_path_buf()
}

/// An env whose config has `[git]`, with the bus at `bus` (so there is no local-folder fallback: a git
/// document that cannot be delivered now stays queued).
pub(crate) fn env_with_git(remote: &str, bus: &BusServer) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!(
        "[git]\nremote = {remote:?}\ncheckout = {:?}\nbranch = \"main\"\n",
        checkout.display().to_string()
    ));
    env
}

/// A bare repository reached over file://, a bus server, and a client env whose config names both (the
/// first env only holds the repository).
fn file_setup() -> (Env, BusServer, Env, PathBuf, String) {
    let env0 = Env::new();
    let bare = bare_repo(&env0, &env0.path().join("srv/handoffs.git"));
    let url = format!("file://{}", bare.display());
    let bus = BusServer::start();
    let env = env_with_git(&url, &bus);
    (env0, bus, env, bare, url)
}

pub(crate) fn checkout(env: &Env) -> PathBuf {
    env.home().join("claude-handoffs")
}

/// `handoff send --doc - --title T --json` with `body` on stdin.
pub(crate) fn send_doc(env: &Env, machine: &str, title: &str, body: &str) -> Output {
    let mut c = env.handoff(machine);
    c.args(["send", "--doc", "-", "--title", title, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn flush(env: &Env, machine: &str) -> Output {
    let mut c = env.handoff(machine);
    c.args(["flush", "--json"]);
    run(c)
}

pub(crate) fn sync_json(env: &Env, machine: &str) -> Value {
    let mut c = env.handoff(machine);
    c.args(["sync", "--json"]);
    let o = run(c);
    o.ok();
    o.json()
}

/// The git receipt's `git:<path>@<commit>` from `send --json`.
pub(crate) fn receipt_uri(sent: &Output) -> (String, String) {
    let v = sent.json();
    let uri = v["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["receipt"]["uri"].as_str().filter(|u| u.starts_with("git:")))
        .unwrap_or_else(|| panic!("no git receipt in {v}"))
        .to_string();
    let (path, commit) = uri.strip_prefix("git:").unwrap().rsplit_once('@').unwrap();
    (path.to_string(), commit.to_string())
}

/// A fresh clone by the git CLI, to check what the server really holds.
pub(crate) fn cli_clone(env: &Env, url: &str) -> PathBuf {
    let dir = env.path().join(format!("verify-{}", uuid_like()));
    git_ok(env, env.path(), &["clone", "-q", url, dir.to_str().unwrap()]);
    dir
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Checks one sent document in a CLI clone: commit author, message, both copies byte for byte.
pub(crate) fn assert_document_committed(
    env: &Env,
    clone: &Path,
    machine: &str,
    title: &str,
    body: &str,
    path: &str,
    commit: &str,
) {
    assert!(
        path.starts_with("handoffs/20") && path.contains(&format!("-{machine}-")) && path.ends_with(".md"),
        "archive path {path}"
    );
    let log = git_ok(env, clone, &["log", "-1", "--format=%H%n%an%n%ae%n%s%n%b", commit]);
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some(commit));
    assert_eq!(lines.next(), Some(machine), "author is the machine");
    assert_eq!(lines.next(), Some(format!("{machine}@handoff.invalid").as_str()));
    assert_eq!(lines.next(), Some(format!("handoff from {machine}: {title}").as_str()));
    assert!(log.contains(&format!("Handoff-Path: {path}")), "{log}");
    assert!(log.contains("Handoff-Key: "), "{log}");
    assert_eq!(git_ok(env, clone, &["show", &format!("{commit}:{path}")]), body, "archived copy is exact");
    assert_eq!(git_ok(env, clone, &["show", &format!("{commit}:latest.md")]), body, "latest.md is exact");
    let files = git_ok(env, clone, &["show", "--format=", "--name-only", commit]);
    let mut files: Vec<&str> = files.lines().collect();
    files.sort();
    assert_eq!(files, [path, "latest.md"], "the commit touches exactly the two copies");
}

pub(crate) const BODY: &str =
    "# Session recap\n\nDone: the parser. Next: \"quotes\", $(not run) and `ticks`.\nÜnïcödé ✓\n\ntrailing spaces   \n";

#[test]
fn file_remote_document_is_committed_pushed_and_pointed_to() {
    let (_env0, _bus, env, _bare, url) = file_setup();

    let sent = send_doc(&env, "mac-studio", "Session recap", BODY);
    sent.ok();
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &url);
    assert_eq!(git_ok(&env, &clone, &["rev-parse", "HEAD"]).trim(), commit, "the pushed commit is the branch tip");
    assert_document_committed(&env, &clone, "mac-studio", "Session recap", BODY, &path, &commit);
    // the user's own clone is a normal git clone on main, clean, tracking origin/main
    let status = git_ok(&env, &checkout(&env), &["status", "--porcelain=v1", "--branch"]);
    assert_eq!(status.trim(), "## main...origin/main", "{status}");
    assert_eq!(std::fs::read_to_string(checkout(&env).join("latest.md")).unwrap(), BODY);

    // the pointer on the bus names the document; another machine fetches it byte for byte
    let other = sync_json(&env, "laptop");
    let msg = &other["sync"]["messages"][0];
    let item = &msg["pointer"]["items"][0];
    assert_eq!(item["channel"], "git");
    assert_eq!(item["uri"].as_str().unwrap(), format!("git:{path}@{commit}"));
    let out = env.path().join("fetched");
    let mut c = env.handoff("laptop");
    c.args(["fetch", msg["id"].as_str().unwrap(), "--out", out.to_str().unwrap()]);
    run(c).ok();
    let got: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].file_name(), "Session_recap.md", "a fetched document keeps a .md name");
    assert_eq!(std::fs::read_to_string(got[0].path()).unwrap(), BODY);
}

#[test]
fn an_update_of_the_clone_a_killed_run_left_half_done_is_taken_back_and_the_users_files_stay() {
    let (_env0, _bus, env, _bare, url) = file_setup();
    let co = checkout(&env);
    // a file of the user's in the shared repository, then one handoff document
    let other = cli_clone(&env, &url);
    std::fs::write(other.join("user.md"), "u1\n").unwrap();
    git_ok(&env, &other, &["add", "user.md"]);
    git_ok(&env, &other, &["commit", "-qm", "the user's notes"]);
    git_ok(&env, &other, &["push", "-q", "origin", "HEAD:main"]);
    send_doc(&env, "mac", "one", "one\n").ok();
    let from = git_ok(&env, &co, &["rev-parse", "HEAD"]).trim().to_string();

    // the update a killed run was making: latest.md and user.md change, handoffs/x.md is added
    git_ok(&env, &co, &["switch", "-q", "-c", "scratch"]);
    std::fs::create_dir_all(co.join("handoffs")).unwrap();
    std::fs::write(co.join("latest.md"), "the killed run's document, long enough to be cut short\n").unwrap();
    std::fs::write(co.join("user.md"), "u2\n").unwrap();
    std::fs::write(co.join("handoffs/x.md"), "x\n").unwrap();
    git_ok(&env, &co, &["add", "-A"]);
    git_ok(&env, &co, &["commit", "-qm", "scratch"]);
    let to = git_ok(&env, &co, &["rev-parse", "HEAD"]).trim().to_string();
    git_ok(&env, &co, &["switch", "-q", "main"]);
    git_ok(&env, &co, &["branch", "-q", "-D", "scratch"]);
    // ...killed part way: latest.md cut short, x.md written and staged, user.md meanwhile edited by the
    // user, git's index lock left behind, the note naming the update
    std::fs::write(co.join("latest.md"), "the killed run's doc").unwrap();
    std::fs::write(co.join("handoffs/x.md"), "x\n").unwrap();
    git_ok(&env, &co, &["add", "handoffs/x.md"]);
    std::fs::write(co.join("user.md"), "the user's own edit\n").unwrap();
    std::fs::write(co.join(".git/index.lock"), "").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options().write(true).open(co.join(".git/index.lock")).unwrap().set_modified(old).unwrap();
    std::fs::write(co.join(".git/handoff-advancing"), format!("{from} {to}\n")).unwrap();

    let sent = send_doc(&env, "mac", "after the crash", "two\n");
    sent.ok();
    assert_eq!(std::fs::read_to_string(co.join("latest.md")).unwrap(), "two\n");
    assert!(!co.join("handoffs/x.md").exists(), "the killed run's file is taken back");
    assert!(!co.join(".git/handoff-advancing").exists() && !co.join(".git/index.lock").exists());
    assert_eq!(std::fs::read_to_string(co.join("user.md")).unwrap(), "the user's own edit\n", "the user's edit stays");
    let status = git_ok(&env, &co, &["status", "--porcelain=v1"]);
    assert_eq!(status.trim(), "M user.md", "only the user's edit differs: {status}");
    let log = git_ok(&env, &cli_clone(&env, &url), &["log", "--format=%s"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["handoff from mac: after the crash", "handoff from mac: one", "the user's notes"],
        "nothing of the killed update was pushed"
    );
}

#[test]
fn embedded_default_hands_documents_between_two_machine_names() {
    let env = Env::new();
    let sent = send_doc(&env, "alpha", "Plan for beta", BODY);
    sent.ok();
    let (path, commit) = receipt_uri(&sent);
    let bare = env.path().join("data/handoff/handoffs.git");
    let clone = cli_clone(&env, &format!("file://{}", bare.display()));
    assert_document_committed(&env, &clone, "alpha", "Plan for beta", BODY, &path, &commit);

    let beta = sync_json(&env, "beta");
    let docs = beta["sync"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{beta}");
    assert_eq!(docs[0]["title"], "Plan for beta");
    assert_eq!(docs[0]["from"], "alpha");
    assert_eq!(docs[0]["content"], BODY, "latest.md changed, so its content is shown");
    let location = PathBuf::from(docs[0]["location"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&location).unwrap(), BODY, "beta's own checkout has the file");
    assert_ne!(location, checkout(&env));
    assert_eq!(
        sync_json(&env, "beta")["sync"]["documents"].as_array().unwrap().len(),
        0,
        "nothing new the second time"
    );
    assert_eq!(
        sync_json(&env, "alpha")["sync"]["documents"].as_array().unwrap().len(),
        0,
        "alpha does not get its own document"
    );

    // the hook output carries the document too
    let mut c = env.handoff("gamma");
    c.args(["sync", "--format", "claude-hook"]);
    let hook = run(c);
    hook.ok();
    let ctx = hook.json()["hookSpecificOutput"]["additionalContext"].as_str().unwrap().to_string();
    assert!(ctx.contains("Plan for beta") && ctx.contains("Done: the parser."), "{ctx}");
}

#[test]
fn two_machines_sending_twenty_documents_each_at_once_lose_nothing() {
    let env0 = Env::new();
    let bare = bare_repo(&env0, &env0.path().join("srv/handoffs.git"));
    let url = format!("file://{}", bare.display());
    let bus = BusServer::start();
    let writers: Vec<(String, Env)> =
        ["mac", "linux"].iter().map(|m| (m.to_string(), env_with_git(&url, &bus))).collect();
    let sent: BTreeMap<String, String> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .map(|(machine, env)| {
                scope.spawn(move || {
                    let mut mine = BTreeMap::new();
                    for i in 0..20 {
                        let title = format!("{machine} note {i:02}");
                        let body = format!("# {title}\n\nwritten by {machine}, number {i}\n");
                        let o = send_doc(env, machine, &title, &body);
                        assert_eq!(o.code(), 0, "send {title}: {}\n{}", o.out(), o.err());
                        mine.insert(title, body);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sent.len(), 40);

    let clone = cli_clone(&env0, &url);
    let files = git_ok(&env0, &clone, &["ls-tree", "-r", "--name-only", "HEAD", "handoffs"]);
    let files: Vec<&str> = files.lines().collect();
    assert_eq!(files.len(), 40, "every document is archived, none overwritten: {files:?}");
    let contents: BTreeSet<String> =
        files.iter().map(|f| git_ok(&env0, &clone, &["show", &format!("HEAD:{f}")])).collect();
    assert_eq!(contents, sent.values().cloned().collect::<BTreeSet<_>>(), "exact contents of all 40");
    assert_eq!(git_ok(&env0, &clone, &["rev-list", "--count", "HEAD"]).trim(), "40", "one commit per document");
    assert_eq!(git_ok(&env0, &clone, &["rev-list", "--merges", "HEAD"]).trim(), "", "history is linear");
    git_ok(&env0, &clone, &["fsck", "--strict"]);
    // latest.md holds the newest document (by the date each commit records)
    let log = git_ok(
        &env0,
        &clone,
        &[
            "log",
            "--format=%(trailers:key=Handoff-Date,valueonly,separator=)%x09%(trailers:key=Handoff-Path,valueonly,separator=)",
        ],
    );
    let newest = log.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split_once('\t').unwrap()).max().unwrap();
    let newest_path = newest.1.trim();
    assert_eq!(
        git_ok(&env0, &clone, &["show", "HEAD:latest.md"]),
        git_ok(&env0, &clone, &["show", &format!("HEAD:{newest_path}")])
    );

    // a third machine sees exactly those 40 as new, then none
    let third = env_with_git(&url, &bus);
    let first = sync_json(&third, "desk");
    let titles: BTreeSet<String> = first["sync"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first["sync"]["documents"].as_array().unwrap().len(), 40, "{first}");
    assert_eq!(titles, sent.keys().cloned().collect::<BTreeSet<_>>());
    assert_eq!(sync_json(&third, "desk")["sync"]["documents"].as_array().unwrap().len(), 0);
}

#[test]
fn unreachable_remote_queues_with_exit_75_then_delivers_exactly_once() {
    let (env0, _bus, env, bare, url) = file_setup();
    send_doc(&env, "mac", "first", "one\n").ok();

    let away = env0.path().join("srv/unmounted.git");
    std::fs::rename(&bare, &away).unwrap();
    let o = send_doc(&env, "mac", "written offline", "two\n");
    assert_eq!(o.code(), 75, "queued: {}\n{}", o.out(), o.err());
    assert!(o.out().contains("not reachable"), "{}", o.out());
    let local = git_ok(&env, &checkout(&env), &["log", "-1", "--format=%s"]);
    assert_eq!(local.trim(), "handoff from mac: written offline", "committed locally while offline");
    assert_eq!(flush(&env, "mac").code(), 75, "still offline: still queued");

    std::fs::rename(&away, &bare).unwrap();
    flush(&env, "mac").ok();
    flush(&env, "mac").ok();
    let clone = cli_clone(&env, &url);
    let subjects = git_ok(&env, &clone, &["log", "--format=%s"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["handoff from mac: written offline", "handoff from mac: first"],
        "delivered once"
    );
    assert_eq!(git_ok(&env, &clone, &["show", "HEAD:latest.md"]), "two\n");
}

#[test]
fn concurrent_offline_commits_replay_on_top_and_the_newer_latest_wins() {
    let env0 = Env::new();
    let bare = bare_repo(&env0, &env0.path().join("srv/handoffs.git"));
    let url = format!("file://{}", bare.display());
    let bus = BusServer::start();
    let (a, b) = (env_with_git(&url, &bus), env_with_git(&url, &bus));
    send_doc(&a, "a", "base", "base\n").ok();
    // a goes offline and writes; then b writes a newer document and pushes it
    let away = env0.path().join("srv/away.git");
    std::fs::rename(&bare, &away).unwrap();
    assert_eq!(send_doc(&a, "a", "older, offline", "older\n").code(), 75);
    std::fs::rename(&away, &bare).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    send_doc(&b, "b", "newer", "newer\n").ok();
    // a comes back: its commit is replayed on top of b's; latest.md stays b's (newer), a's is archived
    flush(&a, "a").ok();
    let clone = cli_clone(&env0, &url);
    assert_eq!(git_ok(&env0, &clone, &["show", "HEAD:latest.md"]), "newer\n");
    let archived = git_ok(&env0, &clone, &["ls-tree", "-r", "--name-only", "HEAD", "handoffs"]);
    let contents: BTreeSet<String> =
        archived.lines().map(|f| git_ok(&env0, &clone, &["show", &format!("HEAD:{f}")])).collect();
    assert_eq!(contents, ["base\n", "newer\n", "older\n"].map(String::from).into_iter().collect());
    assert_eq!(git_ok(&env0, &clone, &["rev-list", "--merges", "HEAD"]).trim(), "");
    assert_eq!(git_ok(&env0, &clone, &["log", "-1", "--format=%s"]).trim(), "handoff from a: older, offline");
}

#[test]
fn a_clone_in_a_bad_state_gets_a_clear_error_and_keeps_the_users_changes() {
    let (env0, _bus, env, _bare, url) = file_setup();
    let co = checkout(&env);
    send_doc(&env, "mac", "first", "one\n").ok();

    // 1. uncommitted changes elsewhere + an untracked file: the send goes through, both are kept
    std::fs::write(co.join("notes.txt"), "mine, untracked\n").unwrap();
    let archived = git_ok(&env, &co, &["ls-files", "handoffs"]);
    let archived = archived.trim();
    std::fs::write(co.join(archived), "my local edit\n").unwrap();
    send_doc(&env, "mac", "second", "two\n").ok();
    assert_eq!(std::fs::read_to_string(co.join("notes.txt")).unwrap(), "mine, untracked\n");
    assert_eq!(std::fs::read_to_string(co.join(archived)).unwrap(), "my local edit\n");
    git_ok(&env, &co, &["checkout", "--", archived]);

    // 2. uncommitted change to latest.md: refused, change kept, document stays queued
    std::fs::write(co.join("latest.md"), "my draft\n").unwrap();
    let o = send_doc(&env, "mac", "third", "three\n");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("latest.md") && o.out().contains("stash"), "{}", o.out());
    assert_eq!(std::fs::read_to_string(co.join("latest.md")).unwrap(), "my draft\n");
    git_ok(&env, &co, &["stash", "-q"]);
    flush(&env, "mac").ok();
    assert_eq!(std::fs::read_to_string(co.join("latest.md")).unwrap(), "three\n");

    // 3. detached HEAD: refused with the fix, HEAD untouched
    git_ok(&env, &co, &["checkout", "-q", "--detach", "HEAD~1"]);
    let detached_at = git_ok(&env, &co, &["rev-parse", "HEAD"]);
    let o = send_doc(&env, "mac", "fourth", "four\n");
    assert_ne!(o.code(), 0);
    assert!(o.out().contains("detached") && o.out().contains("git -C"), "{}", o.out());
    assert_eq!(git_ok(&env, &co, &["rev-parse", "HEAD"]), detached_at);
    git_ok(&env, &co, &["checkout", "-q", "main"]);
    flush(&env, "mac").ok();

    // 4. wrong remote: refused, naming both and the fix; nothing pushed anywhere
    let elsewhere = bare_repo(&env0, &env0.path().join("srv/other.git"));
    git_ok(&env, &co, &["remote", "set-url", "origin", elsewhere.to_str().unwrap()]);
    let o = send_doc(&env, "mac", "fifth", "five\n");
    assert_ne!(o.code(), 0);
    assert!(o.out().contains("remote set-url origin"), "{}", o.out());
    assert_eq!(
        git(&env, &elsewhere, &["rev-parse", "--verify", "-q", "refs/heads/main"]).code(),
        1,
        "nothing pushed to the wrong remote"
    );

    let clone = cli_clone(&env, &url);
    let subjects = git_ok(&env, &clone, &["log", "--format=%s"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["handoff from mac: fourth", "handoff from mac: third", "handoff from mac: second", "handoff from mac: first"]
    );
}

/// sshd serving git: a bare repo in its temp dir and a client env whose `~/.ssh/config` names it `gitsrv`.
pub(crate) fn ssh_setup() -> (Sshd, BusServer, Env, PathBuf, String) {
    let sshd = Sshd::start();
    let bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    sshd.setup_client(&mut env, "gitsrv");
    let bare = bare_repo(&env, &sshd.server_dir("repos").join("handoffs.git"));
    let url = format!("gitsrv:{}", bare.display());
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!("[git]\nremote = {url:?}\ncheckout = {:?}\n", checkout.display().to_string()));
    (sshd, bus, env, bare, url)
}

#[test]
fn ssh_remote_document_is_verified_by_the_git_cli_and_survives_an_outage() {
    let (mut sshd, _bus, env, _bare, url) = ssh_setup();
    let sent = send_doc(&env, "droplet-user", "Over ssh", BODY);
    sent.ok();
    let (path, commit) = receipt_uri(&sent);
    let clone = cli_clone(&env, &url);
    assert_document_committed(&env, &clone, "droplet-user", "Over ssh", BODY, &path, &commit);

    sshd.stop();
    let o = send_doc(&env, "droplet-user", "while down", "down\n");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    sshd.restart();
    flush(&env, "droplet-user").ok();
    flush(&env, "droplet-user").ok();
    git_ok(&env, &clone, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        git_ok(&env, &clone, &["log", "--format=%s"]).lines().collect::<Vec<_>>(),
        ["handoff from droplet-user: while down", "handoff from droplet-user: Over ssh"]
    );

    // a changed host key is refused (never silently accepted), naming known_hosts
    sshd.restart_with_new_host_key();
    let o = send_doc(&env, "droplet-user", "after key change", "x\n");
    assert_ne!(o.code(), 0);
    assert!(o.out().contains("known_hosts"), "{}", o.out());
    let mut c = env.handoff("droplet-user");
    c.args(["doctor"]);
    let doctor = run(c);
    assert!(doctor.out().contains("✗ git") && doctor.out().contains("known_hosts"), "{}", doctor.out());
}

#[test]
fn a_push_refused_by_a_pre_receive_hook_is_a_failure_and_stays_queued() {
    let (_sshd, _bus, env, bare, url) = ssh_setup();
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'policy: no handoffs on Fridays' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let o = send_doc(&env, "mac", "refused", "nope\n");
    assert_ne!(o.code(), 0, "a refused push is never a success: {}", o.out());
    assert_eq!(o.code(), 75, "the document stays queued");
    assert!(
        o.out().contains("pre-receive hook declined") && o.out().contains("policy: no handoffs on Fridays"),
        "{}",
        o.out()
    );
    assert!(!o.json()["ok"].as_bool().unwrap());
    assert_eq!(git(&env, &bare, &["rev-parse", "--verify", "-q", "refs/heads/main"]).code(), 1, "nothing landed");
    assert_eq!(flush(&env, "mac").code(), 75, "still refused, still queued");

    std::fs::remove_file(&hook).unwrap();
    flush(&env, "mac").ok();
    let clone = cli_clone(&env, &url);
    assert_eq!(git_ok(&env, &clone, &["log", "--format=%s"]).trim(), "handoff from mac: refused", "delivered once");
    assert_eq!(git_ok(&env, &clone, &["show", "HEAD:latest.md"]), "nope\n");
}

#[test]
fn an_ssh_key_the_server_refuses_is_an_auth_failure_naming_what_was_tried() {
    let (_sshd, _bus, env, bare, url) = ssh_setup();
    let checkout = env.home().join("claude-handoffs");
    // replace the authorised key with an unrelated one (the good one kept aside for later)
    let wrong = env.home().join(".ssh/id_handoff_test");
    let good = env.home().join("good-keys");
    std::fs::create_dir(&good).unwrap();
    let keys = |from: &Path, to: &Path| {
        for name in ["id_handoff_test", "id_handoff_test.pub"] {
            let _ = std::fs::remove_file(to.join(name));
            if from.join(name).exists() {
                std::fs::copy(from.join(name), to.join(name)).unwrap();
            }
        }
    };
    let ssh_dir = env.home().join(".ssh");
    keys(&ssh_dir, &good);
    std::fs::remove_file(&wrong).unwrap();
    let _ = std::fs::remove_file(ssh_dir.join("id_handoff_test.pub"));
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&wrong).output().unwrap();
    assert!(out.status.success());
    let o = send_doc(&env, "mac", "denied", "x\n");
    assert_eq!(o.code(), 77, "{}\n{}", o.out(), o.err());
    assert!(
        o.out().contains("authentication") && o.out().contains("~/.ssh/id_handoff_test") && o.out().contains("gitsrv"),
        "{}",
        o.out()
    );
    // the document is committed while ssh's handshake runs (as `git commit` precedes `git push`); refused
    // for good, that commit is taken back: no branch, no files, so no later send can publish it
    assert_eq!(git(&env, &checkout, &["rev-parse", "--verify", "-q", "refs/heads/main"]).code(), 1);
    assert!(!checkout.join("latest.md").exists() && !checkout.join("handoffs").exists());

    // the same on a branch with history: it goes back to the last pushed commit, files included
    let denied = env.home().join("denied-keys");
    std::fs::create_dir(&denied).unwrap();
    keys(&ssh_dir, &denied);
    keys(&good, &ssh_dir);
    send_doc(&env, "mac", "first", "one\n").ok();
    let pushed = git_ok(&env, &checkout, &["rev-parse", "HEAD"]);
    keys(&denied, &ssh_dir);
    assert_eq!(send_doc(&env, "mac", "denied again", "two\n").code(), 77);
    assert_eq!(git_ok(&env, &checkout, &["rev-parse", "HEAD"]), pushed);
    assert_eq!(std::fs::read_to_string(checkout.join("latest.md")).unwrap(), "one\n");
    assert_eq!(git_ok(&env, &checkout, &["status", "--porcelain"]), "", "no file of the failed send is left");

    keys(&good, &ssh_dir);
    send_doc(&env, "mac", "third", "three\n").ok();
    let clone = cli_clone(&env, &url);
    assert_eq!(
        git_ok(&env, &clone, &["log", "--format=%s"]).lines().collect::<Vec<_>>(),
        ["handoff from mac: third", "handoff from mac: first"],
        "the refused sends never reach {}",
        bare.display()
    );
}

#[test]
fn a_send_cut_short_by_its_deadline_returns_then_though_ssh_hangs_and_the_next_run_delivers_once() {
    let (_sshd, _bus, env, bare, url) = ssh_setup();
    let cfg = std::fs::read_to_string(env.path().join("config/handoff/config.toml")).unwrap();
    env.write_config(&format!("{cfg}[budget]\nsend = \"2s\"\n"));
    // an ssh that never answers (a server that accepted the connection and went silent)
    let hang = env.path().join("hanging-ssh");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 60\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = std::time::Instant::now();
    let mut c = env.handoff("mac");
    c.args(["send", "--doc", "-", "--title", "stuck", "--json"])
        .env("GIT_SSH_COMMAND", &hang)
        .env("GIT_SSH_VARIANT", "ssh");
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"held up\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let took = t.elapsed();
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(took < std::time::Duration::from_secs(10), "the process waited {took:?} for a 2 s deadline");
    // with ssh working again, the queued document arrives, once
    flush(&env, "mac").ok();
    flush(&env, "mac").ok();
    let clone = cli_clone(&env, &url);
    assert_eq!(git_ok(&env, &clone, &["log", "--format=%s"]).trim(), "handoff from mac: stuck", "{}", bare.display());
}

#[test]
fn concurrent_pushes_over_ssh_that_the_server_rejects_are_replayed_until_all_land() {
    let (sshd, bus, mut env_a, bare, url) = ssh_setup();
    // a slow pre-receive hook widens the window in which both pushes are in flight, so the server itself
    // refuses the loser's ref update (reported only through the push-update-reference callback)
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\ncat >/dev/null\nsleep 0.3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env_b = Env::new();
    bus.write_env_file(&env_b);
    sshd.setup_client(&mut env_b, "gitsrv");
    env_b.write_config(&format!("[git]\nremote = {url:?}\ncheckout = {:?}\n", checkout(&env_b).display().to_string()));

    env_a.var("RUST_LOG", "handoff_channels::git=info");
    env_b.var("RUST_LOG", "handoff_channels::git=info");
    let details: Vec<(String, String)> = std::thread::scope(|scope| {
        let hs: Vec<_> = [("a", &env_a), ("b", &env_b)]
            .into_iter()
            .map(|(m, env)| {
                scope.spawn(move || {
                    (0..6)
                        .map(|i| {
                            let o = send_doc(env, m, &format!("{m} {i}"), &format!("{m} body {i}\n"));
                            assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
                            (
                                o.json()["receipt"]["steps"][0]["receipt"]["detail"].as_str().unwrap().to_string(),
                                o.err(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(details.iter().any(|(d, _)| d.contains("after")), "some push had to be retried: {details:?}");
    assert!(
        details.iter().any(|(_, log)| log.contains("the server rejected the push (push-update-reference)")),
        "the server itself refused a ref update at least once: {details:?}"
    );
    let clone = cli_clone(&env_a, &url);
    let files = git_ok(&env_a, &clone, &["ls-tree", "-r", "--name-only", "HEAD", "handoffs"]);
    assert_eq!(files.lines().count(), 12, "{files}");
    assert_eq!(git_ok(&env_a, &clone, &["rev-list", "--count", "HEAD"]).trim(), "12");
    assert_eq!(git_ok(&env_a, &clone, &["rev-list", "--merges", "HEAD"]).trim(), "");
}
