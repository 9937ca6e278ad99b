//! End-to-end encryption: machines a, b, c as separate users (own HOME and data dir, own age identity)
//! on the real `handoff bus serve`; keys exchanged over the bus; what the bus holds is read back with
//! independent clients (the bus's HTTP API, the reference age CLI) and must be ciphertext. Payloads on the
//! other channels are in `payloads.rs`.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use serde_json::{Value, json};
use std::path::PathBuf;

// One test per store; they share helpers, so they build with every store compiled in.
#[cfg(all(feature = "drive", feature = "droplet", feature = "git"))]
mod payloads;

/// A machine of its own on `bus`, optionally with extra config.
pub(crate) fn machine(bus: &BusServer, config: &str) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    if !config.is_empty() {
        env.write_config(config);
    }
    env
}

pub(crate) fn handoff(env: &Env, m: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.handoff(m);
    c.args(args);
    run(c)
}

/// `handoff keys --json` on a machine: its public key.
pub(crate) fn make_key(env: &Env, m: &str) -> String {
    let out = handoff(env, m, &["--json", "keys"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["created"], true, "{j}");
    j["recipient"].as_str().unwrap().to_string()
}

/// Every message on the bus, as its HTTP API returns them.
pub(crate) fn raw_bus(bus: &BusServer) -> Vec<Value> {
    let r = bus.get("/messages?limit=500");
    assert!(r.status().is_success());
    let j: Value = r.json().unwrap();
    j.as_array().cloned().or_else(|| j["messages"].as_array().cloned()).unwrap_or_else(|| panic!("{j}"))
}

pub(crate) fn sync_json(env: &Env, m: &str) -> (std::process::Output, Value) {
    let out = handoff(env, m, &["sync", "--json"]);
    let j = out.json();
    (out, j)
}

pub(crate) fn messages(j: &Value) -> Vec<Value> {
    j["sync"]["messages"].as_array().unwrap().clone()
}

pub(crate) fn data_dir(env: &Env) -> PathBuf {
    env.path().join("data/handoff")
}

#[test]
fn keys_travel_over_the_bus_and_only_the_recipients_can_read_an_encrypted_message() {
    let bus = BusServer::start();
    let (a, b, c) = (machine(&bus, ""), machine(&bus, ""), machine(&bus, ""));
    let key_a = make_key(&a, "a");
    let key_b = make_key(&b, "b");
    assert!(key_a.starts_with("age1") && key_b.starts_with("age1") && key_a != key_b);

    // made while the bus is down: the key exists, the publish fails with exit 75 and the next `keys` does it
    let mut down = BusServer::start();
    let late = machine(&down, "");
    down.kill();
    let out = handoff(&late, "late", &["keys"]);
    assert_eq!(out.code(), 75, "{}", out.err());
    assert!(out.err().contains("handoff keys publish"), "{}", out.err());
    down.restart();
    let out = handoff(&late, "late", &["--json", "keys"]);
    out.ok();
    assert_eq!(out.json()["created"], false);
    assert!(out.json()["published_msg"].is_string(), "{}", out.out());
    assert_eq!(handoff(&late, "late", &["--json", "keys"]).ok().json()["published_msg"], Value::Null, "once");

    // the identity is private: 0600 in a 0700 directory; `keys` again changes nothing
    use std::os::unix::fs::PermissionsExt;
    let id_file = data_dir(&b).join("keys/identity.txt");
    assert_eq!(std::fs::metadata(&id_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(id_file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let again = handoff(&b, "b", &["--json", "keys"]);
    assert_eq!((again.json()["created"].clone(), again.json()["recipient"].clone()), (json!(false), json!(key_b)));
    assert_eq!(handoff(&b, "b", &["keys", "show"]).ok().out().trim(), key_b);

    // before a knows any other key, an encrypted broadcast would be readable by a alone: it says so
    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "any", "--dry-run", "hello"]);
    assert!(out.ok().err().contains("only this machine can read this broadcast"), "{}", out.err());

    // a learns b's key from the bus (trust on first use) and says so
    let (out, j) = sync_json(&a, "a");
    out.ok();
    assert!(j["sync"]["notes"].to_string().contains(&format!("learnt machine b's public key {key_b}")), "{j:#}");
    assert!(messages(&j).is_empty(), "key messages are not shown as messages: {j:#}");
    let list = handoff(&a, "a", &["--json", "keys", "list"]).ok().json();
    assert_eq!(list["keys"][0]["machine"], "b");
    assert_eq!(list["keys"][0]["recipient"], json!(key_b));
    assert!(list["keys"][0]["source"].as_str().unwrap().starts_with("bus msg "), "{list}");

    // without a key for the recipient nothing is sent, and the error says how to fix it
    let before = raw_bus(&bus).len();
    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "d", "for d"]);
    assert_eq!(out.code(), 65, "{}", out.err());
    assert!(out.err().contains("no public key for machine d: run `handoff keys` on d"), "{}", out.err());
    assert_eq!(raw_bus(&bus).len(), before, "nothing reached the bus");

    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "b", "the launch code is tulip"]);
    assert!(out.ok().out().contains("end-to-end encrypted"), "{}", out.out());
    // broadcast: encrypted to every key a knows (b's) and a's own; c has not published one yet
    handoff(&a, "a", &["send", "--encrypt", "--to", "any", "everyone: freeze at noon"]).ok();

    // the bus holds only ciphertext, tagged
    let raw = raw_bus(&bus);
    let sent: Vec<&Value> =
        raw.iter().filter(|m| m["from"] == "a" && !m["tags"].to_string().contains("handoff-key")).collect();
    assert_eq!(sent.len(), 2, "{raw:#?}");
    for m in &sent {
        let body = m["body"].as_str().unwrap();
        assert!(body.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"), "{body}");
        assert!(!body.contains("tulip") && !body.contains("freeze"), "{body}");
        assert!(m["tags"].as_array().unwrap().contains(&json!("encrypted")), "{m}");
    }

    // the reference age CLI, with b's identity file, reads the bus body: standard age, standard identity
    let mut age = std::process::Command::new(crate::support::tool("age"));
    age.args(["-d", "-i"]).arg(data_dir(&b).join("keys/identity.txt"));
    age.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = age.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), sent[0]["body"].as_str().unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.out(), "the launch code is tulip", "{}", out.err());

    // b reads both in the clear
    let (out, j) = sync_json(&b, "b");
    out.ok();
    let got = messages(&j);
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["the launch code is tulip", "everyone: freeze at noon"], "{j:#}");
    assert!(got.iter().all(|m| m["encrypted"] == true), "{j:#}");

    // c was not a recipient: a clear error naming the message, no text, exit 65
    make_key(&c, "c");
    let (out, j) = sync_json(&c, "c");
    assert_eq!(out.code(), 65, "{}", out.err());
    let got = messages(&j);
    assert_eq!(got.len(), 1, "{j:#}");
    let err = got[0]["error"].as_str().unwrap();
    assert!(err.contains(&format!("encrypted message {} from a", got[0]["id"].as_str().unwrap())), "{err}");
    assert!(err.contains("not encrypted to this machine"), "{err}");
    assert!(!j.to_string().contains("freeze"), "{j}");
    let text = handoff(&c, "c", &["sync"]);
    assert!(!text.out().contains("freeze"));
}

