//! A pointer is data written by whoever holds the bus password: each channel follows only an item it could
//! have written itself. Crafted pointers are posted with the bus API to a real `handoff bus serve`, against
//! real rclone remotes (a `local` one, an `alias` one, an AWS-style `s3` one), and the real `handoff fetch`
//! and `sync --fetch` must refuse every one of them (exit 65, a note naming the message and its sender,
//! nothing written, no hash of a foreign file printed) while a real pointer from a real send still fetches.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An env on `bus` with `[drive]` set to `remote`/`folder` and `conf` as its rclone.conf.
fn env_with_drive(bus: &BusServer, remote: &str, folder: &str, conf: &str, extra: &str) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    env.write_config(&format!("[drive]\nremote = \"{remote}\"\nfolder = \"{folder}\"\n{extra}"));
    crate::support::rclone::write_conf(&env, conf);
    env
}

/// One pointer item as JSON.
fn item(channel: &str, name: &str, size: u64, sha256: &str, uri: &str) -> Value {
    json!({ "channel": channel, "name": name, "size": size, "sha256": sha256, "uri": uri })
}

/// Posts a pointer holding `items` to machine b as `mallory`, through the bus API; returns its id.
fn post_pointer(bus: &BusServer, items: Vec<Value>) -> String {
    let line = serde_json::to_string(&json!({ "title": "urgent fix", "items": items })).unwrap();
    let body = format!("[pointer] see attached\nhandoff-pointer/v1 {line}");
    let r = bus.post_json("/post", &json!({ "from": "mallory", "to": "b", "body": body, "tags": ["pointer"] }));
    assert!(r.status().is_success(), "posting the crafted pointer: {}", r.status());
    let v: Value = r.json().unwrap();
    v["id"].as_str().map(str::to_string).unwrap_or_else(|| v["id"].to_string())
}

/// Every file under `dir` (recursively), relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// `handoff fetch ID --out DIR` as b must be refused: exit 65, naming the message and mallory, nothing in
/// `dir`, and none of `never` (hashes and contents of foreign files) in any output.
fn assert_refused(env: &Env, id: &str, dir: &Path, never: &[&str], why: &str) {
    let mut c = env.handoff("b");
    c.args(["fetch", id, "--out"]).arg(dir);
    let out = run(c);
    let all = format!("{}{}", out.out(), out.err());
    assert_eq!(out.code(), 65, "{why}: must be refused with exit 65:\n{all}");
    assert!(all.contains(&format!("message {id} from mallory")), "{why}: the refusal names message and sender:\n{all}");
    for n in never {
        assert!(!all.contains(n), "{why}: the output shows {n:?}:\n{all}");
    }
    assert!(files_under(dir).is_empty(), "{why}: nothing may be written: {:?}", files_under(dir));
}

