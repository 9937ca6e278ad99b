//! handoff's client against a Flask bus in the style of the original (tests/fixtures/original_bus.py),
//! which knows nothing of handoff: no idempotency keys, no long-poll, ids that may be hex strings.

use crate::support::{Env, OutputExt, free_port, repo_root, run};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Flask bus in the style of the original, which stores whatever it is sent.
pub(crate) struct OriginalBus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl OriginalBus {
    /// Starts one; `id_style` is `numeric` or `hex`.
    pub(crate) fn start(id_style: &str) -> Self {
        Self::start_on(id_style, free_port())
    }

    /// Starts on `port` with a fresh, empty data file.
    pub(crate) fn start_on(id_style: &str, port: u16) -> Self {
        let python = repo_root().join(".test-tools/venv/bin/python");
        assert!(python.exists(), "python venv missing: run `bash scripts/install-test-deps.sh`");
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(python)
            .arg(repo_root().join("tests/fixtures/original_bus.py"))
            .env("BUS_PASS", crate::support::bus::PASSWORD)
            .env("BUS_DATA", dir.path().join("bus.jsonl"))
            .env("PORT", port.to_string())
            .env("ID_STYLE", id_style)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::blocking::Client::new();
        loop {
            if let Ok(r) =
                client.get(format!("{url}/health")).basic_auth("claude", Some(crate::support::bus::PASSWORD)).send()
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Flask bus did not start (is flask installed? run `bash scripts/install-test-deps.sh`)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        OriginalBus { child, url, _dir: dir }
    }
}

impl Drop for OriginalBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn round_trip(id_style: &str) {
    let bus = OriginalBus::start(id_style);
    let env = Env::new();
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER=claude\nBUS_PASS={}\nBUS_URL={}\n", crate::support::bus::PASSWORD, bus.url),
    );
    let f = env.path().join("notes.txt");
    std::fs::write(&f, "payload through the local folder").unwrap();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "plain message"]);
    run(c).ok();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "any", "broadcast"]);
    run(c).ok();
    let mut c = env.handoff("b");
    c.args(["sync", "--json"]);
    let o = run(c);
    o.ok();
    let v = o.json();
    let ms = v["sync"]["messages"].as_array().unwrap();
    let bodies: Vec<&str> = ms.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["plain message", "broadcast"]);
    if id_style == "hex" {
        assert!(ms.iter().all(|m| m["id"].as_str().unwrap().len() == 12), "hex ids kept as opaque strings: {ms:?}");
    }
    let mut c = env.handoff("b");
    c.args(["sync", "--json"]);
    let o = run(c);
    o.ok();
    assert!(o.json()["sync"]["messages"].as_array().unwrap().is_empty(), "acks reached the original bus");
    let mut c = env.handoff("c");
    c.args(["sync", "--json"]);
    let o = run(c);
    let bodies: Vec<String> = o.json()["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["broadcast"]);
}

#[test]
fn handoff_works_against_an_original_style_bus_with_numeric_ids() {
    round_trip("numeric");
}

#[test]
fn handoff_works_against_an_original_style_bus_with_hex_ids() {
    round_trip("hex");
}

/// The original bus reports no instance id: handoff knows it by its first message. Replaced by a fresh one
/// at the same URL (ids restart at 1), the messages posted after are shown, and the reset is noted.
#[test]
fn a_reset_original_bus_is_noticed_by_its_first_message_and_new_messages_are_shown() {
    let bus = OriginalBus::start("numeric");
    let port: u16 = bus.url.rsplit(':').next().unwrap().parse().unwrap();
    let env = Env::new();
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER=claude\nBUS_PASS={}\nBUS_URL={}\n", crate::support::bus::PASSWORD, bus.url),
    );
    let send = |text: &str| {
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", text]);
        run(c).ok();
    };
    let sync = || {
        let mut c = env.handoff("b");
        c.args(["sync", "--json"]);
        let o = run(c);
        o.ok();
        o.json()
    };
    send("old one");
    send("old two");
    assert_eq!(sync()["sync"]["messages"].as_array().unwrap().len(), 2);
    drop(bus);
    let _fresh = OriginalBus::start_on("numeric", port);
    send("new one");
    let v = sync();
    let bodies: Vec<&str> =
        v["sync"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["new one"], "{v:#}");
    assert!(v["problems"].to_string().contains("was reset or replaced"), "{v:#}");
}