#[test]
fn a_tampered_bus_body_is_rejected_and_shown_as_an_error_never_as_text() {
    let bus = BusServer::start();
    let (a, b) = (machine(&bus, ""), machine(&bus, ""));
    make_key(&a, "a");
    make_key(&b, "b");
    handoff(&a, "a", &["sync"]).ok();
    handoff(&a, "a", &["send", "--encrypt", "--to", "b", "wire 100 to account 7"]).ok();
    let raw = raw_bus(&bus);
    let original = raw.iter().find(|m| m["tags"].as_array().unwrap().contains(&json!("encrypted"))).unwrap();
    let body = original["body"].as_str().unwrap();
    // someone with the bus password re-posts the message with one character of the payload changed
    let mut lines: Vec<String> = body.lines().map(String::from).collect();
    let n = lines.len() - 2;
    let mut chars: Vec<char> = lines[n].chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    lines[n] = chars.into_iter().collect();
    let forged = lines.join("\n");
    let r = bus.post_json("/post", &json!({ "from": "a", "to": "b", "body": forged, "tags": ["encrypted"] }));
    assert!(r.status().is_success());

    let (out, j) = sync_json(&b, "b");
    assert_eq!(out.code(), 65, "{}", out.err());
    let got = messages(&j);
    assert_eq!(got.len(), 2, "{j:#}");
    assert_eq!(got[0]["body"], "wire 100 to account 7");
    let err = got[1]["error"].as_str().unwrap();
    assert!(err.contains("tampered") || err.contains("not a valid age message"), "{err}");
    assert!(err.contains(&format!("encrypted message {}", got[1]["id"].as_str().unwrap())), "{err}");
    assert!(got[1]["body"].as_str().unwrap().starts_with('['), "the forged message is not shown as text: {j:#}");
}