#[test]
fn crafted_drive_pointers_are_refused_and_a_real_one_still_fetches() {
    let bus = BusServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = b"root:x:0:0:the secret a pointer must not reach\n";
    std::fs::write(outside.join("passwd"), secret).unwrap();
    let secret_sha = sha256_hex(secret);
    let conf = format!("[gd]\ntype = local\n\n[other]\ntype = alias\nremote = {}\n", outside.display());
    let env = env_with_drive(&bus, "gd", store.to_str().unwrap(), &conf, "[route]\nfetch_max = \"1KiB\"\n");

    // A real send from a: its pointer is the template the attacker copies.
    let payload = crate::support::noise(195 * 1024, 7);
    let file = env.path().join("report.bin");
    std::fs::write(&file, &payload).unwrap();
    let mut c = env.handoff("a");
    c.args(["--json", "send", "--to", "b", "--file"]).arg(&file);
    let sent = run(c);
    sent.ok();
    let steps = sent.json()["receipt"]["steps"].clone();
    let real_uri = steps
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["receipt"]["uri"].as_str().filter(|u| u.starts_with("drive:gd:")))
        .unwrap_or_else(|| panic!("no drive receipt: {steps:#}"))
        .to_string();
    let real_sha = sha256_hex(&payload);
    let wrong = "0".repeat(64);
    let never = [secret_sha.as_str(), "the secret a pointer must not reach"];

    let passwd = outside.join("passwd");
    let climbing = format!("drive:gd:{}/../outside/passwd", store.display());
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "an absolute path on the local remote",
            vec![item("drive", "p", 48, &wrong, &format!("drive:gd:{}", passwd.display()))],
        ),
        ("another remote of rclone.conf", vec![item("drive", "p", 48, &wrong, "drive:other:passwd")]),
        ("a .. path", vec![item("drive", "p", 48, &wrong, &climbing)]),
        ("a local: path that climbs", vec![item("local", "p", 48, &wrong, "local:../../outside/passwd")]),
        ("an item larger than claimed", vec![item("drive", "big.bin", 10, &real_sha, &real_uri)]),
        ("an item claiming size 0", vec![item("drive", "zero.bin", 0, &real_sha, &real_uri)]),
        (
            "sizes that wrap around",
            vec![item("drive", "w1", u64::MAX, &real_sha, &real_uri), item("drive", "w2", 2, &real_sha, &real_uri)],
        ),
        (
            "250 items naming one payload",
            (0..250).map(|i| item("drive", &format!("copy{i}.bin"), 0, &real_sha, &real_uri)).collect(),
        ),
    ];
    let mut ids = Vec::new();
    for (why, items) in cases {
        let id = post_pointer(&bus, items);
        assert_refused(&env, &id, &tmp.path().join(format!("out-{id}")), &never, why);
        ids.push(id);
    }

    // sync --fetch meets the same pointers (and fetch_max is 1 KiB): every one refused, nothing written.
    let inbox = tmp.path().join("inbox");
    let mut c = env.handoff("b");
    c.args(["sync", "--fetch", "--json", "--out"]).arg(&inbox);
    let out = run(c);
    let all = format!("{}{}", out.out(), out.err());
    assert_eq!(out.code(), 65, "sync --fetch must end with 65:\n{all}");
    for n in never {
        assert!(!all.contains(n), "sync shows {n:?}:\n{all}");
    }
    let notes = out.json()["sync"]["notes"].to_string();
    for id in &ids {
        assert!(notes.contains(&format!("message {id} from mallory")), "no note names message {id}: {notes}");
    }
    assert!(files_under(&inbox).is_empty(), "sync --fetch wrote {:?}", files_under(&inbox));
    assert!(files_under(tmp.path()).iter().all(|f| !f.starts_with("out-") && !f.starts_with("inbox")));

    // The real pointer still fetches, verified.
    let listed: Value = bus.get("/messages?from=a&to=b").json().unwrap();
    let id = &listed["messages"][0]["id"];
    assert!(!id.is_null(), "a's pointer is not on the bus: {listed}");
    let real_id = id.as_str().map(str::to_string).unwrap_or_else(|| id.to_string());
    let dir = tmp.path().join("real");
    let mut c = env.handoff("b");
    c.args(["fetch", &real_id, "--out"]).arg(&dir);
    run(c).ok();
    assert_eq!(std::fs::read(dir.join("report.bin")).unwrap(), payload);
    assert_eq!(std::fs::read(&passwd).unwrap(), secret, "the foreign file is untouched");
}

#[test]
fn a_bucket_that_smuggles_a_host_contacts_nothing() {
    let bus = BusServer::start();
    // Where the smuggled host name would send a signed request: count every connection it gets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    {
        let hits = hits.clone();
        std::thread::spawn(move || {
            for c in listener.incoming() {
                if c.is_ok() {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let conf = "[s3x]\ntype = s3\nprovider = AWS\naccess_key_id = AKIDEXAMPLE\nsecret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\nregion = us-east-1\n";
    let env = env_with_drive(&bus, "s3x", "bucket/h", conf, "");
    let tmp = tempfile::tempdir().unwrap();
    for uri in [format!("drive:s3x:2130706433:{port}#/obj"), format!("drive:s3x:bucket/h/../../2130706433:{port}#/obj")]
    {
        let id = post_pointer(&bus, vec![item("drive", "obj", 10, &"0".repeat(64), &uri)]);
        assert_refused(&env, &id, &tmp.path().join(&id), &[], &uri);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the smuggled host was contacted");
}
