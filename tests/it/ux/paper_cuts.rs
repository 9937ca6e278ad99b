//! The small things: fetch's one default place and identical files, hooks by absolute path and a clean
//! uninstall, help layout and short flags, display of times, broadcasts and urgency, quiet logs, and every
//! example in every help page run for real.

use crate::support::{Env, OutputExt, handoff_bin, run};
use std::process::Command;

fn handoff(env: &Env, machine: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.handoff(machine);
    c.args(args);
    run(c)
}

#[test]
fn fetch_and_sync_fetch_share_one_place_and_an_identical_file_is_success() {
    let env = Env::new();
    let f = env.path().join("trace.txt");
    std::fs::write(&f, "the crash\n").unwrap();
    handoff(&env, "desk", &["send", "-t", "laptop", "-f", f.to_str().unwrap(), "see trace"]).ok();
    let o = handoff(&env, "laptop", &["sync", "--fetch"]);
    o.ok();
    assert!(!o.out().contains("→ fetch:"), "what was fetched is not offered again:\n{}", o.out());
    let sync = handoff(&env, "laptop", &["log", "--show", "received", "--json"]).json();
    let id = sync["entries"][0]["id"].as_str().unwrap().to_string();
    let place = env.path().join("data/handoff/inbox").join(&id).join("trace.txt");
    assert_eq!(std::fs::read_to_string(&place).unwrap(), "the crash\n", "sync --fetch wrote to the default place");
    // fetch by id: same default place, the identical file already there is success
    let o = handoff(&env, "laptop", &["fetch", &id, "--json"]);
    assert_eq!(o.code(), 0, "{}", o.err());
    assert_eq!(o.json()["fetched"][0]["path"], place.to_str().unwrap());
    // other content in the way is refused, untouched
    std::fs::write(&place, "mine\n").unwrap();
    let o = handoff(&env, "laptop", &["fetch", &id]);
    assert_eq!(o.code(), 65, "{}", o.err());
    assert!(o.err().contains("--force"), "{}", o.err());
    assert_eq!(std::fs::read_to_string(&place).unwrap(), "mine\n");
    // show says it is there
    std::fs::write(&place, "the crash\n").unwrap();
    let shown = handoff(&env, "laptop", &["show", &id, "--json"]).json();
    assert_eq!(shown["items"][0]["fetched"], place.to_str().unwrap());
}

#[test]
fn hooks_run_the_binary_by_absolute_path_and_uninstall_removes_the_file_it_created() {
    let env = Env::new();
    let proj = env.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let dir = proj.to_str().unwrap();
    let o = handoff(&env, "a", &["hooks", "install", "--project", "--dir", dir, "--json"]);
    let v = o.json();
    let cmd = v["hooks"][0]["commands"][0].as_str().unwrap();
    let bin = handoff_bin().canonicalize().unwrap();
    assert_eq!(cmd, format!("{} sync --format claude-hook", bin.display()));
    let o = handoff(&env, "a", &["hooks", "uninstall", "--project", "--dir", dir, "--json"]);
    assert_eq!(o.json()["deleted"], true);
    assert!(!proj.join(".claude/settings.json").exists() && !proj.join(".claude").exists(), "nothing left behind");
    // a settings file with other content keeps it
    std::fs::create_dir_all(proj.join(".claude")).unwrap();
    std::fs::write(proj.join(".claude/settings.json"), "{\"model\":\"x\"}").unwrap();
    handoff(&env, "a", &["hooks", "install", "--project", "--dir", dir]).ok();
    handoff(&env, "a", &["hooks", "uninstall", "--project", "--dir", dir]).ok();
    let left: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proj.join(".claude/settings.json")).unwrap()).unwrap();
    assert_eq!(left, serde_json::json!({ "model": "x" }));
}

