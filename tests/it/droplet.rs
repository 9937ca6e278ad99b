//! The droplet channel end to end: the real `handoff` binary sending to and fetching from a real sshd on
//! loopback (its own host key, authorized_keys, temp dir), with the client's ssh set up in the test HOME
//! exactly as a user's would be (`~/.ssh/config` alias, known_hosts, key), and the real bus.

use crate::support::bus::BusServer;
use crate::support::sshd::Sshd;
use crate::support::{Env, OutputExt, run, tool};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The ssh alias the tests' `~/.ssh/config` defines.
const ALIAS: &str = "droplet-test";

/// sshd + bus + a user env configured with `[droplet] host = ALIAS`.
struct Rig {
    sshd: Sshd,
    _bus: BusServer,
    env: Env,
    /// The droplet directory on the server.
    dir: PathBuf,
}

fn rig() -> Rig {
    rig_with(&[])
}

fn rig_with(vars: &[(&str, &str)]) -> Rig {
    rig_on(Sshd::start(), vars)
}

fn rig_on(sshd: Sshd, vars: &[(&str, &str)]) -> Rig {
    let bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    sshd.setup_client(&mut env, ALIAS);
    for (k, v) in vars {
        env.var(k, *v);
    }
    let dir = sshd.server_dir("drop");
    env.write_config(&format!("[droplet]\nhost = \"{ALIAS}\"\ndir = \"{}\"\n", dir.display()));
    Rig { sshd, _bus: bus, env, dir }
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

use crate::support::noise;

fn send(rig: &Rig, file: &Path) -> std::process::Output {
    let mut c = rig.env.handoff("a");
    c.args(["send", "--to", "b", "--json", "--via", "droplet", "--file"]).arg(file);
    run(c)
}

/// Names in the droplet dir.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn payload_uri(send_json: &Value) -> String {
    send_json["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "payload")
        .and_then(|s| s["receipt"]["uri"].as_str())
        .unwrap_or_else(|| panic!("no payload uri in {send_json}"))
        .to_string()
}

fn pointer_id(send_json: &Value) -> String {
    send_json["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "pointer")
        .and_then(|s| s["receipt"]["message_id"].as_str())
        .unwrap_or_else(|| panic!("no pointer message id in {send_json}"))
        .to_string()
}

fn is_handoff_payload_name(n: &str) -> bool {
    let Some(rest) = n.strip_prefix("handoff-") else {
        return false;
    };
    rest.len() > 25 && rest[..24].bytes().all(|b| b.is_ascii_hexdigit()) && rest.as_bytes()[24] == b'-'
}

#[test]
fn harness_sshd_runs_commands_only_when_asked_and_logs_them() {
    // The "nothing ran" checks below rely on sshd logging command sessions; prove that it does.
    let sshd = Sshd::start();
    let mut env = Env::new();
    sshd.setup_client(&mut env, ALIAS);
    let o = run({
        let mut c = sshd.ssh(&env, ALIAS);
        c.args(["touch", "${HANDOFF_CANARY}harness"]);
        c
    });
    o.ok();
    assert!(Path::new(&format!("{}harness", sshd.canary_prefix())).exists(), "SetEnv canary works");
    assert!(sshd.command_session_logged().is_some(), "sshd logs command sessions:\n{}", sshd.log_text());
}

#[test]
fn upload_and_fetch_round_trip_with_sha256() {
    let rig = rig();
    let src = rig.env.path().join("report 2026.bin");
    std::fs::write(&src, noise(3 * 1024 * 1024 + 17, 1)).unwrap();
    let want = sha256_file(&src);

    let o = send(&rig, &src);
    o.ok();
    let j = o.json();
    let uri = payload_uri(&j);
    let names = listing(&rig.dir);
    assert_eq!(names.len(), 1, "one file, no .part left: {names:?}");
    let stored = rig.dir.join(&names[0]);
    assert!(is_handoff_payload_name(&names[0]) && names[0].ends_with("-report_2026.bin"), "{names:?}");
    assert_eq!(uri, format!("droplet:{}", stored.display()));
    assert_eq!(sha256_file(&stored), want, "the server holds the exact bytes");

    // machine b fetches it through the pointer on the bus; sha256 is verified
    let out = rig.env.path().join("inbox");
    let o = run({
        let mut c = rig.env.handoff("b");
        c.args(["fetch", &pointer_id(&j), "--json", "--out"]).arg(&out);
        c
    });
    o.ok();
    let fetched = out.join("report 2026.bin".replace(' ', "_"));
    assert_eq!(sha256_file(&fetched), want);
    assert_eq!(o.json()["fetched"][0]["sha256"], want.as_str());
    assert!(rig.sshd.command_session_logged().is_none(), "only SFTP was used: {:?}", rig.sshd.command_session_logged());

    // the same send retried (same idempotency key) finds its upload: flush of an empty outbox changes nothing
    run({
        let mut c = rig.env.handoff("a");
        c.arg("flush");
        c
    })
    .ok();
    assert_eq!(listing(&rig.dir).len(), 1);
}

/// The hostile-name suite; `vars` selects the transport.
fn hostile_names_suite(vars: &[(&str, &str)]) {
    let rig = rig_with(vars);
    let srv = rig.dir.parent().unwrap().to_path_buf();
    std::fs::write(srv.join("canary.txt"), "untouched").unwrap();
    let before_srv = listing(&srv);
    let names = [
        "a b c.txt",
        "quote'single\"double.txt",
        "semi;touch ${HANDOFF_CANARY}semi;.txt",
        "$(touch ${HANDOFF_CANARY}dollar).txt",
        "`touch ${HANDOFF_CANARY}backtick`.txt",
        "new\nline$(touch ${HANDOFF_CANARY}newline).txt",
        "-rf",
        "--help",
        "...",
        "*",
        "[x].txt",
        "#hash",
    ];
    let local = rig.env.path().join("hostile");
    std::fs::create_dir_all(&local).unwrap();
    for (i, n) in names.iter().enumerate() {
        let p = local.join(n);
        std::fs::write(&p, format!("payload {i}")).unwrap();
        let o = send(&rig, &p);
        o.ok();
        let uri = payload_uri(&o.json());
        let stored = uri.strip_prefix("droplet:").unwrap();
        let stored = Path::new(stored);
        assert_eq!(stored.parent().unwrap(), rig.dir, "{n:?} landed inside the droplet dir");
        assert_eq!(std::fs::read_to_string(stored).unwrap(), format!("payload {i}"), "{n:?}");
        let base = stored.file_name().unwrap().to_string_lossy().into_owned();
        assert!(is_handoff_payload_name(&base), "{n:?} -> {base:?}");
        assert!(
            base.chars().all(|c| c.is_alphanumeric() || "._-+=".contains(c)),
            "{n:?} became one plain name: {base:?}"
        );
    }
    // paths that escape, given by absolute path and ../: only the base name travels
    let deep = local.join("sub");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(local.join("escape.txt"), "escape").unwrap();
    let o = send(&rig, &deep.join("..").join("escape.txt"));
    o.ok();
    assert!(payload_uri(&o.json()).ends_with("-escape.txt"));

    // a forged pointer that points outside the droplet dir is refused before anything is read
    for uri in [
        format!("droplet:{}/../canary.txt", rig.dir.display()),
        "droplet:/etc/passwd".to_string(),
        format!("droplet:{}/handoff-0123456789abcdef01234567-x/../../canary.txt", rig.dir.display()),
    ] {
        let body = format!(
            "handoff-pointer/v1 {{\"items\":[{{\"channel\":\"droplet\",\"name\":\"x\",\"size\":9,\"sha256\":\"{}\",\"uri\":\"{uri}\"}}]}}",
            "0".repeat(64)
        );
        let out = rig.env.path().join("forged");
        let o = run({
            let mut c = rig.env.handoff("b");
            c.args(["fetch", &body, "--out"]).arg(&out);
            c
        });
        assert_ne!(o.code(), 0, "{uri}");
        assert!(o.err().contains("refusing droplet pointer"), "{uri}: {}", o.err());
        assert!(!out.join("x").exists());
    }

    // nothing ran: no canary file was created, sshd saw no command session, and nothing escaped the dir
    let canaries: Vec<_> = std::fs::read_dir(rig.sshd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("canary-"))
        .collect();
    assert!(canaries.is_empty(), "hostile names ran code on the server: {canaries:?}");
    assert_eq!(rig.sshd.command_session_logged(), None);
    assert_eq!(listing(&srv), before_srv, "nothing appeared beside the droplet dir");
    assert_eq!(std::fs::read_to_string(srv.join("canary.txt")).unwrap(), "untouched");
    for n in listing(&rig.dir) {
        assert!(is_handoff_payload_name(&n), "only handoff's payloads in the dir, no leftovers: {n:?}");
    }
    assert_eq!(listing(&rig.dir).len(), names.len() + 1);
}

#[test]
fn hostile_names_land_as_one_safe_file_and_nothing_runs() {
    hostile_names_suite(&[]);
}

#[test]
fn sftp_binary_fallback_handles_the_same_hostile_names() {
    // The transport Windows uses (the system sftp in batch mode), exercised here against the same sshd.
    hostile_names_suite(&[("HANDOFF_DROPLET_TRANSPORT", "sftp")]);
}

#[test]
fn changed_or_unknown_host_key_is_refused_and_never_accepted() {
    let mut rig = rig();
    let f = rig.env.path().join("a.txt");
    std::fs::write(&f, "one").unwrap();
    send(&rig, &f).ok();
    let known_hosts = rig.env.home().join(".ssh/known_hosts");
    let kh_before = std::fs::read_to_string(&known_hosts).unwrap();

    rig.sshd.restart_with_new_host_key();
    std::fs::write(&f, "two").unwrap();
    let o = send(&rig, &f);
    assert_eq!(o.code(), 69, "a changed host key is a permanent refusal:\n{}\n{}", o.out(), o.err());
    let all = format!("{}{}", o.out(), o.err());
    assert!(all.contains(&format!("droplet host {ALIAS}")) && all.contains("host key does not match"), "{all}");
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), kh_before, "known_hosts untouched");
    assert_eq!(listing(&rig.dir).len(), 1, "nothing sent to the impostor");

    // an unknown host (empty known_hosts) is not accepted on first use either
    std::fs::write(&known_hosts, "").unwrap();
    let o = send(&rig, &f);
    assert_eq!(o.code(), 69);
    assert!(format!("{}{}", o.out(), o.err()).contains("not in your known_hosts"), "{}", o.err());
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), "", "handoff added no key by itself");
}

