//! The behaviour cases, each written once for every channel.

use super::{Rig, ok, payload_receipts, pointer_id, sha256_hex};
use crate::support::{OutputExt, noise, run};
use serde_json::Value;

/// A case the channel's capabilities rule out says so (never a silent pass).
fn not_applicable(rig: &Rig, why: &str) {
    eprintln!("not applicable to the {} channel: {why}", rig.channel);
}

/// Files in `dir` (the fetch destination), by content hash.
fn fetched_hashes(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| sha256_hex(&std::fs::read(e.path()).unwrap())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

pub fn round_trip_with_sha256(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it carries no files");
    }
    let bytes = noise(300_000, 7);
    let f = rig.file("one", "report.bin", &bytes);
    let (o, j) = rig.send_files(&[&f]);
    ok(&o);
    let receipts = payload_receipts(&j);
    assert_eq!(receipts[0]["channel"], rig.channel, "{j:#}");
    assert_eq!(rig.stored().len(), 1, "one object stored: {:?}", rig.stored());
    assert_eq!(std::fs::read(&rig.stored()[0]).unwrap(), bytes, "the store holds the bytes sent");
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer_id(&j), &out);
    ok(&o);
    let got = &o.json()["fetched"][0];
    assert_eq!(got["sha256"], sha256_hex(&bytes));
    assert_eq!(std::fs::read(out.join("report.bin")).unwrap(), bytes);
}

/// A lost response: the channel stored the payload but its receipt was never saved. The finished job
/// is put back in the outbox with the payload step "not delivered", so the retry delivers the same key
/// again.
pub fn same_key_twice(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it carries no files");
    }
    let bytes = noise(50_000, 8);
    let f = rig.file("twice", "twice.bin", &bytes);
    let (o, j) = rig.send_files(&[&f]);
    ok(&o);
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
    let mut c = rig.env.handoff("a");
    c.args(["--json", "flush"]);
    ok(&run(c));
    assert!(!queued.join("job.json").exists(), "the job was delivered again");
    let again: Value = serde_json::from_str(&std::fs::read_to_string(&sent).unwrap()).unwrap();
    assert_eq!(again["steps"][0]["receipt"]["uri"], first_uri, "the same key lands in the same place");
    assert_eq!(rig.stored().len(), 1, "the same key delivered twice makes one copy: {:?}", rig.stored());
    assert_eq!(std::fs::read(&rig.stored()[0]).unwrap(), bytes);
}

pub fn two_same_named_files(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it carries no files");
    }
    let (first, second) = (noise(10_000, 1), noise(20_000, 2));
    let f1 = rig.file("x", "same.bin", &first);
    let f2 = rig.file("y", "same.bin", &second);
    let (o, j) = rig.send_files(&[&f1, &f2]);
    ok(&o);
    let receipts = payload_receipts(&j);
    assert_ne!(receipts[0]["uri"], receipts[1]["uri"], "two files, two places: {j:#}");
    assert_eq!(rig.stored().len(), 2, "both stored: {:?}", rig.stored());
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer_id(&j), &out);
    ok(&o);
    let mut want = vec![sha256_hex(&first), sha256_hex(&second)];
    want.sort();
    assert_eq!(fetched_hashes(&out), want, "both arrive, neither overwrites the other");
}

pub fn outage(mut rig: Rig) {
    if !rig.can.files || !rig.can.go_down {
        return not_applicable(&rig, "its store has no server that can be stopped");
    }
    let bytes = noise(40_000, 3);
    let f = rig.file("out", "later.bin", &bytes);
    (rig.set_up.as_mut().unwrap())(false);
    let (o, _) = rig.send_files(&[&f]);
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(rig.stored().is_empty());
    (rig.set_up.as_mut().unwrap())(true);
    let mut c = rig.env.handoff("a");
    c.args(["--json", "flush"]);
    ok(&run(c));
    let mut c = rig.env.handoff("a");
    c.args(["--json", "flush"]);
    ok(&run(c));
    assert_eq!(rig.stored().len(), 1, "delivered exactly once: {:?}", rig.stored());
    assert_eq!(std::fs::read(&rig.stored()[0]).unwrap(), bytes);
}

pub fn corrupted(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it carries no files");
    }
    let bytes = noise(100_000, 4);
    let f = rig.file("c", "fragile.bin", &bytes);
    let (o, j) = rig.send_files(&[&f]);
    ok(&o);
    let stored = rig.stored();
    let mut held = std::fs::read(&stored[0]).unwrap();
    held[5_000] ^= 0x55;
    std::fs::write(&stored[0], &held).unwrap();
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer_id(&j), &out);
    assert_ne!(o.code(), 0, "a corrupted object must fail the fetch: {}", o.out());
    assert!(o.err().contains("sha256") || o.out().contains("sha256"), "{}\n{}", o.out(), o.err());
    let left: Vec<_> = std::fs::read_dir(&out).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a failed fetch leaves nothing: {left:?}");
}

pub fn hostile_names(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it carries no files");
    }
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
        let bytes = noise(1_000 + i, 10 + i as u64);
        let f = rig.file(&format!("h{i}"), name, &bytes);
        let (o, j) = rig.send_files(&[&f]);
        ok(&o);
        let out = rig.env.path().join(format!("got{i}"));
        let o = rig.fetch(&pointer_id(&j), &out);
        ok(&o);
        assert_eq!(fetched_hashes(&out), [sha256_hex(&bytes)], "{name:?} arrives intact, inside --out");
    }
    assert_eq!(rig.stored().len(), names.len(), "every file is inside the store: {:?}", rig.stored());
    // nothing landed beside the store or elsewhere in the env (a name that climbed out would be there)
    let mut everywhere = Vec::new();
    super::visible_files(rig.env.path(), &mut everywhere);
    super::visible_files(rig.store.parent().unwrap(), &mut everywhere);
    let escaped: Vec<_> = everywhere
        .iter()
        .filter(|p| p.to_string_lossy().contains("windows.bin"))
        .filter(|p| !p.starts_with(&rig.store) && !p.starts_with(rig.env.path().join("outgoing")))
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
    assert!(rig.stored().is_empty(), "health left something visible: {:?}", rig.stored());
}

pub fn outside_uri_refused(rig: Rig) {
    if !rig.can.files {
        return not_applicable(&rig, "it fetches no files");
    }
    let pointer = handoff_channels::Pointer {
        title: None,
        note: None,
        items: vec![handoff_channels::PointerItem {
            channel: rig.channel.into(),
            name: "passwd".into(),
            // the true size and hash: without confinement the fetch would succeed
            size: rig.outside_bytes.len() as u64,
            sha256: sha256_hex(&rig.outside_bytes),
            uri: rig.outside_uri.clone(),
            plain: None,
        }],
    };
    let out = rig.env.path().join("got");
    let o = rig.fetch(&pointer.to_body(), &out);
    assert_ne!(o.code(), 0, "{} was fetched: {}", rig.outside_uri, o.out());
    let text = format!("{}{}", o.out(), o.err());
    assert!(text.contains("outside") || text.contains("refus"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&out).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
