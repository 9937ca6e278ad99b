//! Crash safety, client side: `handoff send` killed with SIGKILL at random moments against the real bus
//! server never loses an accepted message and never delivers one twice.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use std::time::{Duration, Instant};

fn bodies_from(bus: &BusServer, from: &str) -> Vec<String> {
    let v: serde_json::Value = bus.get(&format!("/messages?from={from}&limit=500")).json().unwrap();
    v["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_string()).collect()
}

/// Does the outbox hold a complete job carrying `text`?
fn queued_with(env: &Env, text: &str) -> bool {
    let outbox = env.path().join("data/handoff/outbox");
    std::fs::read_dir(outbox)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path().join("job.json")).is_ok_and(|j| j.contains(text)))
}

#[test]
fn send_killed_at_random_moments_never_loses_an_accepted_message_nor_delivers_it_twice() {
    let iterations: usize = std::env::var("HANDOFF_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    // how long one send takes here: kill times are spread over that span
    let t0 = Instant::now();
    let mut c = env.handoff("alpha");
    c.args(["send", "--to", "beta", "warm-up"]);
    run(c).ok();
    let span = t0.elapsed().as_micros().max(2_000) as u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut accepted, mut not_accepted, mut completed) = (0, 0, 0);
    for i in 0..iterations {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let text = format!("crash-test message {i}");
        let mut c = env.handoff("alpha");
        c.args(["send", "--to", "beta", &text]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng % (span * 12 / 10)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        let delivered = bodies_from(&bus, "alpha").iter().filter(|b| **b == text).count();
        assert!(delivered <= 1, "iteration {i}: delivered {delivered} times before any retry");
        let was_accepted = delivered == 1 || queued_with(&env, &text);
        // the next run delivers what the outbox holds
        let mut f = env.handoff("alpha");
        f.arg("flush");
        run(f).ok();
        let after = bodies_from(&bus, "alpha").iter().filter(|b| **b == text).count();
        if was_accepted {
            accepted += 1;
            assert_eq!(after, 1, "iteration {i}: an accepted message was delivered {after} times");
        } else {
            not_accepted += 1;
            assert_eq!(after, 0, "iteration {i}: a message that never reached the outbox appeared");
        }
    }
    println!(
        "crash: {iterations} kills over {span} µs: {accepted} accepted (each delivered once), {not_accepted} killed before the outbox write, {completed} finished first"
    );
    assert!(accepted > 0 && not_accepted + completed < iterations, "kills never landed mid-send");
    // the outbox is empty: nothing left behind to deliver later
    let mut f = env.handoff("alpha");
    f.args(["--json", "flush"]);
    run(f).ok();
}

/// Bodies in a `sync --format json` output, or None when the output is incomplete (killed mid-write).
fn shown_bodies(stdout: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    Some(v["sync"]["messages"].as_array()?.iter().map(|m| m["body"].as_str().unwrap_or_default().to_string()).collect())
}

#[test]
fn sync_killed_at_random_moments_loses_nothing_and_a_finished_sync_never_shows_a_message_again() {
    let rounds: usize = std::env::var("HANDOFF_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    let t0 = Instant::now();
    let mut c = env.handoff("beta");
    c.args(["sync", "--format", "json"]);
    run(c).ok();
    let span = t0.elapsed().as_micros().max(2_000) as u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut posted = Vec::new();
    // (body, shown by a sync that exited 0) and (body, shown by a killed sync whose output was complete)
    let (mut by_finished, mut by_killed) = (Vec::new(), Vec::new());
    let (mut killed, mut finished) = (0, 0);
    for r in 0..rounds {
        for k in 0..3 {
            let body = format!("round {r} message {k}");
            let resp = bus.post_json("/post", &serde_json::json!({ "from": "alpha", "to": "beta", "body": body }));
            assert!(resp.status().is_success());
            posted.push(body);
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut c = env.handoff("beta");
        c.args(["sync", "--format", "json"]).stdin(std::process::Stdio::null());
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng % (span * 12 / 10)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let shown = shown_bodies(&out.stdout);
        if out.status.success() {
            finished += 1;
            by_finished.extend(shown.expect("a finished sync prints complete JSON"));
        } else {
            killed += 1;
            by_killed.extend(shown.unwrap_or_default());
        }
    }
    let mut c = env.handoff("beta");
    c.args(["sync", "--format", "json"]);
    let last = run(c);
    last.ok();
    by_finished.extend(shown_bodies(&last.stdout).unwrap());
    println!("crash: {rounds} syncs, {killed} killed, {finished} finished first; {} messages", posted.len());
    for body in &posted {
        let f = by_finished.iter().filter(|b| *b == body).count();
        let k = by_killed.iter().filter(|b| *b == body).count();
        assert!(f + k >= 1, "{body:?} was never shown: lost between storing and acking");
        // a sync that finished marked what it showed; only a kill after printing and before that mark
        // may show a message again
        assert!(f <= 1, "{body:?} was shown by {f} finished syncs");
    }
    // every repeat is accounted for by a killed sync's complete output
    let repeats = by_finished.len() + by_killed.len() - posted.len();
    assert!(repeats <= by_killed.len(), "{repeats} repeats but killed syncs printed only {}", by_killed.len());
    assert!(killed > 0, "no kill landed mid-sync");
    let v: serde_json::Value = bus.get("/messages?to=beta&unread_by=beta&limit=500").json().unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 0, "everything was acked in the end");
}

/// Server-side count of commits whose subject names `title`.
#[cfg(feature = "git")]
fn commits_titled(env: &Env, bare: &std::path::Path, title: &str) -> usize {
    let log = crate::git::git(env, bare, &["log", "--format=%s", "main"]);
    String::from_utf8_lossy(&log.stdout).lines().filter(|s| s.ends_with(&format!(": {title}"))).count()
}

#[cfg(feature = "git")]
#[test]
fn send_doc_over_ssh_killed_at_random_moments_commits_and_points_to_each_accepted_document_once() {
    // the one-connection path: ssh started ahead, the commit made and checked out while it connects, the
    // payload step written with the pointer's; a kill anywhere in it, then a flush, must leave each
    // accepted document committed once and pointed to once, and nothing of one that was never accepted
    let iterations: usize =
        std::env::var("HANDOFF_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).map_or(14, |n: usize| n / 4 + 1);
    let (_sshd, bus, env, bare, _url) = crate::git::ssh_setup();
    let t0 = Instant::now();
    crate::git::send_doc(&env, "alpha", "warm-up", "warm\n").ok();
    let span = t0.elapsed().as_micros() as u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let (mut accepted, mut not_accepted) = (0, 0);
    for i in 0..iterations {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let title = format!("crash-doc-{i}");
        let doc = env.path().join(format!("{title}.md"));
        std::fs::write(&doc, format!("# {title}\n\nbody {i}\n")).unwrap();
        let mut c = env.handoff("alpha");
        c.args(["send", "--doc"]).arg(&doc).args(["--title", &title]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng % (span * 11 / 10)));
        let _ = child.kill();
        child.wait().unwrap();
        let pointers = || bodies_from(&bus, "alpha").iter().filter(|b| b.contains(&title)).count();
        let (committed, pointed) = (commits_titled(&env, &bare, &title), pointers());
        assert!(
            committed <= 1 && pointed <= 1,
            "iteration {i}: {committed} commits, {pointed} pointers before a retry"
        );
        let was_accepted = committed == 1 || pointed == 1 || queued_with(&env, &title);
        let mut f = env.handoff("alpha");
        f.arg("flush");
        let flushed = run(f);
        let (committed, pointed) = (commits_titled(&env, &bare, &title), pointers());
        if was_accepted {
            accepted += 1;
            assert_eq!((committed, pointed), (1, 1), "iteration {i}: {}\n{}", flushed.out(), flushed.err());
        } else {
            not_accepted += 1;
            assert_eq!(
                (committed, pointed),
                (0, 0),
                "iteration {i}: a document that never reached the outbox appeared"
            );
        }
    }
    println!("crash (git over ssh): {iterations} kills over {span} µs: {accepted} accepted, {not_accepted} not");
    assert!(accepted > 0, "no kill landed after the outbox write");
    let status = crate::git::git(&env, &crate::git::checkout(&env), &["status", "--porcelain"]);
    assert!(status.stdout.is_empty(), "the clone is left clean: {}", String::from_utf8_lossy(&status.stdout));
}
