//! The command line itself: the README's first command, config errors, dry runs, exit codes.

use crate::support::{Env, OutputExt, handoff_bin, repo_root, run};
use std::process::Command;

#[test]
fn the_readme_first_command_completes_a_round_trip_in_a_fresh_home() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let first =
        readme.lines().skip_while(|l| !l.starts_with("## The two commands")).find(|l| l.starts_with("bash ")).unwrap();
    assert_eq!(first, "bash scripts/demo.sh");
    let env = Env::new();
    let mut c = Command::new("bash");
    c.arg(repo_root().join("scripts/demo.sh"));
    env.apply(&mut c);
    c.env("HANDOFF_BIN", handoff_bin());
    let o = run(c);
    o.ok();
    let out = o.out();
    assert!(out.contains("tests pass; PR #42 ready for review"), "{out}");
    assert!(out.contains("handoff: nothing new for desktop"), "{out}");
    assert!(out.contains("round trip ok"), "{out}");
    // it left nothing in the fresh HOME
    assert!(std::fs::read_dir(env.home()).unwrap().next().is_none());
}

#[test]
fn a_malformed_config_names_the_file_the_key_and_the_line() {
    let env = Env::new();
    let path = env.write_config("machine = \"a\"\n\n[route]\ninline_mux = \"1KiB\"\n");
    let mut c = env.handoff("a");
    c.args(["send", "hi"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    let err = o.err();
    assert!(err.contains(&path.display().to_string()) && err.contains("line 4") && err.contains("inline_mux"), "{err}");
    assert!(!err.contains("panicked"));
    env.write_config("[route]\ndroplet_max = \"huge\"\n");
    let mut c = env.handoff("a");
    c.args(["sync"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("line 2") && o.err().contains("droplet_max"), "{}", o.err());
}

#[test]
fn a_world_readable_env_file_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let p = env.write_secret_file("home/.secrets/claude-bus.env", "BUS_URL=http://127.0.0.1:9\nBUS_PASS=x\n");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = env.handoff("a");
    c.args(["send", "hi"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("chmod 600"), "{}", o.err());
}

#[test]
fn dry_run_prints_the_plan_and_sends_nothing() {
    let env = Env::new();
    let f = env.path().join("shot.png");
    std::fs::write(&f, vec![7u8; 2048]).unwrap();
    let mut c = env.handoff("a");
    c.args(["send", "--dry-run", "--json", "--to", "b", "see this", "--file"]).arg(&f);
    let o = run(c);
    o.ok();
    let plan = &o.json()["plan"];
    assert_eq!(plan["payloads"][0]["channels"][0], "local");
    assert_eq!(plan["bus"]["kind"], "pointer");
    let mut c = env.handoff("b");
    c.args(["sync", "--json"]);
    let o = run(c);
    o.ok();
    assert_eq!(o.json()["sync"]["messages"].as_array().unwrap().len(), 0, "a dry run sends nothing");
}

#[test]
fn every_command_has_an_example_in_its_help_and_bad_flags_exit_2() {
    for cmd in [&["send"][..], &["sync"], &["fetch"], &["flush"], &["doctor"], &["bus", "serve"], &["bus", "import"]] {
        let mut c = Command::new(handoff_bin());
        c.args(cmd).arg("--help");
        let o = run(c);
        o.ok();
        assert!(o.out().contains("Example"), "{cmd:?} --help has no example");
    }
    let mut c = Command::new(handoff_bin());
    c.args(["send", "--no-such-flag"]);
    assert_eq!(run(c).code(), 2);
}

#[test]
fn long_text_becomes_a_document_and_a_missing_channel_is_named() {
    let env = Env::new();
    let mut c = env.handoff("a");
    c.args(["send", "--dry-run", "--via", "drive", "x"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("--via drive") && o.err().contains("not configured"), "{}", o.err());
}

#[test]
fn sync_as_a_claude_hook_stays_within_the_limit_and_names_the_overflow_file() {
    let env = Env::new();
    for i in 0..30 {
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", &format!("message {i}: {}", "lorem ipsum ".repeat(60))]);
        run(c).ok();
    }
    let mut c = env.handoff("b");
    c.args(["sync", "--format", "claude-hook"]);
    let o = run(c);
    o.ok();
    let v = o.json();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
    let ctx = v["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert!(ctx.chars().count() <= 10_000, "{}", ctx.chars().count());
    assert!(ctx.contains("message 29:"), "newest first");
    let file = ctx.rsplit("full digest is in ").next().unwrap().split(" — ").next().unwrap();
    let full = std::fs::read_to_string(file).unwrap();
    assert!(full.contains("message 0:") && full.contains("message 29:"), "the overflow file holds everything");
}

#[test]
fn two_processes_sharing_the_embedded_store_lose_nothing() {
    let env = Env::new();
    let senders: Vec<_> = ["a", "c"]
        .into_iter()
        .map(|m| {
            let mut cmd = Command::new("bash");
            let script = format!(
                "for i in $(seq 1 15); do \"$HANDOFF\" --machine {m} send --to b \"{m} $i\" >/dev/null || exit 1; done"
            );
            cmd.args(["-c", &script]);
            env.apply(&mut cmd);
            cmd.env("HANDOFF", handoff_bin());
            cmd.spawn().unwrap()
        })
        .collect();
    // b syncs while they send
    let mut seen = Vec::new();
    let collect = |seen: &mut Vec<String>| {
        let mut c = env.handoff("b");
        c.args(["sync", "--json"]);
        let o = run(c);
        o.ok();
        for m in o.json()["sync"]["messages"].as_array().unwrap() {
            seen.push(m["body"].as_str().unwrap().to_string());
        }
    };
    collect(&mut seen);
    for mut s in senders {
        assert!(s.wait().unwrap().success());
    }
    collect(&mut seen);
    let mut want: Vec<String> = ["a", "c"].iter().flat_map(|m| (1..=15).map(move |i| format!("{m} {i}"))).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want, "every message exactly once");
}
