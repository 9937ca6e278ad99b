//! The behaviour cases for channels that carry items (files or documents), each written once for every
//! channel (the `items` and `outage` groups of `suite!`); `health` applies to every channel.

use super::{Rig, ok, payload_receipts, pointer_id, sha256_hex};
use crate::support::{OutputExt, noise, run};
use serde_json::Value;
use std::path::Path;

/// A case runs only on rigs whose `suite!` line lists its group, and that line is checked against the
/// rig's capabilities; this catches a case that reached a rig it does not apply to.
pub fn require(rig: &Rig, holds: bool, unless: &str) {
    assert!(holds, "this case does not apply to the {} channel: {unless}", rig.channel);
}

/// Files in `dir` (the fetch destination), by content hash.
fn fetched_hashes(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| sha256_hex(&std::fs::read(e.path()).unwrap())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Everything in `dir`, hidden files included (a failed fetch leaves none of it).
fn everything_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

/// Sends `bytes` as one item named `name` and checks the send succeeded; the receipt.
fn send_one(rig: &Rig, sub: &str, name: &str, bytes: &[u8]) -> Value {
    let f = rig.file(sub, name, bytes);
    let (o, j) = rig.send_items(&[&f]);
    ok(&o);
    j
}

/// Text bytes for document channels (a document is text), noise for file channels.
fn content(rig: &Rig, len: usize, seed: u64) -> Vec<u8> {
    if rig.can.files {
        noise(len, seed)
    } else {
        let line = format!("line {seed}: \"quoted\" \\ back `tick` $(id) é😀 <b>&amp;</b>\n");
        line.repeat(len / line.len() + 1).into_bytes()
    }
}

pub fn round_trip_with_sha256(rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents");
    let bytes = content(&rig, 300_000, 7);
    let j = send_one(&rig, "one", "report.bin", &bytes);
    let receipts = payload_receipts(&j);
    assert_eq!(receipts.len(), 1, "{j:#}");
    assert_eq!(receipts[0]["channel"], rig.channel, "{j:#}");
    let stored = rig.stored();
    assert_eq!(stored.len(), 1, "one object stored");
    if rig.stored_verbatim {
        assert!(stored[0] == bytes, "the store holds the bytes sent");
    }
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer_id(&j), &out);
    ok(&o);
    let got = &o.json()["fetched"][0];
    assert_eq!(got["sha256"], sha256_hex(&bytes));
    assert_eq!(fetched_hashes(&out), [sha256_hex(&bytes)], "the fetched file holds the bytes sent");
}

/// A lost response: the channel stored the item but its receipt was never saved. The finished job is put
/// back in the outbox with the payload step "not delivered", so the retry delivers the same key again.
pub fn same_key_twice(rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents");
    let bytes = content(&rig, 50_000, 8);
    let j = send_one(&rig, "twice", "twice.bin", &bytes);
    let first_uri = payload_receipts(&j)[0]["uri"].clone();
    assert_eq!(rig.stored().len(), 1);
    let data = rig.env.path().join("data/handoff");
    let id = j["receipt"]["job"].as_str().unwrap().to_string();
    let sent = data.join("sent").join(format!("{id}.json"));
    let mut job: Value = serde_json::from_str(&std::fs::read_to_string(&sent).unwrap()).unwrap();
    assert!(job["steps"][0]["receipt"].is_object(), "{job:#}");
    job["steps"][0]["receipt"] = Value::Null;
    let queued = data.join("outbox").join(&id);
    std::fs::create_dir_all(&queued).unwrap();
    std::fs::write(queued.join("job.json"), serde_json::to_vec(&job).unwrap()).unwrap();
    std::fs::remove_file(&sent).unwrap();
    ok(&rig.flush());
    assert!(!queued.join("job.json").exists(), "the job was delivered again");
    let again: Value = serde_json::from_str(&std::fs::read_to_string(&sent).unwrap()).unwrap();
    assert_eq!(again["steps"][0]["receipt"]["uri"], first_uri, "the same key lands in the same place");
    let stored = rig.stored();
    assert_eq!(stored.len(), 1, "the same key delivered twice makes one copy");
    if rig.stored_verbatim {
        assert!(stored[0] == bytes);
    }
}

