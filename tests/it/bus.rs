//! The bus end to end: the real `handoff bus serve` binary, the real `handoff` client, curl + jq and
//! Python `requests` scripts as users have them.

use crate::support::bus::{BusServer, PASSWORD, StoreKind, USER};
use crate::support::{Env, OutputExt, run, tool};
use serde_json::{Value, json};
use std::process::Command;

/// An env whose only configuration is the bus env file at its conventional place (no config file).
fn env_for(bus: &BusServer) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    env
}

fn bodies(sync_json: &Value) -> Vec<String> {
    sync_json["sync"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_string()).collect()
}

/// Runs each listed test on both stores: `bus::sqlite::NAME` and `bus::pg::NAME`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(crate::support::bus::StoreKind::Sqlite) } )*
        }
        mod pg {
            $( #[test] fn $name() { super::$name(crate::support::bus::StoreKind::Postgres) } )*
        }
    };
}

on_both_stores!(
    direct_and_broadcast_messages_reach_the_right_machines_once,
    curl_and_jq_scripts_users_already_have_work_unchanged,
    a_python_requests_client_works_unchanged,
    bad_requests_get_clear_statuses_and_the_server_keeps_serving,
    a_retried_post_with_the_same_key_is_stored_once,
    bus_down_send_is_queued_with_exit_75_and_flush_delivers_it_once,
    sigkill_during_concurrent_posts_loses_no_acknowledged_post,
    sigterm_stops_the_server_cleanly,
    bus_import_loads_the_originals_data_file_with_its_ids_and_old_scripts_see_it,
);

