//! The drive channel end to end: the real `handoff` binary storing payloads on real servers made by
//! `rclone serve webdav|sftp|s3` (and a `local` remote), configured in an rclone.conf in the test HOME, with
//! the rclone CLI as the independent client that checks what was stored.

use crate::support::rclone::{self, Kind, Server};
use crate::support::{Env, OutputExt, run};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::support::noise as payload;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An env with `[drive]` pointing at `remote`, and `conf_text` as its rclone.conf (at rclone's default place).
fn drive_env(remote: &str, folder: &str, conf_text: &str) -> (Env, PathBuf) {
    let mut env = Env::new();
    env.write_config(&format!("[drive]\nremote = \"{remote}\"\nfolder = \"{folder}\"\n"));
    let conf = rclone::write_conf(&env, conf_text);
    rclone::isolate_ssh(&mut env);
    rclone::put_rclone_on_path(&mut env);
    (env, conf)
}

fn write_file(env: &Env, name: &str, bytes: &[u8]) -> PathBuf {
    let p = env.path().join("outgoing").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `handoff send --file PATH --to b --json` as machine a; returns the JSON.
fn send(env: &Env, file: &Path, extra: &[&str]) -> (std::process::Output, Value) {
    let mut c = env.handoff("a");
    c.args(["--json", "send", "--to", "b", "--file"]).arg(file).args(extra);
    let out = run(c);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

/// The drive receipt of a send's JSON: (uri, detail).
fn drive_receipt(json: &Value) -> (String, String) {
    let steps = json["receipt"]["steps"].as_array().unwrap_or_else(|| panic!("no steps in {json}"));
    let r = steps
        .iter()
        .find_map(|s| s["receipt"].as_object().filter(|r| r["channel"] == "drive"))
        .unwrap_or_else(|| panic!("no drive receipt in {json:#}"));
    (r["uri"].as_str().unwrap().to_string(), r["detail"].as_str().unwrap_or("").to_string())
}

/// `drive:<remote>:<path>` → rclone's `remote:path`.
fn rclone_target(uri: &str) -> String {
    uri.strip_prefix("drive:").unwrap().to_string()
}

/// b's sync: the first pointer message's id.
fn pointer_id(env: &Env) -> String {
    let mut c = env.handoff("b");
    c.args(["sync", "--json"]);
    let out = run(c);
    out.ok();
    let j = out.json();
    let m = j["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "pointer")))
        .unwrap_or_else(|| panic!("b's sync shows no pointer: {j:#}"))
        .clone();
    assert!(m["fetch_command"].as_str().unwrap().starts_with("handoff fetch "), "{m}");
    m["id"].as_str().unwrap().to_string()
}

fn fetch(env: &Env, id: &str, out: &Path, force: bool) -> std::process::Output {
    let mut c = env.handoff("b");
    c.args(["fetch", id, "--out"]).arg(out);
    if force {
        c.arg("--force");
    }
    run(c)
}

/// Sends a payload through `remote`, checks it with the rclone CLI, then machine b syncs and fetches it.
fn round_trip(conf_text: &str, remote: &str, folder: &str, expect_detail: &str) {
    let (env, conf) = drive_env(remote, folder, conf_text);
    let bytes = payload(3 * 1024 * 1024 + 17, remote.len() as u64);
    let file = write_file(&env, "build log $(x); v2.bin", &bytes);
    let (out, json) = send(&env, &file, &[]);
    out.ok();
    let (uri, detail) = drive_receipt(&json);
    assert!(detail.contains(expect_detail), "receipt detail {detail:?} should say {expect_detail:?}");
    assert!(uri.starts_with(&format!("drive:{remote}:")), "{uri}");
    assert!(uri.ends_with("/build_log___x___v2.bin"), "stored under a safe name: {uri}");

    // rclone, as an independent client with the same config, sees the same bytes and size.
    let target = rclone_target(&uri);
    let cat = rclone::cat(&conf, &target, None);
    assert!(cat.status.success(), "rclone cat {target}: {}", cat.err());
    assert_eq!(cat.stdout.len(), bytes.len());
    assert!(cat.stdout == bytes, "rclone cat returns different bytes");
    assert_eq!(rclone::stat(&conf, &target, None)["Size"], bytes.len() as u64);

    // machine b: the pointer shows in sync, fetch verifies and writes it, and will not overwrite it.
    let id = pointer_id(&env);
    let dir = env.path().join("inbox");
    let got = fetch(&env, &id, &dir, false);
    got.ok();
    assert!(got.out().contains("sha256 verified"), "{}", got.out());
    let fetched = std::fs::read(dir.join("build_log___x___v2.bin")).unwrap();
    assert_eq!(sha256_hex(&fetched), sha256_hex(&bytes));
    let again = fetch(&env, &id, &dir, false);
    assert_eq!(again.code(), 0, "the identical file already there is success: {}", again.err());
    std::fs::write(dir.join("build_log___x___v2.bin"), b"other content").unwrap();
    let again = fetch(&env, &id, &dir, false);
    assert_ne!(again.code(), 0, "fetching over a different existing file must be refused");
    assert!(again.err().contains("--force"), "{}", again.err());
    fetch(&env, &id, &dir, true).ok();
}

#[test]
fn drive_webdav_send_is_read_back_by_rclone_and_fetched_by_b() {
    let server = Server::start(Kind::Webdav);
    round_trip(&server.section("dav", false), "dav", "claude-handoffs", "via opendal");
}

#[test]
fn drive_s3_send_is_read_back_by_rclone_and_fetched_by_b() {
    let server = Server::start(Kind::S3);
    round_trip(&server.section("objects", false), "objects", "bucket/claude-handoffs", "via opendal");
}

#[test]
fn drive_sftp_with_a_key_goes_through_the_system_ssh() {
    let server = Server::start(Kind::Sftp);
    round_trip(&server.section("box", true), "box", "claude-handoffs", "via the system ssh (SFTP)");
}

/// Every file under `dir`, recursively (names relative to it).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn drive_sftp_checks_the_host_key_against_the_remotes_known_hosts_file() {
    let server = Server::start(Kind::Sftp);
    let scan = std::process::Command::new("ssh-keyscan")
        .args(["-p", &server.port.to_string(), "127.0.0.1"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("ssh-keyscan runs (run `bash scripts/install-test-deps.sh`)");
    let keys = String::from_utf8(scan.stdout).unwrap();
    assert!(keys.contains("ssh-ed25519"), "ssh-keyscan found no ed25519 key: {keys}");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("known_hosts");
    std::fs::write(&good, &keys).unwrap();
    // Another ed25519 key for the same host and port: what an impostor would present.
    let other = dir.path().join("other");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let wrong = dir.path().join("known_hosts_wrong");
    let fields: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {}\n", server.port, fields.join(" "))).unwrap();

    let section =
        |file: &Path| format!("{}\nknown_hosts_file = {}\n", server.section("box", true).trim_end(), file.display());
    let (env, conf) = drive_env("box", "h", &section(&wrong));
    let bytes = payload(100_000, 9);
    let f = write_file(&env, "a.bin", &bytes);
    let (out, _) = send(&env, &f, &["--via", "drive"]);
    assert_ne!(out.code(), 0, "a host key that does not match known_hosts_file must be refused");
    let text = format!("{}{}", out.out(), out.err());
    assert!(text.contains("sftp remote box") && text.contains("host key does not match"), "{text}");
    assert!(files_under(&server.root).is_empty(), "nothing may reach the server: {:?}", files_under(&server.root));

    rclone::write_conf(&env, &section(&good));
    let (out, json) = send(&env, &f, &["--via", "drive"]);
    out.ok();
    let (uri, detail) = drive_receipt(&json);
    assert_eq!(detail, "via the system ssh (SFTP)");
    assert!(rclone::cat(&conf, &rclone_target(&uri), None).stdout == bytes);
}

#[test]
fn drive_one_gib_through_sftp_streams_with_flat_memory() {
    let server = Server::start(Kind::Sftp);
    let (env, conf) = drive_env("box", "big", &server.section("box", true));
    send_and_fetch_a_big_sparse_file(&env, &conf, 1 << 30, |detail| detail == "via the system ssh (SFTP)");
}

#[test]
fn drive_sftp_with_a_password_goes_through_rclone_and_says_so() {
    let server = Server::start(Kind::Sftp);
    round_trip(
        &server.section("boxpw", false),
        "boxpw",
        "claude-handoffs",
        "via rclone: the sftp remote logs in with a password",
    );
}

#[test]
fn drive_local_remote_round_trip() {
    let store = tempfile::tempdir().unwrap();
    let folder = store.path().join("payloads");
    round_trip("[here]\ntype = local\n", "here", folder.to_str().unwrap(), "via opendal");
}

#[test]
fn drive_never_overwrites_an_earlier_payload_with_the_same_name() {
    let server = Server::start(Kind::S3);
    let (env, conf) = drive_env("objects", "bucket/h", &server.section("objects", false));
    let first = payload(1000, 1);
    let second = payload(2000, 2);
    let f = write_file(&env, "same.bin", &first);
    let (o1, j1) = send(&env, &f, &[]);
    o1.ok();
    std::fs::write(&f, &second).unwrap();
    let (o2, j2) = send(&env, &f, &[]);
    o2.ok();
    let (u1, u2) = (drive_receipt(&j1).0, drive_receipt(&j2).0);
    assert_ne!(u1, u2);
    assert!(rclone::cat(&conf, &rclone_target(&u1), None).stdout == first, "the first payload is intact");
    assert!(rclone::cat(&conf, &rclone_target(&u2), None).stdout == second);
}

/// Flips one byte of the object behind `uri` on the server's disk, keeping its size.
fn flip_stored_byte(server: &Server, uri: &str, at: usize) {
    let on_disk = server.root.join(rclone_target(uri).split_once(':').unwrap().1);
    let mut stored = std::fs::read(&on_disk).unwrap();
    stored[at] ^= 0xff;
    std::fs::write(&on_disk, &stored).unwrap();
}

/// Fetching pointer `id` into `dir` fails on the sha256 check and leaves nothing in `dir`.
fn assert_corrupt_fetch_fails_leaving_nothing(env: &Env, id: &str, dir: &Path) {
    let got = fetch(env, id, dir, false);
    assert_ne!(got.code(), 0, "a corrupted payload must fail: {}", got.out());
    assert!(got.err().contains("sha256 mismatch"), "{}", got.err());
    let left: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
}

#[test]
fn drive_sftp_large_fetch_over_several_channels_is_exact_and_a_corrupted_region_fails() {
    let server = Server::start(Kind::Sftp);
    let (env, conf) = drive_env("box", "h", &server.section("box", true));
    // Three 64 MiB regions' worth: read by several channels at once, hashed in file order.
    let bytes = payload(2 * 64 * 1024 * 1024 + 3 * 1024 * 1024 + 77, 11);
    let f = write_file(&env, "build.tar", &bytes);
    let (out, json) = send(&env, &f, &[]);
    out.ok();
    let (uri, _) = drive_receipt(&json);
    assert!(rclone::cat(&conf, &rclone_target(&uri), None).stdout == bytes, "rclone reads the exact bytes");

    let id = pointer_id(&env);
    let dir = env.path().join("inbox");
    let mut c = env.handoff("b");
    c.args(["-vv", "fetch", &id, "--out"]).arg(&dir);
    let got = run(c);
    got.ok();
    assert!(got.err().contains("over 4 SFTP channel(s)"), "{}", got.err());
    assert!(std::fs::read(dir.join("build.tar")).unwrap() == bytes, "fetched bytes differ");

    // One byte flipped in the second region, on the server's disk: the whole fetch fails, nothing is left.
    flip_stored_byte(&server, &uri, 64 * 1024 * 1024 + 4321);
    let dir = env.path().join("inbox2");
    assert_corrupt_fetch_fails_leaving_nothing(&env, &id, &dir);
}

#[test]
fn drive_encrypted_rclone_conf_works_with_its_password_and_fails_clearly_otherwise() {
    let server = Server::start(Kind::Webdav);
    let (mut env, conf) = drive_env("dav", "h", &server.section("dav", false));
    rclone::encrypt_conf(&conf, "correct-horse");
    let f = write_file(&env, "a.txt", b"encrypted config works");

    let (out, _) = send(&env, &f, &["--via", "drive"]);
    assert_ne!(out.code(), 0, "no password: must fail");
    assert!(
        out.err().contains("RCLONE_CONFIG_PASS") || out.out().contains("RCLONE_CONFIG_PASS"),
        "{}{}",
        out.out(),
        out.err()
    );

    env.var("RCLONE_CONFIG_PASS", "wrong-horse");
    let (out, _) = send(&env, &f, &["--via", "drive"]);
    assert_ne!(out.code(), 0, "wrong password: must fail");
    let text = format!("{}{}", out.out(), out.err());
    assert!(text.contains("wrong password"), "{text}");
    assert!(!text.contains("wrong-horse"), "the password must not be echoed: {text}");

    env.vars.retain(|(k, _)| k != "RCLONE_CONFIG_PASS");
    env.var("RCLONE_CONFIG_PASS", "correct-horse");
    let (out, json) = send(&env, &f, &[]);
    out.ok();
    let (uri, _) = drive_receipt(&json);
    let cat = rclone::cat(&conf, &rclone_target(&uri), Some("correct-horse"));
    assert_eq!(cat.stdout, b"encrypted config works");
}

#[test]
fn drive_missing_remote_lists_the_remotes_found() {
    let server = Server::start(Kind::Webdav);
    let (env, _) = drive_env("gdrive", "h", &format!("{}[here]\ntype = local\n", server.section("dav", false)));
    let f = write_file(&env, "a.txt", b"x");
    let (out, _) = send(&env, &f, &["--via", "drive"]);
    assert_ne!(out.code(), 0);
    // the step's error, said once (in the JSON receipt; no log line without -v)
    let v = out.json();
    let text = v["receipt"]["steps"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("\"gdrive\" is not configured"), "{v}");
    assert!(text.contains("dav (webdav)") && text.contains("here (local)"), "{text}");
}

#[test]
fn drive_without_rclone_installed_says_what_to_install() {
    let server = Server::start(Kind::Sftp);
    let (mut env, _) = drive_env("boxpw", "h", &server.section("boxpw", false));
    env.vars.retain(|(k, _)| k != "PATH");
    env.var("PATH", rclone::path_without_rclone());
    let f = write_file(&env, "a.txt", b"x");
    let (out, _) = send(&env, &f, &["--via", "drive"]);
    assert_ne!(out.code(), 0);
    let text = format!("{}{}", out.out(), out.err());
    assert!(text.contains("rclone is not on PATH") && text.contains("install it"), "{text}");
    assert!(text.contains("password"), "the reason rclone is needed is given: {text}");
}

#[test]
fn drive_sync_fetch_downloads_pointers_under_the_size_cap_only() {
    let store = tempfile::tempdir().unwrap();
    let folder = store.path().join("p");
    let (env, _) = drive_env("here", folder.to_str().unwrap(), "[here]\ntype = local\n");
    let cfg = std::fs::read_to_string(env.path().join("config/handoff/config.toml")).unwrap();
    env.write_config(&format!("{cfg}\n[route]\nfetch_max = \"10KiB\"\n"));
    let small = payload(1000, 5);
    let large = payload(20_000, 6);
    send(&env, &write_file(&env, "small.bin", &small), &[]).0.ok();
    send(&env, &write_file(&env, "large.bin", &large), &[]).0.ok();
    let out_dir = env.path().join("auto");
    let mut c = env.handoff("b");
    c.args(["sync", "--fetch", "--json", "--out"]).arg(&out_dir);
    let out = run(c);
    out.ok();
    let j = out.json();
    let fetched: Vec<&str> =
        j["sync"]["fetched"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fetched, ["small.bin"], "{j:#}");
    let notes = j["sync"]["notes"].to_string();
    assert!(notes.contains("not fetched") && notes.contains("fetch_max"), "{notes}");
    let small_path = j["sync"]["fetched"][0]["path"].as_str().unwrap();
    assert_eq!(std::fs::read(small_path).unwrap(), small);
}

#[test]
fn drive_on_an_unmounted_local_disk_doctor_and_fetch_say_so_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("usb");
    let away = tmp.path().join("unplugged");
    std::fs::create_dir_all(&disk).unwrap();
    // an alias of the disk's directory, as `rclone config` makes for a USB disk; the folder inside it does
    // not exist yet (drive creates it on first send)
    let conf = format!("[usb]\ntype = alias\nremote = {}\n", disk.display());
    let (env, _) = drive_env("usb", "handoffs", &conf);
    let bytes = payload(5_000, 9);
    send(&env, &write_file(&env, "first.bin", &bytes), &[]).0.ok();
    let id = pointer_id(&env);

    std::fs::rename(&disk, &away).unwrap();
    let mut c = env.handoff("a");
    c.args(["--json", "doctor"]);
    let o = run(c);
    assert_ne!(o.code(), 0, "doctor passed with the disk unmounted: {}", o.out());
    let j = o.json();
    let drive = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "drive").unwrap().clone();
    assert_eq!(drive["ok"], false, "{drive:#}");
    assert!(drive.to_string().contains("is its disk mounted"), "{drive:#}");
    let got = env.path().join("got");
    let f = fetch(&env, &id, &got, false);
    // nothing is queued by a fetch: 69, unavailable (as for an unreachable server), not "not on the remote"
    assert_eq!(f.code(), 69, "{}{}", f.out(), f.err());
    assert!(f.err().contains("is its disk mounted"), "{}", f.err());
    // (without --via the file would fall back to the embedded local store)
    let (out, _) = send(&env, &write_file(&env, "second.bin", &payload(100, 10)), &["--via", "drive"]);
    assert_eq!(out.code(), 75, "{}{}", out.out(), out.err());
    assert!(!disk.exists(), "drive created the unmounted disk's directory");
    assert!(!got.join("first.bin").exists());

    std::fs::rename(&away, &disk).unwrap();
    fetch(&env, &id, &got, false).ok();
    assert_eq!(std::fs::read(got.join("first.bin")).unwrap(), bytes);
}

/// Runs a command, sampling its peak RSS (`VmHWM`, which only grows) from /proc until it exits.
fn run_measuring_peak_rss(mut c: std::process::Command) -> (std::process::Output, u64) {
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(&status_path)
                    && let Some(kb) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                {
                    peak.fetch_max(kb * 1024, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

/// Sends a sparse file of `size` bytes from a and fetches it on b, each with its peak RSS under 100 MiB;
/// rclone sees the whole object, and the receipt's detail passes `via` (which path carried it).
fn send_and_fetch_a_big_sparse_file(env: &Env, conf: &Path, size: u64, via: impl Fn(&str) -> bool) {
    const LIMIT: u64 = 100 << 20;
    // A sparse file: reading it costs no disk, and the server really stores all of it.
    let big = env.path().join("outgoing/big.iso");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::File::create(&big).unwrap().set_len(size).unwrap();

    let mut c = env.handoff("a");
    c.args(["--json", "send", "--to", "b", "--file"]).arg(&big);
    let (out, send_peak) = run_measuring_peak_rss(c);
    out.ok();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (uri, detail) = drive_receipt(&json);
    assert!(via(&detail), "{detail}");
    assert_eq!(rclone::stat(conf, &rclone_target(&uri), None)["Size"], size, "rclone sees the whole object");
    eprintln!("send of {} MiB: peak RSS {} MiB", size >> 20, send_peak >> 20);
    assert!(send_peak > 0 && send_peak < LIMIT, "send peak RSS {} MiB is not under 100 MiB", send_peak >> 20);
    std::fs::remove_file(&big).unwrap();

    let id = pointer_id(env);
    let dir = env.path().join("inbox");
    let mut c = env.handoff("b");
    c.args(["fetch", &id, "--out"]).arg(&dir);
    let (out, fetch_peak) = run_measuring_peak_rss(c);
    out.ok();
    eprintln!("fetch of {} MiB: peak RSS {} MiB", size >> 20, fetch_peak >> 20);
    assert_eq!(std::fs::metadata(dir.join("big.iso")).unwrap().len(), size);
    assert!(fetch_peak > 0 && fetch_peak < LIMIT, "fetch peak RSS {} MiB is not under 100 MiB", fetch_peak >> 20);
}

#[test]
fn drive_two_gib_through_s3_streams_with_flat_memory() {
    let server = Server::start(Kind::S3);
    let (env, conf) = drive_env("objects", "bucket/big", &server.section("objects", false));
    send_and_fetch_a_big_sparse_file(&env, &conf, 2 << 30, |detail| detail.contains("via opendal"));
}

#[test]
fn drive_webdav_above_single_request_max_is_streamed_by_rclone() {
    let server = Server::start(Kind::Webdav);
    let (env, conf) = drive_env("dav", "h", &server.section("dav", false));
    env.write_config("[drive]\nremote = \"dav\"\nfolder = \"h\"\nsingle_request_max = \"4KiB\"\n");
    let small = payload(1000, 7);
    let large = payload(50_000, 8);
    let (o, j) = send(&env, &write_file(&env, "small.bin", &small), &[]);
    o.ok();
    assert_eq!(drive_receipt(&j).1, "via opendal");
    let (o, j) = send(&env, &write_file(&env, "large.bin", &large), &[]);
    o.ok();
    let (uri, detail) = drive_receipt(&j);
    assert!(detail.starts_with("via rclone") && detail.contains("single_request_max"), "{detail}");
    assert!(rclone::cat(&conf, &rclone_target(&uri), None).stdout == large);
}