/// Two items with the same name (in one send where the channel takes several, else in two sends) are
/// both kept: neither overwrites the other.
pub fn two_same_named(rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents");
    let (first, second) = (content(&rig, 10_000, 1), content(&rig, 20_000, 2));
    let f1 = rig.file("x", "same.bin", &first);
    let f2 = rig.file("y", "same.bin", &second);
    let sends: Vec<Value> = if rig.can.files {
        let (o, j) = rig.send_items(&[&f1, &f2]);
        ok(&o);
        vec![j]
    } else {
        eprintln!("{} takes one document per send: two sends with the same title", rig.channel);
        [&f1, &f2]
            .iter()
            .map(|f| {
                let (o, j) = rig.send_items(&[f]);
                ok(&o);
                j
            })
            .collect()
    };
    let uris: Vec<Value> = sends.iter().flat_map(payload_receipts).map(|r| r["uri"].clone()).collect();
    assert_eq!(uris.len(), 2);
    assert_ne!(uris[0], uris[1], "two items, two places");
    assert_eq!(rig.stored().len(), 2, "both stored");
    let mut fetched = Vec::new();
    for (i, j) in sends.iter().enumerate() {
        let out = rig.env.path().join(format!("got{i}"));
        ok(&rig.fetch(&pointer_id(j), &out));
        fetched.extend(fetched_hashes(&out));
    }
    if rig.can.files {
        // one send: the second keeps its name with a number, in the order they were given
        let got = rig.env.path().join("got0");
        assert!(std::fs::read(got.join("same.bin")).unwrap() == first, "the first keeps its name");
        assert!(std::fs::read(got.join("same (2).bin")).unwrap() == second, "the second is numbered");
    }
    fetched.sort();
    let mut want = vec![sha256_hex(&first), sha256_hex(&second)];
    want.sort();
    assert_eq!(fetched, want, "both arrive, neither overwrites the other");
}

pub fn outage(mut rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents (its pages have their own outage case)");
    require(&rig, rig.can.go_down, "its store has no server that can be stopped");
    let bytes = content(&rig, 40_000, 3);
    let f = rig.file("out", "later.bin", &bytes);
    (rig.set_up.as_mut().unwrap())(false);
    let (o, _) = rig.send_items(&[&f]);
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    (rig.set_up.as_mut().unwrap())(true);
    assert!(rig.stored().is_empty(), "nothing stored while the server was down");
    ok(&rig.flush());
    ok(&rig.flush());
    let stored = rig.stored();
    assert_eq!(stored.len(), 1, "delivered exactly once");
    if rig.stored_verbatim {
        assert!(stored[0] == bytes);
    }
}

pub fn corrupted(rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents");
    let bytes = content(&rig, 100_000, 4);
    let j = send_one(&rig, "c", "fragile.bin", &bytes);
    let uri = payload_receipts(&j)[0]["uri"].as_str().unwrap().to_string();
    (rig.corrupt.as_ref().expect("an item channel's rig can corrupt what it stores"))(&rig, &uri);
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer_id(&j), &out);
    assert_ne!(o.code(), 0, "a corrupted object must fail the fetch: {}", o.out());
    let text = format!("{}{}", o.out(), o.err());
    let named = if rig.can.files {
        text.contains("sha256 mismatch")
    } else {
        text.contains("sha256") || text.contains("corrupt") || text.contains("hash mismatch")
    };
    assert!(named, "the failure names the damage: {text}");
    assert!(everything_in(&out).is_empty(), "a failed fetch leaves nothing: {:?}", everything_in(&out));
}