fn direct_and_broadcast_messages_reach_the_right_machines_once(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let env = env_for(&bus);
    run({
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", "for b only"]);
        c
    })
    .ok();
    run({
        let mut c = env.handoff("a");
        c.args(["send", "--to", "any", "for everyone"]);
        c
    })
    .ok();
    let sync = |m: &str| {
        let mut c = env.handoff(m);
        c.args(["sync", "--json"]);
        let o = run(c);
        o.ok();
        o.json()
    };
    let b1 = sync("b");
    assert_eq!(bodies(&b1), ["for b only", "for everyone"]);
    assert!(b1["sync"]["bus"].as_str().unwrap().starts_with(&bus.url));
    assert_eq!(bodies(&sync("b")), Vec::<String>::new(), "b's second sync shows nothing new");
    assert_eq!(bodies(&sync("a")), Vec::<String>::new(), "a never receives its own messages");
    assert_eq!(bodies(&sync("c")), ["for everyone"], "c gets only the broadcast");
    // the server recorded b's acks: unread for b is empty, for c (acked too) as well, for d both messages
    let unread = |r: &str| {
        bus.get(&format!("/messages?to={r}&unread_by={r}")).json::<Value>().unwrap()["messages"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(unread("b"), 0);
    assert_eq!(unread("c"), 0);
    assert_eq!(unread("d"), 1);
}

fn curl_and_jq_scripts_users_already_have_work_unchanged(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let env = env_for(&bus);
    let (curl, jq) = (tool("curl"), tool("jq"));
    let script = format!(
        r#"set -euo pipefail
source "$HOME/.secrets/claude-bus.env"
CURL={curl}; JQ={jq}
# post
id=$($CURL -sf -u "$BUS_USER:$BUS_PASS" -H 'Content-Type: application/json' \
  -d '{{"from":"mac","to":"linux","body":"build is green","tags":["ci"]}}' "$BUS_URL/post" | $JQ -r .id)
# unread for me
$CURL -sf -u "$BUS_USER:$BUS_PASS" "$BUS_URL/messages?to=linux&unread_by=linux" | $JQ -r '.messages[].body'
# ack
$CURL -sf -u "$BUS_USER:$BUS_PASS" -H 'Content-Type: application/json' -d '{{"reader":"linux"}}' "$BUS_URL/ack/$id" >/dev/null
echo "after ack: $($CURL -sf -u "$BUS_USER:$BUS_PASS" "$BUS_URL/messages?to=linux&unread_by=linux" | $JQ '.messages | length')"
# health
$CURL -sf -u "$BUS_USER:$BUS_PASS" "$BUS_URL/health" | $JQ -r '"ok=\(.ok) count=\(.count)"'
"#,
        curl = curl.display(),
        jq = jq.display()
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script]);
    env.apply(&mut c);
    let o = run(c);
    o.ok();
    assert_eq!(o.out(), "build is green\nafter ack: 0\nok=true count=1\n");
}

fn a_python_requests_client_works_unchanged(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let env = env_for(&bus);
    let py = tool("python3");
    let venv_py = crate::support::repo_root().join(".test-tools/venv/bin/python");
    let python = if venv_py.exists() { venv_py } else { py };
    let script = r#"
import os, requests
env = dict(l.strip().split("=", 1) for l in open(os.path.expanduser("~/.secrets/claude-bus.env")) if "=" in l)
auth = (env["BUS_USER"], env["BUS_PASS"]); url = env["BUS_URL"]
m = requests.post(f"{url}/post", json={"from": "win", "to": "mac", "body": "hello from python"}, auth=auth).json()
msgs = requests.get(f"{url}/messages", params={"to": "mac", "unread_by": "mac"}, auth=auth).json()["messages"]
assert [x["body"] for x in msgs] == ["hello from python"], msgs
r = requests.post(f"{url}/ack/{m['id']}", json={"reader": "mac"}, auth=auth); r.raise_for_status()
r = requests.post(f"{url}/ack/{m['id']}", json={"reader": "mac"}, auth=auth); r.raise_for_status()
left = requests.get(f"{url}/messages", params={"to": "mac", "unread_by": "mac"}, auth=auth).json()["messages"]
h = requests.get(f"{url}/health", auth=auth).json()
print(len(left), h["ok"], h["count"], m["from"], m["to"], "ts" in m)
"#;
    let mut c = Command::new(python);
    c.args(["-c", script]);
    env.apply(&mut c);
    let o = run(c);
    if o.err().contains("No module named 'requests'") {
        panic!("python requests is missing: run `bash scripts/install-test-deps.sh`");
    }
    o.ok();
    assert_eq!(o.out().trim(), "0 True 1 win mac True");
}

fn bad_requests_get_clear_statuses_and_the_server_keeps_serving(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let client = reqwest::blocking::Client::new();
    let routes: [(&str, &str); 4] = [("GET", "/health"), ("POST", "/post"), ("GET", "/messages"), ("POST", "/ack/1")];
    for (method, path) in routes {
        for auth in [None, Some("wrong"), Some("")] {
            let mut rq = client
                .request(method.parse().unwrap(), format!("{}{path}", bus.url))
                .json(&json!({"from":"a","body":"x","reader":"r"}));
            if let Some(p) = auth {
                rq = rq.basic_auth(USER, Some(p));
            }
            let r = rq.send().unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
            assert!(r.headers().contains_key("www-authenticate"));
        }
    }
    // right password, wrong user
    let r = client.get(format!("{}/health", bus.url)).basic_auth("root", Some(PASSWORD)).send().unwrap();
    assert_eq!(r.status(), 401);
    // 65 KiB body -> 413 with a JSON error
    let r = bus.post_json("/post", &json!({"from": "a", "to": "b", "body": "x".repeat(65 * 1024)}));
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().unwrap()["error"].as_str().unwrap().contains("65536"));
    // exactly 64 KiB is fine
    assert_eq!(bus.post_json("/post", &json!({"from": "a", "to": "b", "body": "x".repeat(64 * 1024)})).status(), 200);
    // malformed JSON and missing fields -> 400 with a JSON error
    let r = client.post(format!("{}/post", bus.url)).basic_auth(USER, Some(PASSWORD)).body("{not json").send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().unwrap()["error"].as_str().unwrap().contains("malformed JSON"));
    let r = bus.post_json("/post", &json!({"to": "b", "body": "no sender"}));
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().unwrap()["error"].as_str().unwrap().contains("from"));
    let r = bus.post_json("/post", &json!({"from": "a", "body": 5}));
    assert_eq!(r.status(), 400);
    let r = bus.post_json("/ack/1", &json!({}));
    assert_eq!(r.status(), 400);
    // ack of an unknown id -> 404
    let r = bus.post_json("/ack/does-not-exist", &json!({"reader": "b"}));
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().unwrap()["error"].is_string());
    // limit=1000 -> at most 500
    let batch: Vec<_> = (0..520).map(|i| json!({"from": "a", "to": "any", "body": format!("m{i}")})).collect();
    for m in &batch {
        assert_eq!(bus.post_json("/post", m).status(), 200);
    }
    let got = bus.get("/messages?limit=1000").json::<Value>().unwrap();
    assert_eq!(got["messages"].as_array().unwrap().len(), 500);
    assert_eq!(bus.get("/messages?limit=abc").status(), 400);
    // still serving, count right (1 of 64 KiB + 520)
    let h = bus.get("/health").json::<Value>().unwrap();
    assert_eq!(h["ok"], true);
    assert_eq!(h["count"], 521);
}

