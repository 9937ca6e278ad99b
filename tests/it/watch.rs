//! `handoff watch` against a real `handoff bus serve` (messages posted with curl), and `watch install`'s
//! systemd unit checked by `systemd-analyze verify`.

use crate::mcp::curl_post;
use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run, tool};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The runs the watcher's command made so far (one file per run, its stdin inside).
fn runs(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

fn wait_for_runs(dir: &Path, n: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let r = runs(dir);
        if r.len() >= n || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_runs_its_command_once_per_batch_and_outlives_a_bus_outage() {
    let mut bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    let out = env.path().join("runs");
    std::fs::create_dir_all(&out).unwrap();
    // one file per run ($$ is the run's own shell), the digest inside
    let exec = format!("cat > '{}'/run-$(date +%s%N)-$$.txt", out.display());
    let mut c = env.handoff("linux");
    c.args(["watch", "--exec", &exec, "--poll", "2s"]).stdin(Stdio::null()).stdout(Stdio::null());
    let mut w = Watcher(c.spawn().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    // a second watcher for the same machine is refused
    let mut second = env.handoff("linux");
    second.args(["watch", "--exec", "true"]);
    let o = run(second);
    assert_eq!(o.code(), 1, "{}", o.err());
    assert!(o.err().contains("already running"), "{}", o.err());

    // a batch posted together: one run, every message in its digest
    for body in ["one", "two", "three"] {
        curl_post(&bus, json!({ "from": "mac", "to": "linux", "body": format!("batch {body}") }));
    }
    let r = wait_for_runs(&out, 1, Duration::from_secs(20));
    assert_eq!(r.len(), 1, "{r:#?}");
    for body in ["one", "two", "three"] {
        assert!(r[0].contains(&format!("batch {body}")), "{}", r[0]);
    }
    assert!(r[0].starts_with(handoff_channels::untrusted::PREAMBLE), "{}", r[0]);
    // not again for the same messages (several long-polls go by)
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(runs(&out).len(), 1);

    // the bus goes away and comes back: the watcher keeps running and picks up what is new
    bus.kill();
    std::thread::sleep(Duration::from_secs(4));
    assert!(w.0.try_wait().unwrap().is_none(), "watch exited while the bus was down");
    bus.restart();
    curl_post(&bus, json!({ "from": "mac", "to": "linux", "body": "after the outage" }));
    let r = wait_for_runs(&out, 2, Duration::from_secs(40));
    assert_eq!(r.len(), 2, "{r:#?}");
    assert!(r[1].contains("after the outage") && !r[1].contains("batch one"), "{}", r[1]);
    // shown once: the next sync has nothing of it
    let mut sync = env.handoff("linux");
    sync.args(["sync", "--json"]);
    assert_eq!(run(sync).json()["sync"]["messages"], json!([]));
    let _ = w.0.kill();
}

#[test]
fn watch_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it() {
    let env = Env::new();
    let mut c = env.handoff("linux");
    // quotes, $ and % must reach the command unexpanded by systemd
    c.args([
        "watch",
        "install",
        "--no-enable",
        "--exec",
        "cat > \"$HOME/digest.txt\"; echo 100%",
        "--quiet-hours",
        "22:00-07:00",
        "--max-runs-per-hour",
        "4",
    ]);
    let o = run(c);
    o.ok();
    let unit = env.path().join("config/systemd/user/handoff-watch.service");
    let text = std::fs::read_to_string(&unit).unwrap_or_else(|e| panic!("{e}: {}", o.out()));
    assert!(text.contains("\"--exec\" \"cat > \\\"$$HOME/digest.txt\\\"; echo 100%%\""), "{text}");
    assert!(text.contains("\"--machine\" \"linux\""), "{text}");
    let verify = |path: &Path| {
        let mut c = std::process::Command::new(tool("systemd-analyze"));
        c.arg("verify").arg(path);
        env.apply(&mut c);
        run(c)
    };
    let v = verify(&unit);
    assert_eq!(v.code(), 0, "systemd-analyze verify refused the unit:\n{}\n{}", v.err(), text);
    // the verifier does check: a broken copy is refused
    let broken = env.path().join("broken.service");
    std::fs::write(&broken, text.replace("ExecStart=\"/", "ExecStart=\"relative/")).unwrap();
    assert_ne!(verify(&broken).code(), 0);
    let mut c = env.handoff("linux");
    c.args(["watch", "uninstall", "--no-enable"]);
    run(c).ok();
    assert!(!unit.exists());
}

#[test]
fn watch_every_runs_sync_on_a_schedule() {
    // the embedded default: no server
    let env = Env::new();
    let log = env.path().join("watch.out");
    let mut c = env.handoff("linux");
    c.args(["watch", "--every", "1s"]).stdin(Stdio::null()).stdout(std::fs::File::create(&log).unwrap());
    let _w = Watcher(c.spawn().unwrap());
    let mut send = env.handoff("mac");
    send.args(["send", "--to", "linux", "scheduled pick-up"]);
    run(send).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap().contains("scheduled pick-up") {
        assert!(Instant::now() < deadline, "sync never ran: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut sync = env.handoff("linux");
    sync.args(["sync", "--json"]);
    assert_eq!(run(sync).json()["sync"]["messages"], json!([]), "the scheduled sync showed it already");
}