pub fn hostile_names(rig: Rig) {
    require(&rig, rig.can.items(), "it carries no files or documents");
    let canary = rig.env.path().join("canary");
    let names = [
        format!("$(touch {}).bin", canary.display()).replace('/', "_"),
        "; touch canary; .bin".to_string(),
        "...".to_string(),
        "..\\..\\windows.bin".to_string(),
        "-rf".to_string(),
        "quote\"and'back`tick`.bin".to_string(),
        "line\nbreak.bin".to_string(),
        "ünï cödé 😀.bin".to_string(),
    ];
    for (i, name) in names.iter().enumerate() {
        let bytes = content(&rig, 1_000 + i, 10 + i as u64);
        eprintln!("sending an item named {name:?}");
        let j = send_one(&rig, &format!("h{i}"), name, &bytes);
        let out = rig.env.path().join(format!("got{i}"));
        let o = rig.fetch(&pointer_id(&j), &out);
        ok(&o);
        assert_eq!(fetched_hashes(&out), [sha256_hex(&bytes)], "{name:?} arrives intact, inside --out");
    }
    assert_eq!(rig.stored().len(), names.len(), "every item is inside the store");
    // nothing landed beside the store or elsewhere in the env (a name that climbed out would be there)
    let mut everywhere = Vec::new();
    super::visible_files(rig.env.path(), &mut everywhere);
    for place in &rig.places {
        super::visible_files(place.parent().unwrap(), &mut everywhere);
    }
    let escaped: Vec<_> = everywhere
        .iter()
        .filter(|p| p.to_string_lossy().contains("windows"))
        .filter(|p| !rig.places.iter().any(|place| p.starts_with(place)))
        .filter(|p| !p.starts_with(rig.env.path().join("outgoing")))
        .filter(|p| !p.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with("got"))
        .collect();
    assert!(escaped.is_empty(), "a name climbed out of the store: {escaped:?}");
    assert!(!canary.exists() && !rig.env.path().join("canary").exists(), "a name ran a command");
}

pub fn health_leaves_nothing(rig: Rig) {
    let mut c = rig.env.handoff("a");
    c.args(["--json", "doctor"]);
    let o = run(c);
    let j = o.json();
    let checks = j["checks"].as_array().unwrap_or_else(|| panic!("{j:#}"));
    let mine = checks
        .iter()
        .find(|c| c["check"] == rig.channel)
        .unwrap_or_else(|| panic!("doctor checks no {} channel: {j:#}", rig.channel));
    assert_eq!(mine["ok"], true, "{mine:#}");
    assert!(rig.stored().is_empty(), "health left something visible in the store");
    if let Some(pages) = &rig.pages {
        assert_eq!(pages(), Vec::<String>::new(), "health paged someone");
    }
}

pub fn outside_uri_refused(rig: Rig) {
    let outside = rig
        .outside
        .as_ref()
        .unwrap_or_else(|| panic!("the {} rig carries items but names no outside uri", rig.channel));
    // a real item first: some channels name a version (a commit) that the outside uri reuses
    let j = send_one(&rig, "real", "real.bin", &content(&rig, 1_000, 5));
    let real_uri = payload_receipts(&j)[0]["uri"].as_str().unwrap().to_string();
    let (uri, bytes) = outside(&rig, &real_uri);
    let pointer = handoff_channels::Pointer {
        title: None,
        note: None,
        items: vec![handoff_channels::PointerItem {
            channel: rig.channel.into(),
            name: "passwd".into(),
            // the true size and hash: without confinement the fetch would succeed
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            uri: uri.clone(),
            plain: None,
        }],
    };
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer.to_body(), &out);
    assert_ne!(o.code(), 0, "{uri} was fetched: {}", o.out());
    let text = format!("{}{}", o.out(), o.err());
    assert!(text.contains("outside") || text.contains("refus") || text.contains("not a"), "{text}");
    assert!(everything_in(&out).is_empty(), "{:?}", everything_in(&out));
}