#[test]
fn help_puts_global_flags_apart_shows_no_empty_env_values_and_takes_short_flags() {
    let mut c = Command::new(handoff_bin());
    c.args(["send", "--help"]).env("HANDOFF_CONFIG", "").env_remove("HANDOFF_MACHINE");
    let help = run(c).ok().out();
    let global = help.find("Global options:").expect("a Global options heading");
    for flag in ["--config", "--machine", "--json", "--quiet", "--verbose"] {
        assert!(help[global..].contains(flag), "{flag} under Global options:\n{help}");
        assert!(!help[..global].contains(flag), "{flag} not among send's own options:\n{help}");
    }
    assert!(!help.contains("=]"), "no empty env value shown:\n{help}");
    for short in ["-t, --to", "-f, --file", "-j, --json", "-q, --quiet"] {
        assert!(help.contains(short), "{short}:\n{help}");
    }
    let mut c = Command::new(handoff_bin());
    c.args(["reply", "--help"]);
    assert!(run(c).ok().out().contains("-m, --message"));
    let mut c = Command::new(handoff_bin());
    c.args(["log", "--help"]);
    let help = run(c).ok().out();
    assert!(!help.contains("--sent"), "log's help shows no flag that does not exist:\n{help}");
}

#[test]
fn display_shows_local_time_with_offset_any_urgent_and_quiet_logs() {
    let mut env = Env::new();
    env.var("TZ", "Asia/Kolkata");
    let o = handoff(&env, "desk", &["send", "-t", "any", "for everyone"]);
    o.ok();
    assert!(!o.err().contains("WARN") && !o.err().contains("INFO"), "no logs without -v: {}", o.err());
    handoff(&env, "laptop", &["sync"]).ok();
    let log = handoff(&env, "laptop", &["log"]).ok().out();
    assert!(log.contains("+05:30"), "local time with its offset: {log}");
    let log = handoff(&env, "desk", &["log"]).ok().out();
    assert!(log.contains("→ any"), "a broadcast is shown as any: {log}");
    // long text becomes a document titled by its first line
    let long = format!("Migration plan for step 3\n{}", "details ".repeat(8000));
    let o = handoff(&env, "desk", &["send", "-t", "laptop", "--dry-run", &long]);
    assert!(o.ok().out().contains("Migration plan for step 3"), "{}", o.out());
    // -q: nothing for people on stdout, JSON still printed
    let o = handoff(&env, "desk", &["send", "-q", "-t", "laptop", "quiet one"]);
    assert_eq!(o.ok().out(), "");
    let o = handoff(&env, "desk", &["send", "-q", "-j", "-t", "laptop", "quiet json"]);
    assert_eq!(o.json()["ok"], true);
}

/// Every `handoff ...` line under "Example" in every help page.
fn help_examples() -> Vec<String> {
    let mut pages = vec![vec![]];
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = pages.pop() {
        let mut c = Command::new(handoff_bin());
        c.args(&path).arg("--help");
        let help = run(c).ok().out();
        let mut in_cmds = false;
        for l in help.lines() {
            if l.starts_with("Commands:") {
                in_cmds = true;
                continue;
            }
            if in_cmds {
                match l.strip_prefix("  ").and_then(|r| r.split_whitespace().next()) {
                    Some(sub) if sub != "help" && !l.starts_with("   ") => {
                        let mut p = path.clone();
                        p.push(sub.to_string());
                        pages.push(p);
                    }
                    _ if l.trim().is_empty() => in_cmds = false,
                    _ => {}
                }
            }
            let t = l.trim();
            // the usage lines (`Usage: handoff watch [OPTIONS]` and its `handoff watch <COMMAND>` continuation)
            // are syntax, not examples
            if l.starts_with("Usage:") || (l.starts_with("       ") && t.starts_with("handoff ")) {
                continue;
            }
            if (t.starts_with("handoff ")
                || t.contains("| handoff ")
                || t.starts_with("BUS_PASS=")
                || t.starts_with("PGPASSWORD="))
                && seen.insert(t.to_string())
            {
                out.push(t.split("   #").next().unwrap().trim().to_string());
            }
        }
    }
    out
}

