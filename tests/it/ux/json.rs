//! `--json` on every command: one compact line with `ok`, `exit_code` and `schema`, valid against the
//! JSON Schema in `docs/schema/` that `schema` names, and documented in docs/json.md.

use crate::support::schema::{check, schema_files};
use crate::support::{Env, OutputExt, repo_root, run};
use std::collections::BTreeSet;

/// Runs `handoff ARGS --json` as `machine` and returns its one JSON document, after checking the line.
pub fn json_line(env: &Env, machine: &str, args: &[&str]) -> serde_json::Value {
    let mut c = env.handoff(machine);
    c.args(args).arg("--json");
    let o = run(c);
    let out = o.out();
    assert!(
        out.ends_with('\n') && out.trim_end().lines().count() == 1,
        "{args:?}: --json prints exactly one compact line:\n{out}\nstderr: {}",
        o.err()
    );
    let v = o.json();
    assert_eq!(v["exit_code"].as_i64(), Some(o.code() as i64), "{args:?}: exit_code is the process's: {v}");
    assert_eq!(v["ok"].as_bool(), Some(o.code() == 0), "{args:?}: ok means exit 0: {v}");
    check(&v);
    v
}

#[test]
fn every_command_prints_one_line_that_matches_its_documented_schema() {
    let env = Env::new();
    let mut seen = BTreeSet::new();
    let mut note = |v: &serde_json::Value| {
        seen.insert(v["schema"].as_str().unwrap().to_string());
    };
    let file = env.path().join("trace.txt");
    std::fs::write(&file, "the crash\n").unwrap();
    let f = file.to_str().unwrap();
    note(&json_line(&env, "desk", &["send", "--to", "laptop", "tests pass"]));
    note(&json_line(&env, "desk", &["send", "--to", "laptop", "--file", f, "the trace"]));
    note(&json_line(&env, "desk", &["send", "--dry-run", "--to", "laptop", "x"]));
    let sync = json_line(&env, "laptop", &["sync"]);
    note(&sync);
    let id = sync["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("pointer").is_some())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .expect("the pointer arrived");
    let out = env.path().join("in");
    note(&json_line(&env, "laptop", &["fetch", &id, "--out", out.to_str().unwrap()]));
    note(&json_line(&env, "laptop", &["flush"]));
    note(&json_line(&env, "laptop", &["flush", "--background"]));
    note(&json_line(&env, "laptop", &["doctor"]));
    note(&json_line(&env, "laptop", &["log"]));
    let proj = env.path().join("proj");
    note(&json_line(&env, "laptop", &["hooks", "install", "--project", "--dir", proj.to_str().unwrap()]));
    let cfg = env.path().join("init.toml");
    note(&json_line(&env, "laptop", &["init", "--yes", "--no-bus", "--out", cfg.to_str().unwrap()]));
    note(&json_line(&env, "laptop", &["keys"]));
    note(&json_line(&env, "laptop", &["keys", "list"]));
    let jsonl = env.path().join("bus.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"from\":\"a\",\"to\":\"b\",\"body\":\"hi\",\"tags\":[]}\n",
    )
    .unwrap();
    let (d1, d2) = (env.path().join("bus1"), env.path().join("bus2"));
    note(&json_line(&env, "laptop", &["bus", "import", jsonl.to_str().unwrap(), "--data", d1.to_str().unwrap()]));
    let (from, to) = (format!("sqlite:{}", d1.display()), format!("sqlite:{}", d2.display()));
    note(&json_line(&env, "laptop", &["bus", "migrate", "--from", &from, "--to", &to]));
    // failures: a usage error clap finds, a usage error handoff finds, a config error
    for args in [&["send", "--no-such-flag"][..], &["log", "--since", "yesterday"], &["send", "--via", "drive", "x"]] {
        let v = json_line(&env, "laptop", args);
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        note(&v);
    }
    for extra in crate::ux::json::extra_commands(&env) {
        note(&extra);
    }
    // droplet prune's output is checked where a droplet runs (tests/it/droplet.rs reads it with .json())
    seen.insert("handoff.droplet_prune.v1".into());
    let files: BTreeSet<String> = schema_files().into_iter().map(|(n, _)| n).collect();
    assert_eq!(seen, files, "every schema in docs/schema is produced by a command, and every output has one");
    let doc = std::fs::read_to_string(repo_root().join("docs/json.md")).unwrap();
    for name in &files {
        assert!(doc.contains(name.as_str()), "docs/json.md does not document {name}");
    }
}

/// The `--json` documents of the commands added in this issue (status, show, outbox, reply), in the
/// embedded default where `desk` already sent `laptop` a message that `laptop` synced.
pub fn extra_commands(env: &Env) -> Vec<serde_json::Value> {
    let log = json_line(env, "laptop", &["log", "--show", "received"]);
    let id = log["entries"][0]["id"].as_str().unwrap().to_string();
    vec![
        json_line(env, "laptop", &["status"]),
        json_line(env, "laptop", &["show", &id]),
        json_line(env, "laptop", &["reply", &id, "thanks"]),
        json_line(env, "laptop", &["outbox", "list"]),
    ]
}
