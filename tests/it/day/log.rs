//! `handoff log`: what this machine sent and received, from the local store, filtered.

use crate::support::{Env, OutputExt, run};
use serde_json::Value;

fn send(env: &Env, from: &str, args: &[&str]) {
    let mut c = env.handoff(from);
    c.arg("send").args(args);
    run(c).ok();
}

fn log(env: &Env, machine: &str, args: &[&str]) -> Vec<Value> {
    let mut c = env.handoff(machine);
    c.args(["log", "--json"]).args(args);
    let o = run(c);
    o.ok();
    o.json()["entries"].as_array().unwrap().clone()
}

fn summaries(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| format!("{} {}", e["direction"].as_str().unwrap(), e["summary"].as_str().unwrap())).collect()
}

#[test]
fn history_of_sent_and_received_filtered_by_machine_channel_and_time() {
    let env = Env::new();
    let file = env.path().join("trace.json");
    std::fs::write(&file, "{\"trace\": true}").unwrap();
    send(&env, "laptop", &["--to", "desk", "first: the parser is done"]);
    send(&env, "laptop", &["--to", "server", "second: deploy when green"]);
    send(&env, "laptop", &["--to", "desk", "--file", file.to_str().unwrap(), "third: the crash trace"]);
    send(&env, "desk", &["--to", "laptop", "reply: thanks, on it"]);
    let mut c = env.handoff("laptop");
    c.arg("sync");
    run(c).ok();

    let all = log(&env, "laptop", &[]);
    assert_eq!(
        summaries(&all),
        [
            "sent first: the parser is done",
            "sent second: deploy when green",
            "sent third: the crash trace",
            "received reply: thanks, on it"
        ]
    );
    assert_eq!(all[0]["to"], "desk");
    assert_eq!(all[0]["channels"], serde_json::json!(["bus"]));
    assert_eq!(all[0]["status"], "delivered");
    assert!(!all[0]["message_ids"].as_array().unwrap().is_empty());
    assert_eq!(all[3]["from"], "desk");

    assert_eq!(summaries(&log(&env, "laptop", &["--with", "desk"])).len(), 3, "two sent to desk, one from desk");
    assert_eq!(summaries(&log(&env, "laptop", &["--with", "server"])), ["sent second: deploy when green"]);
    assert_eq!(
        summaries(&log(&env, "laptop", &["--channel", "local"])),
        ["sent third: the crash trace"],
        "the file went to the local payload store"
    );
    assert_eq!(summaries(&log(&env, "laptop", &["--show", "received"])), ["received reply: thanks, on it"]);
    assert_eq!(log(&env, "laptop", &["--since", "1h"]).len(), 4);
    assert_eq!(log(&env, "laptop", &["--since", "2099-01-01T00:00:00Z"]).len(), 0);
    assert_eq!(summaries(&log(&env, "laptop", &["--limit", "1"])), ["received reply: thanks, on it"], "the newest");
    // the other machine's view is its own
    assert_eq!(summaries(&log(&env, "desk", &["--show", "sent"])), ["sent reply: thanks, on it"]);

    let mut c = env.handoff("laptop");
    c.args(["log", "--with", "desk"]);
    let o = run(c);
    o.ok();
    let text = o.out();
    assert!(text.contains("→ desk") && text.contains("← desk") && text.contains("first: the parser is done"), "{text}");

    let mut c = env.handoff("laptop");
    c.args(["log", "--since", "yesterday-ish"]);
    let o = run(c);
    assert_eq!(o.code(), 2, "a bad --since is a usage error");
    assert!(o.err().contains("--since") && o.err().contains("2d"), "{}", o.err());
}