fn a_retried_post_with_the_same_key_is_stored_once(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let client = reqwest::blocking::Client::new();
    let post = || {
        client
            .post(format!("{}/post", bus.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("Idempotency-Key", "job-123-0")
            .json(&json!({"from": "a", "to": "b", "body": "once"}))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()
    };
    let first = post();
    let second = post();
    assert_eq!(first, second, "the retry returns the stored message");
    assert_eq!(bus.get("/health").json::<Value>().unwrap()["count"], 1);
    // string and numeric ids are both accepted by the client side too
    assert!(first["id"].is_number());
}

fn bus_down_send_is_queued_with_exit_75_and_flush_delivers_it_once(kind: StoreKind) {
    let mut bus = BusServer::start_on(kind);
    let env = env_for(&bus);
    bus.kill();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "while the bus was down"]);
    let o = run(c);
    assert_eq!(o.code(), 75, "stdout: {}\nstderr: {}", o.out(), o.err());
    assert!(o.err().contains("queued"), "{}", o.err());
    // still down: flush keeps it and says so
    let mut c = env.handoff("a");
    c.arg("flush");
    assert_eq!(run(c).code(), 75);
    bus.restart();
    let mut c = env.handoff("a");
    c.arg("flush");
    let o = run(c);
    o.ok();
    // a second flush has nothing left
    let mut c = env.handoff("a");
    c.args(["flush", "--json"]);
    let o = run(c);
    o.ok();
    assert_eq!(o.json()["left_in_outbox"], 0);
    let msgs = bus.get("/messages?to=b").json::<Value>().unwrap();
    let bodies: Vec<&str> = msgs["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["while the bus was down"], "delivered exactly once");
}

fn sigkill_during_concurrent_posts_loses_no_acknowledged_post(kind: StoreKind) {
    let mut bus = BusServer::start_on(kind);
    let url = bus.url.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..8 {
        let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let client =
                reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
            for i in 0..10_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let body = format!("t{t}-{i}");
                match client
                    .post(format!("{url}/post"))
                    .basic_auth(USER, Some(PASSWORD))
                    .json(&json!({"from": format!("w{t}"), "to": "any", "body": body}))
                    .send()
                {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().unwrap();
                        acked.lock().unwrap().push((v["id"].to_string(), body));
                    }
                    _ => break,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        assert!(!threads.iter().all(|t| t.is_finished()), "every poster stopped before 300 posts got a 200");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    bus.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    bus.restart();
    let acked = acked.lock().unwrap().clone();
    let mut stored = std::collections::HashMap::new();
    let mut since = String::new();
    loop {
        let page = bus.get(&format!("/messages?limit=500{since}")).json::<Value>().unwrap();
        let ms = page["messages"].as_array().unwrap().clone();
        for m in &ms {
            assert!(
                stored.insert(m["id"].to_string(), m["body"].as_str().unwrap().to_string()).is_none(),
                "ids are unique"
            );
        }
        match ms.last() {
            Some(l) if ms.len() == 500 => since = format!("&since={}", l["id"]),
            _ => break,
        }
    }
    for (id, body) in &acked {
        assert_eq!(stored.get(id), Some(body), "a post that got a 200 is present after SIGKILL");
    }
    assert!(acked.len() >= 300);
}

fn sigterm_stops_the_server_cleanly(kind: StoreKind) {
    let mut bus = BusServer::start_on(kind);
    assert_eq!(bus.post_json("/post", &json!({"from": "a", "body": "x"})).status(), 200);
    assert_eq!(bus.terminate(), Some(0));
}

#[test]
fn the_servers_password_never_comes_from_the_command_line() {
    let env = Env::new();
    let mut c = Command::new(crate::support::handoff_bin());
    env.apply(&mut c);
    c.args(["bus", "serve", "--listen", "127.0.0.1:0", "--data"]).arg(env.path().join("d"));
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("BUS_PASS"), "{}", o.err());
    let mut c = Command::new(crate::support::handoff_bin());
    env.apply(&mut c);
    c.args(["bus", "serve", "--password", "x"]);
    assert_eq!(run(c).code(), 2, "there is no --password flag");
}

fn bus_import_loads_the_originals_data_file_with_its_ids_and_old_scripts_see_it(kind: StoreKind) {
    let mut env = Env::new();
    let data = env.path().join("bus-data");
    // the target: the embedded store in `data`, or a PostgreSQL database (password in PGPASSWORD)
    let pg = (kind == StoreKind::Postgres).then(|| std::sync::Arc::new(crate::support::postgres::PgServer::start()));
    let target: Vec<std::ffi::OsString> = match &pg {
        Some(pg) => {
            env.var("PGPASSWORD", crate::support::postgres::PG_PASSWORD);
            vec!["--store".into(), pg.url().into()]
        }
        None => vec!["--data".into(), data.clone().into()],
    };
    let file = env.path().join("bus.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id": "a1b2c3", "ts": "2026-01-01T00:00:00", "from": "mac", "to": "linux", "body": "hex id", "tags": ["x"], "read_by": ["linux"]}"#,
            "\n",
            r#"{"id": 7, "ts": "2026-01-02T00:00:00", "from": "mac", "to": "any", "body": "numeric id", "tags": [], "priority": "high"}"#,
            "\n",
            "{broken\n",
            "\n",
        ),
    )
    .unwrap();
    let mut c = env.handoff("x");
    c.args(["bus", "import", "--json"]).arg(&file).args(&target);
    let o = run(c);
    assert_eq!(o.code(), 65, "a bad line is reported: {}", o.err());
    let r = o.json();
    assert_eq!((r["imported"].as_u64(), r["acks"].as_u64()), (Some(2), Some(1)));
    assert!(r["bad_lines"][0].as_str().unwrap().starts_with("line 3"));
    // importing again adds nothing
    let mut c = env.handoff("x");
    c.args(["bus", "import", "--json"]).arg(&file).args(&target);
    assert_eq!(run(c).json()["skipped"], 2);
    let bus = match &pg {
        Some(pg) => BusServer::start_replica(pg),
        None => BusServer::start_at(&data, 0),
    };
    let all = bus.get("/messages").json::<Value>().unwrap();
    let ms = all["messages"].as_array().unwrap();
    assert_eq!(ms[0]["id"], "a1b2c3");
    assert_eq!(ms[0]["ts"], "2026-01-01T00:00:00");
    assert_eq!(ms[1]["id"], 7);
    assert_eq!(ms[1]["priority"], "high", "unknown fields are kept");
    // read state came along: linux has read the hex one, so only the broadcast is unread
    let unread = bus.get("/messages?to=linux&unread_by=linux").json::<Value>().unwrap();
    assert_eq!(unread["messages"].as_array().unwrap().len(), 1);
    assert_eq!(bus.get("/messages?since=a1b2c3").json::<Value>().unwrap()["messages"][0]["id"], 7);
    // new posts continue after the imported ids
    let m = bus.post_json("/post", &json!({"from": "a", "body": "new"})).json::<Value>().unwrap();
    assert_eq!(m["id"], 8);
}
