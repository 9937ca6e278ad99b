//! End-to-end encryption: machines a, b, c as separate users (own HOME and data dir, own age identity)
//! on the real `handoff bus serve`; keys exchanged over the bus; what the bus and the drive remote hold is
//! read back with independent clients (the bus's HTTP API, rclone, the file itself) and must be ciphertext.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A machine of its own on `bus`, optionally with extra config.
fn machine(bus: &BusServer, config: &str) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    if !config.is_empty() {
        env.write_config(config);
    }
    env
}

fn handoff(env: &Env, m: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.handoff(m);
    c.args(args);
    run(c)
}

/// `handoff keys --json` on a machine: its public key.
fn make_key(env: &Env, m: &str) -> String {
    let out = handoff(env, m, &["--json", "keys"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["created"], true, "{j}");
    j["recipient"].as_str().unwrap().to_string()
}

/// Every message on the bus, as its HTTP API returns them.
fn raw_bus(bus: &BusServer) -> Vec<Value> {
    let r = bus.get("/messages?limit=500");
    assert!(r.status().is_success());
    let j: Value = r.json().unwrap();
    j.as_array().cloned().or_else(|| j["messages"].as_array().cloned()).unwrap_or_else(|| panic!("{j}"))
}

fn sync_json(env: &Env, m: &str) -> (std::process::Output, Value) {
    let out = handoff(env, m, &["sync", "--json"]);
    let j = out.json();
    (out, j)
}

fn messages(j: &Value) -> Vec<Value> {
    j["sync"]["messages"].as_array().unwrap().clone()
}

fn data_dir(env: &Env) -> PathBuf {
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

#[cfg(feature = "drive")]
mod drive {
    use super::*;
    use crate::support::rclone;

    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    pub(super) fn drive_machine(bus: &BusServer, folder: &Path) -> (Env, PathBuf) {
        let mut env = machine(bus, &format!("[drive]\nremote = \"here\"\nfolder = \"{}\"\n", folder.display()));
        let conf = rclone::write_conf(&env, "[here]\ntype = local\n");
        rclone::isolate_ssh(&mut env);
        rclone::put_rclone_on_path(&mut env);
        (env, conf)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn an_encrypted_file_is_ciphertext_on_the_drive_and_fetch_yields_the_same_bytes_or_nothing() {
        let bus = BusServer::start();
        let store = tempfile::tempdir().unwrap();
        let folder = store.path().join("payloads");
        let (a, conf) = drive_machine(&bus, &folder);
        let (b, _) = drive_machine(&bus, &folder);
        make_key(&a, "a");
        make_key(&b, "b");
        handoff(&a, "a", &["sync"]).ok();
        let bytes = payload(300_000, 11);
        let file = a.path().join("quarterly-numbers.bin");
        std::fs::write(&file, &bytes).unwrap();
        let out = handoff(
            &a,
            "a",
            &[
                "--json",
                "send",
                "--encrypt",
                "--keep",
                "--to",
                "b",
                "--file",
                file.to_str().unwrap(),
                "numbers attached",
            ],
        );
        out.ok();
        let steps = out.json()["receipt"]["steps"].clone();
        let uri = steps[0]["receipt"]["uri"].as_str().unwrap().to_string();
        assert!(uri.starts_with("drive:here:") && uri.ends_with(".age"), "{steps:#}");
        assert!(!uri.contains("quarterly"), "the stored name is neutral: {uri}");

        // rclone, the independent client, reads back ciphertext of the size the router planned on
        let stored = rclone::cat(&conf, uri.strip_prefix("drive:").unwrap(), None);
        assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
        assert!(stored.stdout.starts_with(b"age-encryption.org/v1\n"));
        assert_ne!(stored.stdout.len(), bytes.len());
        assert!(!stored.stdout.windows(64).any(|w| w == &bytes[1000..1064]), "no plaintext run on the remote");
        // the reference age CLI decrypts it with b's identity file
        let enc = store.path().join("downloaded.age");
        std::fs::write(&enc, &stored.stdout).unwrap();
        let out = std::process::Command::new(crate::support::tool("age"))
            .args(["-d", "-i"])
            .arg(data_dir(&b).join("keys/identity.txt"))
            .arg(&enc)
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout == bytes, "age -d: {}", String::from_utf8_lossy(&out.stderr));
        // the pointer on the bus is encrypted too: no name, no hash
        let raw = serde_json::to_string(&raw_bus(&bus)).unwrap();
        assert!(!raw.contains("quarterly") && !raw.contains("numbers attached") && !raw.contains(".age"), "{raw}");

        let (out, j) = sync_json(&b, "b");
        out.ok();
        let m = &messages(&j)[0];
        assert_eq!(m["encrypted"], true);
        assert_eq!(m["pointer"]["items"][0]["name"], "quarterly-numbers.bin", "{j:#}");
        assert_eq!(m["pointer"]["note"], "numbers attached");
        let id = m["id"].as_str().unwrap().to_string();
        let dest = b.path().join("got");
        let out = handoff(&b, "b", &["--json", "fetch", &id, "--out", dest.to_str().unwrap()]);
        out.ok();
        assert_eq!(std::fs::read(dest.join("quarterly-numbers.bin")).unwrap(), bytes);

        // flip one byte of the stored ciphertext (size kept): fetch fails loudly and leaves nothing
        let on_disk = files_under(&folder).into_iter().find(|p| p.extension().is_some_and(|e| e == "age")).unwrap();
        let mut stored = std::fs::read(&on_disk).unwrap();
        let at = stored.len() - 100;
        stored[at] ^= 0x01;
        std::fs::write(&on_disk, &stored).unwrap();
        // the pointer's ciphertext hash catches it first; with a matching hash age's authentication would
        let dest2 = b.path().join("got2");
        let out = handoff(&b, "b", &["fetch", &id, "--out", dest2.to_str().unwrap()]);
        assert_eq!(out.code(), 65, "{}\n{}", out.out(), out.err());
        assert!(out.err().contains("sha256 mismatch") || out.err().contains("tampered"), "{}", out.err());
        assert!(files_under(&dest2).is_empty(), "nothing written: {:?}", files_under(&dest2));

        // a pointer that vouches for the altered ciphertext (given directly): age's own authentication
        // rejects it mid-stream, and still nothing is left under the final name or as a part file
        let mut forged = m["pointer"].clone();
        forged["items"][0]["sha256"] = json!(sha256_hex(&stored));
        let dest3 = b.path().join("got3");
        let out = handoff(&b, "b", &["fetch", &forged.to_string(), "--out", dest3.to_str().unwrap()]);
        assert_eq!(out.code(), 65, "{}\n{}", out.out(), out.err());
        assert!(out.err().contains("tampered"), "{}", out.err());
        assert!(files_under(&dest3).is_empty(), "nothing written: {:?}", files_under(&dest3));
    }
}

#[cfg(feature = "drive")]
#[test]
fn an_encrypted_pointer_queued_in_the_outbox_is_encrypted_when_flush_posts_it() {
    let mut bus = BusServer::start();
    let store = tempfile::tempdir().unwrap();
    let folder = store.path().join("payloads");
    let (a, _) = drive::drive_machine(&bus, &folder);
    let (b, _) = drive::drive_machine(&bus, &folder);
    make_key(&a, "a");
    make_key(&b, "b");
    handoff(&a, "a", &["sync"]).ok();
    let file = a.path().join("notes.txt");
    std::fs::write(&file, "queued notes\n").unwrap();
    bus.kill();
    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "b", "--file", file.to_str().unwrap(), "see notes"]);
    assert_eq!(out.code(), 75, "{}\n{}", out.out(), out.err());
    std::fs::remove_file(&file).unwrap();
    bus.restart();
    handoff(&a, "a", &["flush"]).ok();
    let raw = serde_json::to_string(&raw_bus(&bus)).unwrap();
    assert!(!raw.contains("see notes") && !raw.contains("notes.txt"), "{raw}");
    let (out, j) = sync_json(&b, "b");
    out.ok();
    let m = &messages(&j)[0];
    assert_eq!(m["pointer"]["note"], "see notes", "{j:#}");
    let dest = b.path().join("got");
    handoff(&b, "b", &["fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(dest.join("notes.txt")).unwrap(), "queued notes\n");
}

#[cfg(feature = "git")]
mod git {
    use super::*;
    use std::process::{Command, Stdio};

    fn git(env: &Env, dir: &Path, args: &[&str]) -> String {
        let mut c = Command::new("git");
        env.apply(&mut c);
        c.current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["-c", "user.name=Tester", "-c", "user.email=t@example.com"])
            .args(args);
        let o = run(c);
        o.ok();
        o.out()
    }

    fn git_machine(bus: &BusServer, remote: &str, extra: &str) -> Env {
        let env = Env::new();
        let checkout = env.home().join("claude-handoffs");
        bus.write_env_file(&env);
        env.write_config(&format!(
            "{extra}[git]\nremote = {remote:?}\ncheckout = {:?}\nbranch = \"main\"\n",
            checkout.display().to_string()
        ));
        env
    }

    #[test]
    fn an_encrypted_document_is_ciphertext_in_the_repo_and_readable_only_by_its_recipient() {
        let bus = BusServer::start();
        let repos = tempfile::tempdir().unwrap();
        let bare = repos.path().join("docs.git");
        let scratch = Env::new();
        git(&scratch, repos.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        let remote = format!("file://{}", bare.display());
        let a = git_machine(&bus, &remote, "encrypt = \"always\"\n");
        let b = git_machine(&bus, &remote, "");
        make_key(&a, "a");
        make_key(&b, "b");
        handoff(&a, "a", &["sync"]);
        let text = "# Migration plan\n\nmove the users table on sunday\n";
        let mut c = a.handoff("a");
        c.args(["send", "--doc", "-", "--to", "b", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        child.wait_with_output().unwrap().ok();

        // the git CLI, in its own clone, sees only ciphertext under a neutral name
        let clone = repos.path().join("clone");
        git(&scratch, repos.path(), &["clone", "-q", &remote, clone.to_str().unwrap()]);
        let files = git(&scratch, &clone, &["ls-files"]);
        let archived: Vec<&str> = files.lines().filter(|l| l.starts_with("handoffs/")).collect();
        assert_eq!(archived.len(), 1, "{files}");
        assert!(archived[0].ends_with(".md.age") && !archived[0].contains("migration"), "{files}");
        for f in [archived[0], "latest.md"] {
            let stored = std::fs::read_to_string(clone.join(f)).unwrap();
            assert!(stored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"), "{f}: {stored}");
            assert!(!stored.contains("sunday"), "{f}");
        }
        assert!(!git(&scratch, &clone, &["log", "--format=%B"]).to_lowercase().contains("migration"));

        // b reads it in the clear: the document in the digest, the pointer's item by its real name
        let (out, j) = sync_json(&b, "b");
        out.ok();
        let docs = j["sync"]["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 1, "{j:#}");
        assert_eq!(docs[0]["content"], text);
        assert_eq!(docs[0]["title"], "Migration plan");
        let m = &messages(&j)[0];
        assert_eq!(m["pointer"]["items"][0]["name"], "Migration plan.md", "{j:#}");
        let dest = b.path().join("got");
        let out = handoff(&b, "b", &["--json", "fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]);
        out.ok();
        let path = out.json()["fetched"][0]["path"].as_str().unwrap().to_string();
        assert!(path.ends_with(".md"), "{path}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        // someone with push access alters one character of latest.md: b's sync says so, shows no text
        let latest = clone.join("latest.md");
        let stored = std::fs::read_to_string(&latest).unwrap();
        let mut lines: Vec<String> = stored.lines().map(String::from).collect();
        let n = lines.len() - 2;
        let mut chars: Vec<char> = lines[n].chars().collect();
        chars[1] = if chars[1] == 'A' { 'B' } else { 'A' };
        lines[n] = chars.into_iter().collect();
        std::fs::write(&latest, lines.join("\n") + "\n").unwrap();
        git(&scratch, &clone, &["commit", "-q", "-am", "edit"]);
        git(&scratch, &clone, &["push", "-q", "origin", "main"]);
        let (out, j) = sync_json(&b, "b");
        assert_eq!(out.code(), 65, "{j:#}");
        let notes = j["sync"]["notes"].to_string();
        assert!(notes.contains("could not be decrypted") && notes.contains("latest.md"), "{notes}");
        assert!(j["sync"]["documents"].as_array().unwrap().iter().all(|d| d["content"].is_null()), "{j:#}");
    }
}

#[cfg(feature = "droplet")]
#[test]
fn an_encrypted_file_on_the_droplet_is_ciphertext_and_fetch_yields_the_same_bytes() {
    let sshd = crate::support::sshd::Sshd::start();
    let bus = BusServer::start();
    let dir = sshd.server_dir("drop");
    let on_droplet = |m: &str| {
        let mut env = Env::new();
        bus.write_env_file(&env);
        sshd.setup_client(&mut env, "droplet-test");
        env.write_config(&format!("[droplet]\nhost = \"droplet-test\"\ndir = \"{}\"\n", dir.display()));
        make_key(&env, m);
        env
    };
    let (a, b) = (on_droplet("a"), on_droplet("b"));
    handoff(&a, "a", &["sync"]).ok();
    let bytes: Vec<u8> = (0..150_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = a.path().join("crash dump; $(reboot).bin");
    std::fs::write(&file, &bytes).unwrap();
    let out =
        handoff(&a, "a", &["send", "--encrypt", "--to", "b", "--via", "droplet", "--file", file.to_str().unwrap()]);
    out.ok();
    // read directly on the server: one file, a neutral name, age ciphertext, no plaintext run
    let mut stored = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                stored.push(e.path());
            }
        }
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    let name = stored[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".age") && !name.contains("crash"), "{name}");
    let content = std::fs::read(&stored[0]).unwrap();
    assert!(content.starts_with(b"age-encryption.org/v1\n"));
    assert!(!content.windows(64).any(|w| w == &bytes[5000..5064]));

    let (out, j) = sync_json(&b, "b");
    out.ok();
    let m = &messages(&j)[0];
    let dest = b.path().join("got");
    let out = handoff(&b, "b", &["--json", "fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]);
    out.ok();
    let path = out.json()["fetched"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(path.starts_with(dest.to_str().unwrap()), "{path}");
}
