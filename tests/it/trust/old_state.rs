//! A `state.sqlite` written by an earlier version, which stored the bus URL with its `user:password@` (as
//! the instance of each received message and in the `bus-identity:` cursor) and could hold a webhook URL:
//! once handoff opens it, no byte of those secrets is left in the database files, and nothing is lost.

use crate::support::{Env, OutputExt, run};

const PASSWORD: &str = "old-bus-pa55word";
const HOOK_SECRET: &str = "XoldHookSecret42";

#[test]
fn credentials_stored_by_earlier_versions_are_redacted_when_state_is_opened() {
    let env = Env::new();
    let data = env.path().join("data/handoff");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("http://claude:{PASSWORD}@127.0.0.1:9");
    let hook = format!("https://hooks.slack.com/services/T0/B0/{HOOK_SECRET}");
    let msg = |id: &str, body: &str| format!(r#"{{"id":"{id}","from":"a","to":"b","body":"{body}"}}"#);
    {
        let c = rusqlite::Connection::open(data.join("state.sqlite")).unwrap();
        c.execute_batch(
            "CREATE TABLE received (n INTEGER PRIMARY KEY, machine TEXT NOT NULL, bus TEXT NOT NULL, id TEXT NOT NULL,
                message TEXT NOT NULL, received_at TEXT NOT NULL, shown INTEGER NOT NULL DEFAULT 0,
                UNIQUE (machine, bus, id));
             CREATE TABLE cursors (machine TEXT NOT NULL, channel TEXT NOT NULL, cursor TEXT NOT NULL,
                PRIMARY KEY (machine, channel));",
        )
        .unwrap();
        let put = |bus: &str, id: &str, body: &str| {
            c.execute(
                "INSERT INTO received(machine, bus, id, message, received_at) VALUES ('b', ?1, ?2, ?3, '2026-11-01T00:00:00Z')",
                rusqlite::params![bus, id, msg(id, body)],
            )
            .unwrap();
        };
        put(&format!("{url}#instance abc"), "1", "first from the old version");
        put(&format!("{url}#instance abc"), "2", "second from the old version");
        // the first message stored again since (under the redacted name): the two rows become one
        put("http://***@127.0.0.1:9#instance abc", "1", "first from the old version");
        for (channel, cursor) in
            [(format!("bus-identity:{url}"), "instance abc".to_string()), ("slack".to_string(), hook.clone())]
        {
            c.execute(
                "INSERT INTO cursors(machine, channel, cursor) VALUES ('b', ?1, ?2)",
                rusqlite::params![channel, cursor],
            )
            .unwrap();
        }
    }
    let mut c = env.handoff("b");
    c.args(["sync", "--json"]);
    let o = run(c);
    o.ok();
    let mut shown: Vec<String> = o.json()["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    shown.sort();
    assert_eq!(shown, ["first from the old version", "second from the old version"], "each message once: {}", o.out());

    let mut checked = 0;
    for e in std::fs::read_dir(&data).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("state.sqlite") {
            let bytes = std::fs::read(e.path()).unwrap();
            for secret in [PASSWORD, HOOK_SECRET] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} still holds {secret}",
                    e.path().display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 1);

    let c = rusqlite::Connection::open(data.join("state.sqlite")).unwrap();
    let buses: Vec<String> = c
        .prepare("SELECT DISTINCT bus FROM received WHERE machine = 'b'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(buses.contains(&"http://***@127.0.0.1:9#instance abc".to_string()), "{buses:?}");
    let cursor = |ch: &str| -> String {
        c.query_row("SELECT cursor FROM cursors WHERE machine = 'b' AND channel = ?1", [ch], |r| r.get(0)).unwrap()
    };
    assert_eq!(cursor("bus-identity:http://***@127.0.0.1:9"), "instance abc");
    assert_eq!(cursor("slack"), "https://hooks.slack.com/<redacted>");
}