#[test]
fn refused_key_is_an_auth_error_naming_the_host() {
    let rig = rig();
    std::fs::write(rig.sshd.path().join("authorized_keys"), "").unwrap();
    let f = rig.env.path().join("a.txt");
    std::fs::write(&f, "x").unwrap();
    let o = send(&rig, &f);
    assert_eq!(o.code(), 77, "{}\n{}", o.out(), o.err());
    let all = format!("{}{}", o.out(), o.err());
    assert!(
        all.contains(&format!("droplet host {ALIAS} refused the login")) && all.contains("authorized_keys"),
        "{all}"
    );
}

#[test]
fn stopped_sshd_queues_with_75_then_delivers_exactly_once() {
    let mut rig = rig();
    let f = rig.env.path().join("later.bin");
    std::fs::write(&f, noise(100_000, 2)).unwrap();
    rig.sshd.stop();
    let o = send(&rig, &f);
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(o.err().contains("queued in the outbox"), "{}", o.err());
    assert!(o.out().contains(&format!("droplet host {ALIAS} is unreachable")), "{}", o.out());
    assert!(listing(&rig.dir).is_empty());

    // still down: flush keeps it queued
    let flush = || {
        let mut c = rig.env.handoff("a");
        c.args(["flush", "--json"]);
        run(c)
    };
    assert_eq!(flush().code(), 75);

    rig.sshd.restart();
    let o = flush();
    o.ok();
    let names = listing(&rig.dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(sha256_file(&rig.dir.join(&names[0])), sha256_file(&f));
    assert_eq!(o.json()["left_in_outbox"], 0);
    // b sees exactly one pointer
    let o = run({
        let mut c = rig.env.handoff("b");
        c.args(["sync", "--json"]);
        c
    });
    o.ok();
    let msgs = o.json()["sync"]["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0]["body"].as_str().unwrap().contains(&names[0]));
    // a second flush delivers nothing new
    flush().ok();
    assert_eq!(listing(&rig.dir).len(), 1);
}

/// Sends a file of two 64 MiB regions and a bit, fetches it on b with debug logging; returns fetch's
/// stderr after checking the fetched bytes are the sent ones.
fn fetch_a_multi_region_file(rig: &Rig) -> String {
    let src = rig.env.path().join("big.bin");
    let data = noise(2 * 64 * 1024 * 1024 + 5 * 1024 * 1024 + 123, 7);
    std::fs::write(&src, &data).unwrap();
    let o = send(rig, &src);
    o.ok();
    let out = rig.env.path().join("inbox");
    let o = run({
        let mut c = rig.env.handoff("b");
        c.args(["-vv", "fetch", &pointer_id(&o.json()), "--out"]).arg(&out);
        c
    });
    o.ok();
    assert!(std::fs::read(out.join("big.bin")).unwrap() == data, "fetched bytes differ from the sent ones");
    o.err()
}

#[test]
fn a_large_fetch_reads_over_four_channels_or_as_many_as_the_server_allows() {
    // Regions read at once by different channels arrive out of order and are hashed in file order.
    let err = fetch_a_multi_region_file(&rig());
    assert!(err.contains("over 4 SFTP channel(s)"), "{err}");
    // A server that allows one session per connection: the same download over the one channel.
    let err = fetch_a_multi_region_file(&rig_on(Sshd::start_with_max_sessions(1), &[]));
    assert!(err.contains("over 1 SFTP channel(s)"), "{err}");
}

#[test]
fn dropped_connection_mid_transfer_leaves_no_final_file_and_queues() {
    let rig = rig();
    let f = rig.env.path().join("big.bin");
    std::fs::write(&f, noise(96 * 1024 * 1024, 3)).unwrap();
    let mut c = rig.env.handoff("a");
    c.args(["send", "--to", "b", "--via", "droplet", "--file"]).arg(&f);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).stdin(std::process::Stdio::null());
    let child = c.spawn().unwrap();
    // wait until part of the file is on the server, then cut every connection
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let part = std::fs::read_dir(&rig.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".part"));
        if let Some(p) = part {
            let len = p.metadata().map(|m| m.len()).unwrap_or(0);
            if len > 1024 * 1024 {
                rig.sshd.drop_connections();
                break;
            }
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    let names = listing(&rig.dir);
    assert!(names.iter().all(|n| n.ends_with(".part")), "no file under its final name: {names:?}");

    let o = run({
        let mut c = rig.env.handoff("a");
        c.arg("flush");
        c
    });
    o.ok();
    let names = listing(&rig.dir);
    assert_eq!(names.len(), 1, "the retry replaced the partial upload: {names:?}");
    assert_eq!(sha256_file(&rig.dir.join(&names[0])), sha256_file(&f));
}

#[test]
fn prune_removes_only_old_handoff_payloads() {
    let rig = rig();
    let mut stored = Vec::new();
    for i in 0..3 {
        let f = rig.env.path().join(format!("p{i}.txt"));
        std::fs::write(&f, format!("p{i}")).unwrap();
        let o = send(&rig, &f);
        o.ok();
        stored.push(payload_uri(&o.json()).rsplit('/').next().unwrap().to_string());
    }
    let foreign = ["notes.txt", "handoff-notes.txt", "handoff-0123456789abcdef0123456z-x.txt"];
    for n in foreign {
        std::fs::write(rig.dir.join(n), "mine").unwrap();
    }
    std::fs::create_dir(rig.dir.join("handoff-0123456789abcdef01234567-dir")).unwrap();
    let stale_part = ".handoff-0123456789abcdef01234567-old.bin.part";
    std::fs::write(rig.dir.join(stale_part), "half").unwrap();
    // age two payloads, the stale part and every foreign entry by 10 days
    let old = std::time::SystemTime::now() - Duration::from_secs(10 * 86400);
    let age = |n: &str| {
        let f = std::fs::File::options()
            .write(true)
            .open(rig.dir.join(n))
            .or_else(|_| std::fs::File::open(rig.dir.join(n)))
            .unwrap();
        f.set_modified(old).unwrap();
    };
    for n in [&stored[0], &stored[1]] {
        age(n);
    }
    age(stale_part);
    for n in foreign {
        age(n);
    }

    let prune = |extra: &[&str]| {
        let mut c = rig.env.handoff("a");
        c.args(["droplet", "prune", "--older-than", "7d", "--json"]).args(extra);
        run(c)
    };
    let o = prune(&["--dry-run"]);
    o.ok();
    assert_eq!(o.json()["report"]["removed"].as_array().unwrap().len(), 3);
    assert_eq!(listing(&rig.dir).len(), 3 + foreign.len() + 2, "dry run removed nothing");

    let o = prune(&[]);
    o.ok();
    let mut want_removed = vec![stored[0].clone(), stored[1].clone(), stale_part.to_string()];
    want_removed.sort();
    let removed: Vec<String> =
        o.json()["report"]["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(removed, want_removed);
    let left = listing(&rig.dir);
    assert!(left.contains(&stored[2]), "the young payload stays");
    for n in foreign {
        assert!(left.contains(&n.to_string()), "{n} is not handoff's and stays");
    }
    assert!(left.contains(&"handoff-0123456789abcdef01234567-dir".to_string()), "directories stay");
    assert_eq!(o.json()["report"]["kept"], 1);

    let o = run({
        let mut c = rig.env.handoff("a");
        c.args(["droplet", "prune", "--older-than", "soon"]);
        c
    });
    assert_eq!(o.code(), 2);
    assert!(o.err().contains("7d"), "{}", o.err());
}

#[test]
fn prune_prints_hostile_remote_names_escaped() {
    let rig = rig();
    // a name only whoever can write to the droplet's directory chose: handoff's pattern, then a terminal
    // escape and a newline that would forge a line of its own
    let hostile = "handoff-0123456789abcdef01234567-x\x1b[2J\nremoved: every key in ~.ssh";
    std::fs::create_dir_all(&rig.dir).unwrap();
    std::fs::write(rig.dir.join(hostile), "x").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(10 * 86400);
    std::fs::File::options().write(true).open(rig.dir.join(hostile)).unwrap().set_modified(old).unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let mut c = rig.env.handoff("a");
        c.args(["droplet", "prune", "--older-than", "7d"]).args(extra);
        let o = run(c);
        o.ok();
        let out = o.out();
        assert!(!out.contains('\x1b'), "an ESC byte reached the terminal: {out:?}");
        assert!(
            out.lines().any(|l| l.ends_with("-x\\x1b[2J\\nremoved: every key in ~.ssh")),
            "the name is shown escaped on its own line: {out:?}"
        );
        assert!(!out.lines().any(|l| l.starts_with("removed: every")), "a forged line: {out:?}");
    }
    assert!(!rig.dir.join(hostile).exists(), "the old payload-named file was pruned");
}

#[test]
fn one_gib_upload_keeps_peak_rss_under_100_mib() {
    let rig = rig();
    let f = rig.env.path().join("one-gib.img");
    // sparse: instant to create, reads as zeros; the memory bound is about streaming, not content
    std::fs::File::create(&f).unwrap().set_len(1 << 30).unwrap();
    // GNU time measures handoff from a small parent: a child spawned straight from this (large,
    // multi-threaded) test process would inherit its high-water RSS into ru_maxrss.
    let report = rig.env.path().join("time.txt");
    let mut c = Command::new(tool("time"));
    rig.env.apply(&mut c);
    c.env("HANDOFF_MACHINE", "a").args(["-f", "%M", "-o"]).arg(&report).arg(crate::support::handoff_bin());
    c.args(["send", "--to", "b", "--via", "droplet", "--file"]).arg(&f);
    run(c).ok();
    let peak_kib: u64 = std::fs::read_to_string(&report).unwrap().trim().lines().last().unwrap().parse().unwrap();
    eprintln!("peak RSS of handoff sending 1 GiB: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB is over 100 MiB");
    let names = listing(&rig.dir);
    assert_eq!(names.len(), 1);
    assert_eq!(std::fs::metadata(rig.dir.join(&names[0])).unwrap().len(), 1 << 30);
}

#[test]
fn a_queued_send_survives_a_sync_after_its_channel_left_the_config_and_flush_delivers_it_once() {
    let mut rig = rig();
    let config = std::fs::read_to_string(rig.env.path().join("config/handoff/config.toml")).unwrap();
    let file = rig.env.path().join("report.bin");
    std::fs::write(&file, noise(5000, 41)).unwrap();
    rig.sshd.stop();
    let o = send(&rig, &file);
    assert_eq!(o.code(), 75, "the droplet is down: queued\n{}", o.err());
    rig.env.write_config("# the droplet section was removed\n");
    let mut c = rig.env.handoff("b");
    c.args(["sync", "--json"]);
    let o = run(c);
    let v = o.json();
    let problems = v["problems"].to_string();
    assert!(problems.contains("not configured") && problems.contains("stays queued"), "{v:#}");
    let outbox = rig.env.path().join("data/handoff/outbox");
    let jobs: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("job.json").exists())
        .collect();
    assert_eq!(jobs.len(), 1, "the implicit flush keeps the job");
    let job: Value = serde_json::from_slice(&std::fs::read(jobs[0].path().join("job.json")).unwrap()).unwrap();
    assert!(job["steps"].as_array().unwrap().iter().all(|s| s["failed"] == false), "{job:#}");
    // the droplet is back in the config and up: the user's flush delivers it, once
    rig.env.write_config(&config);
    rig.sshd.restart();
    let mut c = rig.env.handoff("a");
    c.arg("flush");
    run(c).ok();
    let mut c = rig.env.handoff("a");
    c.arg("flush");
    run(c).ok();
    assert_eq!(listing(&rig.dir).iter().filter(|n| is_handoff_payload_name(n)).count(), 1);
    let mut c = rig.env.handoff("b");
    c.args(["sync", "--json"]);
    let v = run(c).json();
    let pointers: Vec<&Value> =
        v["sync"]["messages"].as_array().unwrap().iter().filter(|m| m["pointer"].is_object()).collect();
    assert_eq!(pointers.len(), 1, "one pointer, delivered once: {v:#}");
}
