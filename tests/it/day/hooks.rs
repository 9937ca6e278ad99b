//! `handoff hooks install|uninstall` on real settings files, and the installed commands run the way Claude
//! Code runs them (`sh -c COMMAND`).

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, handoff_bin, run};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// A project settings file as people have them: other hooks on the same events, other keys.
const ORIGINAL: &str = r#"{
  "permissions": { "allow": ["Bash(npm test)"], "deny": [] },
  "hooks": {
    "SessionStart": [
      { "matcher": "startup", "hooks": [ { "type": "command", "command": "cat ~/notes/today.md" } ] }
    ],
    "PreToolUse": [
      { "matcher": "Bash", "hooks": [ { "type": "command", "command": "~/bin/guard.sh", "timeout": 5 } ] }
    ],
    "SessionEnd": [
      { "hooks": [ { "type": "command", "command": "echo bye >> /tmp/sessions.log" } ] }
    ]
  },
  "env": { "FOO": "1" },
  "model": "opus"
}
"#;

fn hooks(env: &Env, args: &[&str]) -> std::process::Output {
    let mut c = env.handoff("dev");
    c.arg("hooks").args(args);
    run(c)
}

fn commands(v: &Value, event: &str) -> Vec<String> {
    v["hooks"][event]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h["command"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn install_keeps_other_hooks_twice_changes_nothing_and_uninstall_restores_the_original() {
    let env = Env::new();
    let project = env.path().join("proj");
    let settings = project.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, ORIGINAL).unwrap();
    let dir = project.display().to_string();

    let o = hooks(&env, &["install", "--project", "--dir", &dir, "--bin", "handoff", "--json"]);
    o.ok();
    assert_eq!(o.json()["changed"], true);
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(commands(&after, "SessionStart"), ["cat ~/notes/today.md", "handoff sync --format claude-hook"]);
    assert_eq!(commands(&after, "SessionEnd"), ["echo bye >> /tmp/sessions.log", "handoff flush --background"]);
    assert_eq!(commands(&after, "PreToolUse"), ["~/bin/guard.sh"]);
    let orig: Value = serde_json::from_str(ORIGINAL).unwrap();
    for k in ["permissions", "env", "model"] {
        assert_eq!(after[k], orig[k], "{k} untouched");
    }
    let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["permissions", "hooks", "env", "model"], "key order kept");

    // twice in a row: not a byte changes
    let bytes = std::fs::read(&settings).unwrap();
    let o = hooks(&env, &["install", "--project", "--dir", &dir, "--bin", "handoff"]);
    o.ok();
    assert!(o.out().contains("nothing changed"), "{}", o.out());
    assert!(o.out().contains("CLAUDE.md"), "the install names the CLAUDE.md fallback line: {}", o.out());
    assert_eq!(std::fs::read(&settings).unwrap(), bytes);

    // uninstall: the original document again, other hooks intact
    let o = hooks(&env, &["uninstall", "--project", "--dir", &dir, "--json"]);
    o.ok();
    assert_eq!(o.json()["removed"], 2);
    let back: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(back, orig);
    assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&orig).unwrap(), "same key order");
    let o = hooks(&env, &["uninstall", "--project", "--dir", &dir]);
    o.ok();
    assert!(o.out().contains("no handoff hooks"), "{}", o.out());
}

#[test]
fn user_scope_creates_the_file_and_broken_settings_are_left_alone() {
    let env = Env::new();
    let o = hooks(&env, &["install", "--bin", "/opt/handoff/bin/handoff"]);
    o.ok();
    let path = env.home().join(".claude/settings.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(commands(&v, "SessionStart"), ["/opt/handoff/bin/handoff sync --format claude-hook"]);
    // a moved binary replaces the command instead of adding a second hook
    hooks(&env, &["install", "--user", "--bin", "handoff"]).ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(commands(&v, "SessionStart"), ["handoff sync --format claude-hook"]);
    assert_eq!(commands(&v, "SessionEnd"), ["handoff flush --background"]);

    std::fs::write(&path, "{ \"hooks\": { oops").unwrap();
    let o = hooks(&env, &["install"]);
    assert_eq!(o.code(), 78, "{}", o.err());
    assert!(o.err().contains(&path.display().to_string()) && o.err().contains("not valid JSON"), "{}", o.err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ \"hooks\": { oops", "nothing written");
    std::fs::write(&path, "{ \"hooks\": [] }").unwrap();
    let o = hooks(&env, &["install"]);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("\"hooks\" is not an object"), "{}", o.err());
}

/// Runs a hook command the way Claude Code does: through the shell, hook input JSON on stdin.
fn run_hook(env: &Env, command: &str, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    env.apply(&mut c);
    c.env("HANDOFF_MACHINE", "laptop");
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_installed_hooks_inject_the_digest_and_flush_within_the_session_end_budget() {
    let mut bus = BusServer::start();
    let mut env = Env::new();
    bus.write_env_file(&env);
    env.var(
        "PATH",
        format!("{}:{}", handoff_bin().parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()),
    );
    hooks(&env, &["install", "--project", "--dir", &env.path().display().to_string()]).ok();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join(".claude/settings.json")).unwrap()).unwrap();
    let start = commands(&v, "SessionStart").pop().unwrap();
    let end = commands(&v, "SessionEnd").pop().unwrap();
    assert_eq!(
        start,
        format!("{} sync --format claude-hook", handoff_bin().canonicalize().unwrap().display()),
        "the hooks run the binary by its absolute path, whatever PATH holds"
    );

    // another machine left a message: the SessionStart hook injects it
    let mut c = env.handoff("desk");
    c.args(["send", "--to", "laptop", "the migration is half done; run step 3 next"]);
    run(c).ok();
    let o = run_hook(&env, &start, r#"{"hook_event_name":"SessionStart","source":"startup","session_id":"s1"}"#);
    o.ok();
    let out: Value = o.json();
    assert_eq!(out["hookSpecificOutput"]["hookEventName"], "SessionStart");
    let ctx = out["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert!(ctx.contains("run step 3 next") && ctx.chars().count() <= 10_000, "{ctx}");

    // the bus goes down: a send is queued in the outbox
    bus.kill();
    let mut c = env.handoff("laptop");
    c.args(["send", "--to", "desk", "recap: step 3 done"]);
    assert_eq!(run(c).code(), 75);
    bus.restart();

    // SessionEnd: returns well inside Claude Code's ~1.5 s, the detached flush delivers
    let t = Instant::now();
    let o = run_hook(&env, &end, r#"{"hook_event_name":"SessionEnd","reason":"prompt_input_exit"}"#);
    let took = t.elapsed();
    o.ok();
    assert!(took < Duration::from_millis(1500), "SessionEnd hook took {took:?}");
    assert!(o.out().contains("in the background"), "{}", o.out());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = bus.get("/messages?to=desk").json::<Value>().unwrap();
        let bodies: Vec<&str> =
            msgs["messages"].as_array().unwrap().iter().filter_map(|m| m["body"].as_str()).collect();
        if bodies.contains(&"recap: step 3 done") {
            assert_eq!(bodies.iter().filter(|b| **b == "recap: step 3 done").count(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background flush never delivered; log:\n{}",
            std::fs::read_to_string(env.path().join("data/handoff/logs/flush.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // once the background flush has finished, the hook has nothing to do and says so
    loop {
        let o = run_hook(&env, &end, "{}");
        o.ok();
        if o.out().contains("nothing to deliver") {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox never emptied: {}", o.out());
        std::thread::sleep(Duration::from_millis(100));
    }
}