#[test]
fn every_example_in_every_help_page_runs() {
    let examples = help_examples();
    assert!(examples.len() > 30, "found the examples: {examples:?}");
    let env = Env::new();
    // what the examples name exists in their working directory
    std::fs::write(env.path().join("notes.md"), "# Session recap\nall done\n").unwrap();
    std::fs::write(env.path().join("screenshot.png"), [0u8; 64]).unwrap();
    std::fs::write(env.path().join("trace.json"), "{}").unwrap();
    std::fs::write(env.path().join("big.iso"), [1u8; 1024]).unwrap();
    std::fs::write(env.path().join("bus.jsonl"), "").unwrap();
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.args(args).current_dir(env.path());
        env.apply(&mut c);
        run(c).ok();
    };
    git(&["init", "-q"]);
    git(&["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"]);
    std::fs::write(env.path().join("tracked.txt"), "v1\n").unwrap();
    git(&["add", "tracked.txt"]);
    std::fs::write(env.path().join("tracked.txt"), "v2\n").unwrap();
    let bin_dir = handoff_bin().parent().unwrap().to_path_buf();
    let tmp = env.path().display().to_string();
    env.write_secret_file("serve.env", "BUS_PASS=example-pass\n");
    for ex in &examples {
        // run where nothing outside the test's own directory can be touched
        let mut line = ex
            .replace("\"${fpath[1]}", &format!("\"{tmp}"))
            .replace("/var/lib/", &format!("{tmp}/var/lib/"))
            .replace("/opt/", &format!("{tmp}/opt/"));
        // a daemon example (`watch` without install/uninstall, `mcp` on a stdin that stays open) runs until
        // stopped: it must start and still be running after 3 s (timeout's 124), not fail on its command line
        let daemon = (ex.starts_with("handoff watch") && !ex.contains(" install") && !ex.contains(" uninstall"))
            || ex.starts_with("handoff mcp");
        if daemon {
            // stdin held open (and empty) for 4 s; timeout signals handoff itself, so nothing outlives the line
            line = format!("sleep 4 | timeout 3 {line}");
        }
        // a server example runs until stopped: it must start and listen (on a free port)
        let serve = ex.contains("bus serve");
        if serve {
            let port = crate::support::free_port().to_string();
            line = line.replace("~/.secrets/claude-bus.env", &format!("{tmp}/serve.env")).replace("8765", &port);
            if !line.contains("--listen") {
                line.push_str(&format!(" --listen 127.0.0.1:{port}"));
            }
            line = format!("timeout 3 bash -c '{line}'");
        }
        let mut c = Command::new("bash");
        c.args(["-c", &line]);
        env.apply(&mut c);
        c.env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("HANDOFF_MACHINE", "laptop")
            .env("PROFILE", env.path().join("profile.ps1"));
        let o = run(c);
        let code = o.code();
        assert!(!o.err().contains("panicked"), "{ex}: {}", o.err());
        assert!(
            !o.err().contains("unexpected argument") && !o.err().contains("Usage:"),
            "{ex} is not a valid command line:\n{}",
            o.err()
        );
        if serve {
            assert!(o.out().contains("listening"), "{ex}: {}\n{}", o.out(), o.err());
        } else if daemon {
            assert_eq!(code, 124, "{ex} should still be running after 3 s:\n{}", o.err());
        } else {
            assert_ne!(code, 2, "{ex}: usage error:\n{}", o.err());
        }
    }
}

#[test]
fn short_text_sent_as_a_document_is_named_by_its_first_line() {
    let env = Env::new();
    // --via a document channel makes even a short text a document: its first line names it, as a long
    // text's does (before, it was "handoff")
    let o = handoff(&env, "desk", &["send", "-t", "laptop", "--via", "local", "# Parser notes for Tuesday\nthe rest"]);
    assert!(o.ok().out().contains("Parser_notes_for_Tuesday.md"), "{}", o.out());
    let sync = handoff(&env, "laptop", &["sync"]).ok().out();
    assert!(sync.contains("via local: Parser notes for Tuesday.md"), "{sync}");
    // a title given is kept; a short text for the bus gets none
    let o = handoff(&env, "desk", &["send", "-t", "laptop", "--via", "local", "--title", "Mine", "body line"]);
    assert!(o.ok().out().contains("-Mine.md"), "{}", o.out());
    let o = handoff(&env, "desk", &["send", "-j", "-t", "laptop", "just a note"]);
    assert!(o.json()["receipt"]["steps"].as_array().unwrap().iter().all(|s| s["step"] != "payload"), "{}", o.out());
}
