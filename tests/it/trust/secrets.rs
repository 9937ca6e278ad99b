//! `handoff send` refuses content holding a secret before anything reaches the outbox or a channel.

use crate::support::bus::{BusServer, PASSWORD};
use crate::support::{Env, OutputExt, run};

const TOKEN: &str = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";

fn synced_bodies(env: &Env, machine: &str) -> Vec<String> {
    let mut c = env.handoff(machine);
    c.args(["sync", "--format", "json"]);
    let v = run(c).ok().json();
    v["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_token_in_the_text_is_refused_with_kind_and_line_exit_65_and_nothing_is_queued() {
    let env = Env::new();
    let mut c = env.handoff("alpha");
    c.args(["send", "--to", "beta", &format!("status: green\nremote: https://{TOKEN}@github.com/acme/app.git\n")]);
    let out = run(c);
    assert_eq!(out.code(), 65, "{}", out.err());
    assert!(
        out.err().contains("the message text line 2: GitHub token") && out.err().contains("--allow-secret"),
        "{}",
        out.err()
    );
    assert!(!out.err().contains(TOKEN) && !out.out().contains(TOKEN));
    // nothing reached the outbox or the bus
    let outbox = env.path().join("data/handoff/outbox");
    let queued = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(queued, 0, "outbox holds {queued} entries");
    assert!(synced_bodies(&env, "beta").is_empty());
    // --json: the findings, no value
    let mut c = env.handoff("alpha");
    c.args(["--json", "send", "--to", "beta", &format!("token {TOKEN}")]);
    let out = run(c);
    assert_eq!(out.code(), 65);
    let v = out.json();
    assert_eq!(v["refused"], "secret");
    assert_eq!(v["findings"][0]["kind"], "GitHub token");
    assert!(!out.out().contains(TOKEN));
    // --allow-secret sends it knowingly
    let mut c = env.handoff("alpha");
    c.args(["send", "--allow-secret", "--to", "beta", &format!("token {TOKEN}")]);
    run(c).ok();
    assert_eq!(synced_bodies(&env, "beta"), vec![format!("token {TOKEN}")]);
}

#[test]
fn the_bus_password_in_a_text_file_is_refused_and_never_printed_even_in_debug_logs() {
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    let notes = env.path().join("notes.txt");
    std::fs::write(&notes, format!("hi\nthe bus: curl -u claude:{PASSWORD} ...\n")).unwrap();
    for json in [false, true] {
        let mut c = env.handoff("alpha");
        if json {
            c.arg("--json");
        }
        c.args(["-vv", "send", "--to", "beta", "--file"]).arg(&notes).arg("see notes");
        let out = run(c);
        assert_eq!(out.code(), 65, "{}", out.err());
        assert!(out.err().contains("--file notes.txt line 2: the bus password (BUS_PASS)"), "{}", out.err());
        assert!(!out.err().contains(PASSWORD) && !out.out().contains(PASSWORD), "the password was printed");
    }
    let v: serde_json::Value = bus.get("/messages").json().unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 0, "nothing reached the bus");
    // a normal send with -vv logs never shows the password either
    let mut c = env.handoff("alpha");
    c.args(["-vv", "--json", "send", "--to", "beta", "all clear"]);
    let out = run(c);
    out.ok();
    assert!(!out.err().contains(PASSWORD) && !out.out().contains(PASSWORD));
}

#[test]
fn a_loaded_twilio_token_in_a_document_is_refused_and_binaries_are_not_scanned() {
    let mut env = Env::new();
    env.var("TWILIO_TOKEN", "f0e1d2c3b4a5968778695a4b3c2d1e0f");
    let doc = env.path().join("recap.md");
    std::fs::write(&doc, "# Recap\n\nSMS works; token is f0e1d2c3b4a5968778695a4b3c2d1e0f\n").unwrap();
    let mut c = env.handoff("alpha");
    c.args(["send", "--doc"]).arg(&doc);
    let out = run(c);
    assert_eq!(out.code(), 65, "{}", out.err());
    assert!(out.err().contains("the document line 3: the value of $TWILIO_TOKEN"), "{}", out.err());
    assert!(!out.err().contains("f0e1d2c3b4a5968778695a4b3c2d1e0f"));
    // a binary payload (NUL bytes) is not scanned: key-like bytes inside it do not block it
    let bin = env.path().join("core.bin");
    std::fs::write(&bin, [&b"\x7fELF\0\0\0\0"[..], TOKEN.as_bytes()].concat()).unwrap();
    let mut c = env.handoff("alpha");
    c.args(["send", "--to", "beta", "--file"]).arg(&bin).arg("core dump attached");
    run(c).ok();
}
