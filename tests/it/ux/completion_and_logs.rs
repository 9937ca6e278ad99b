//! Dynamic shell completion (`source <(COMPLETE=bash handoff)`) completes machine names and message ids
//! from this machine's own state, in a real bash; and logs appear only with `-v` or `RUST_LOG`: without
//! them a failure is said once, by the command, with no log line.

use crate::support::{Env, OutputExt, free_port, handoff_bin, run};
use std::process::Command;

/// The words a real bash completes for `line` (the word under the cursor is the last of `words`), with
/// handoff's dynamic completion loaded.
fn complete(env: &Env, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <(COMPLETE=bash \"$H\"); COMP_WORDS=({}); COMP_CWORD={}; COMP_TYPE=9; \
         _clap_complete_handoff handoff '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2]
    );
    let mut c = Command::new("bash");
    c.args(["--norc", "-c", &script]);
    env.apply(&mut c);
    c.env("H", handoff_bin()).env("HANDOFF_MACHINE", "laptop");
    let o = run(c);
    o.ok();
    o.out().lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_machine_names_and_message_ids_from_local_state() {
    let env = Env::new();
    let mut c = env.handoff("mac-studio");
    c.args(["send", "--to", "laptop", "tests pass"]);
    run(c).ok();
    let mut c = env.handoff("laptop");
    c.args(["sync", "--json"]);
    let id = run(c).json()["sync"]["messages"][0]["id"].as_str().unwrap().to_string();

    // machine names: the known ones and `any`, narrowed by what is typed
    let to = complete(&env, &["handoff", "send", "--to", ""]);
    assert!(to.contains(&"mac-studio".to_string()) && to.contains(&"any".to_string()), "{to:?}");
    assert_eq!(complete(&env, &["handoff", "send", "--to", "mac"]), ["mac-studio"]);
    assert_eq!(complete(&env, &["handoff", "log", "--with", "mac-"]), ["mac-studio"]);
    // message ids: what this machine received
    assert!(complete(&env, &["handoff", "show", ""]).contains(&id), "show completes the id {id}");
    assert!(complete(&env, &["handoff", "reply", "-m", ""]).contains(&id), "reply -m completes the id {id}");
    assert!(complete(&env, &["handoff", "reply", ""]).contains(&id), "reply completes the positional id {id}");
    // a machine that knows nothing completes only `any`, and nothing for ids (no error, no noise)
    let fresh = Env::new();
    let to = complete(&fresh, &["handoff", "send", "--to", ""]);
    assert!(to.contains(&"any".to_string()) && !to.contains(&"mac-studio".to_string()), "{to:?}");
    assert!(!complete(&fresh, &["handoff", "show", ""]).iter().any(|w| w.chars().all(|c| c.is_ascii_digit())));
}

/// An env whose bus is a port nothing listens on.
fn down_bus() -> Env {
    let env = Env::new();
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER=claude\nBUS_PASS=pw\nBUS_URL=http://127.0.0.1:{}\n", free_port()),
    );
    env
}

/// A log line of tracing's format: `<time>  LEVEL target: ...`.
fn log_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "].iter().any(|lv| l.contains(lv)))
        .filter(|l| l.contains("handoff"))
        .map(str::to_string)
        .collect()
}

#[test]
fn logs_only_with_verbose_or_rust_log_and_one_line_per_failure_without() {
    let env = down_bus();
    let send = |extra: &[&str], rust_log: Option<&str>| {
        let mut c = env.handoff("desk");
        c.args(extra).args(["send", "--to", "laptop", "while the bus is down"]);
        if let Some(v) = rust_log {
            c.env("RUST_LOG", v);
        }
        let o = run(c);
        assert_eq!(o.code(), 75, "{}", o.err());
        o
    };
    // quiet: no log line; the failure said once, by the command
    let o = send(&[], None);
    let all = format!("{}{}", o.out(), o.err());
    assert!(log_lines(&o.err()).is_empty(), "no log lines without -v:\n{}", o.err());
    assert_eq!(all.matches("cannot reach the bus").count(), 1, "one line per failure:\n{all}");
    // -v: the executor's log lines, with their level and target
    let o = send(&["-v"], None);
    let logs = log_lines(&o.err());
    assert!(logs.iter().any(|l| l.contains("WARN") && l.contains("handoff::executor")), "{}", o.err());
    assert!(logs.iter().any(|l| l.contains("INFO") && l.contains("delivering")), "{}", o.err());
    // RUST_LOG alone turns them on too, and picks the level
    let o = send(&[], Some("handoff=warn"));
    let logs = log_lines(&o.err());
    assert!(!logs.is_empty() && logs.iter().all(|l| l.contains("WARN")), "{}", o.err());
    let o = send(&[], Some("off"));
    assert!(log_lines(&o.err()).is_empty(), "RUST_LOG=off: {}", o.err());
}