#[test]
fn encrypt_always_in_the_config_and_a_changed_key_is_used_only_after_keys_trust() {
    let bus = BusServer::start();
    let a = machine(&bus, "encrypt = \"always\"\n");
    let b = machine(&bus, "");
    // doctor and send both say what is missing before the key exists
    let out = handoff(&a, "a", &["--json", "doctor"]);
    let check = out.json()["checks"].as_array().unwrap().iter().find(|c| c["check"] == "encryption").cloned();
    assert_eq!(check.as_ref().map(|c| c["ok"].clone()), Some(json!(false)), "{}", out.out());
    assert!(check.unwrap()["fix"].as_str().unwrap().contains("handoff keys"));
    let out = handoff(&a, "a", &["send", "--to", "b", "before any key"]);
    assert_eq!(out.code(), 78, "{}", out.err());
    assert!(out.err().contains("run `handoff keys`"), "{}", out.err());
    make_key(&a, "a");
    let out = handoff(&a, "a", &["--json", "doctor"]);
    let checks = out.json()["checks"].clone();
    let enc = checks.as_array().unwrap().iter().find(|c| c["check"] == "encryption").unwrap();
    assert_eq!(enc["ok"], true, "{checks:#}");
    let idf = checks.as_array().unwrap().iter().find(|c| c["check"] == "secrets: encryption identity").unwrap();
    assert_eq!(idf["ok"], true, "{checks:#}");
    let old_b = make_key(&b, "b");
    handoff(&a, "a", &["sync"]).ok();
    handoff(&a, "a", &["send", "--to", "b", "first: always encrypted"]).ok();
    assert!(!serde_json::to_string(&raw_bus(&bus)).unwrap().contains("always encrypted"));
    let (_, j) = sync_json(&b, "b");
    assert_eq!(messages(&j)[0]["body"], "first: always encrypted");

    // b loses its identity and makes a new key: a is warned and keeps encrypting to the pinned one
    std::fs::remove_file(data_dir(&b).join("keys/identity.txt")).unwrap();
    let new_b = make_key(&b, "b");
    assert_ne!(old_b, new_b);
    let (out, j) = sync_json(&a, "a");
    out.ok();
    assert!(j["sync"]["notes"].to_string().contains("published a DIFFERENT key"), "{j:#}");
    let list = handoff(&a, "a", &["--json", "keys", "list"]).ok().json();
    assert_eq!(
        (list["keys"][0]["recipient"].clone(), list["keys"][0]["changed_to"].clone()),
        (json!(old_b), json!(new_b))
    );
    let out = handoff(&a, "a", &["send", "--to", "b", "second: to the pinned key"]);
    out.ok();
    assert!(out.err().contains("key changed and the new one is not trusted yet"), "{}", out.err());
    let (out, j) = sync_json(&b, "b");
    assert_eq!(out.code(), 65);
    assert!(messages(&j)[0]["error"].as_str().unwrap().contains("not encrypted to this machine"), "{j:#}");

    // a checks with b's owner and accepts the new key
    handoff(&a, "a", &["keys", "trust", "b"]).ok();
    handoff(&a, "a", &["send", "--to", "b", "third: to the new key"]).ok();
    let (out, j) = sync_json(&b, "b");
    out.ok();
    assert_eq!(messages(&j)[0]["body"], "third: to the new key");
    // the local history reads encrypted messages with this machine's key, on both sides
    let log_a = handoff(&a, "a", &["--json", "log", "--show", "sent"]).ok().out();
    assert!(log_a.contains("[encrypted] third: to the new key"), "{log_a}");
    let log_b = handoff(&b, "b", &["--json", "log", "--show", "received"]).ok().out();
    assert!(log_b.contains("[encrypted] third: to the new key"), "{log_b}");
    assert!(log_b.contains("not readable with this machine's key"), "the one to the old key: {log_b}");
    // --no-encrypt opts out once
    handoff(&a, "a", &["send", "--no-encrypt", "--to", "b", "fourth: in the clear"]).ok();
    assert!(serde_json::to_string(&raw_bus(&bus)).unwrap().contains("fourth: in the clear"));
}

#[test]
fn an_encrypted_send_queued_while_the_bus_is_down_is_delivered_encrypted_by_flush() {
    let mut bus = BusServer::start();
    let (a, b) = (machine(&bus, ""), machine(&bus, ""));
    make_key(&a, "a");
    make_key(&b, "b");
    handoff(&a, "a", &["sync"]).ok();
    bus.kill();
    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "b", "queued while the bus was down"]);
    assert_eq!(out.code(), 75, "{}\n{}", out.out(), out.err());
    bus.restart();
    handoff(&a, "a", &["flush"]).ok();
    let raw = serde_json::to_string(&raw_bus(&bus)).unwrap();
    assert!(!raw.contains("queued while"), "{raw}");
    let (out, j) = sync_json(&b, "b");
    out.ok();
    assert_eq!(messages(&j)[0]["body"], "queued while the bus was down", "{j:#}");
}
