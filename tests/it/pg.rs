//! The bus on PostgreSQL with several replicas: one consistent bus across replicas, concurrent posters,
//! SIGKILL of a replica under load with clients retrying elsewhere, the database going away and coming
//! back under a running replica, migration between the embedded store and PostgreSQL, and the password
//! rules. (The shared behaviour suite runs on PostgreSQL as `bus::pg::*`.)

use crate::support::bus::{BusServer, PASSWORD, USER};
use crate::support::postgres::{PG_PASSWORD, PgServer};
use crate::support::{Env, OutputExt, run};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// Every stored message, oldest first, paging with `since`.
fn all_messages(bus: &BusServer, filter: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = String::new();
    loop {
        let page = bus.get(&format!("/messages?limit=500{filter}{since}")).json::<Value>().unwrap();
        let ms = page["messages"].as_array().unwrap().clone();
        let full = ms.len() == 500;
        if let Some(l) = ms.last() {
            since = format!("&since={}", l["id"].as_str().map(str::to_string).unwrap_or_else(|| l["id"].to_string()));
        }
        out.extend(ms);
        if !full {
            return out;
        }
    }
}

fn post_with_key(url: &str, key: &str, body: &Value) -> reqwest::Result<reqwest::blocking::Response> {
    client()
        .post(format!("{url}/post"))
        .basic_auth(USER, Some(PASSWORD))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
}

#[test]
fn two_replicas_on_one_database_are_one_bus() {
    let pg = Arc::new(PgServer::start());
    let a = BusServer::start_replica(&pg);
    let b = BusServer::start_replica(&pg);
    assert_ne!(a.url, b.url);
    // post through A, read and ack through B
    let m = a.post_json("/post", &json!({"from": "mac", "to": "linux", "body": "via A"})).json::<Value>().unwrap();
    let unread = b.get("/messages?to=linux&unread_by=linux").json::<Value>().unwrap();
    assert_eq!(unread["messages"][0]["body"], "via A");
    assert_eq!(unread["messages"][0]["id"], m["id"]);
    assert_eq!(b.post_json(&format!("/ack/{}", m["id"]), &json!({"reader": "linux"})).status(), 200);
    assert_eq!(
        a.get("/messages?to=linux&unread_by=linux").json::<Value>().unwrap()["messages"],
        json!([]),
        "A sees B's ack"
    );
    // the same idempotency key through the other replica returns the stored message
    let k1 = post_with_key(&a.url, "k-1", &json!({"from": "mac", "body": "keyed"})).unwrap().json::<Value>().unwrap();
    let k2 = post_with_key(&b.url, "k-1", &json!({"from": "mac", "body": "keyed"})).unwrap().json::<Value>().unwrap();
    assert_eq!(k1, k2);
    // health names the store and says it is reachable, with the same count on both
    for r in [&a, &b] {
        let h = r.get("/health").json::<Value>().unwrap();
        assert_eq!(h["ok"], true);
        assert_eq!(h["count"], 2);
        assert_eq!(h["store_reachable"], true);
        assert_eq!(h["store"], pg.url());
        assert!(!h.to_string().contains(PG_PASSWORD));
    }
    // a long-poll on B is woken by a post on A (LISTEN/NOTIFY): without the wakeup it would return
    // nothing after the full 20 s wait
    let b_url = b.url.clone();
    let since = k1["id"].to_string();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let r = client()
            .get(format!("{b_url}/messages?to=win&since={since}&wait=20"))
            .basic_auth(USER, Some(PASSWORD))
            .timeout(Duration::from_secs(40))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap();
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(700));
    a.post_json("/post", &json!({"from": "mac", "to": "win", "body": "wake up"}));
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r["messages"][0]["body"], "wake up", "the long-poll on B returned the post made on A");
    assert!(took < Duration::from_secs(15), "woken by the post, not by the wait running out ({took:?})");
}

#[test]
fn sixteen_concurrent_posters_across_two_replicas_get_unique_ids_and_nothing_is_lost() {
    let pg = Arc::new(PgServer::start());
    // both replicas start at once on the empty database: the migration runs once, under its lock
    let starting: Vec<_> = (0..2)
        .map(|_| {
            let pg = pg.clone();
            std::thread::spawn(move || BusServer::start_replica(&pg))
        })
        .collect();
    let replicas: Vec<BusServer> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        pg.sql("SELECT count(*) FROM bus_schema_migrations"),
        handoff::server::postgres::schema::MIGRATIONS.len().to_string(),
        "every migration ran once"
    );
    let per_thread = 60;
    let results = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = replicas[t % 2].url.clone();
            let results = results.clone();
            std::thread::spawn(move || {
                let c = client();
                for i in 0..per_thread {
                    let body = format!("t{t}-{i}");
                    let r = c
                        .post(format!("{url}/post"))
                        .basic_auth(USER, Some(PASSWORD))
                        .json(&json!({"from": format!("w{t}"), "to": if i % 3 == 0 { "any" } else { "reader" }, "body": body}))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().unwrap();
                    results.lock().unwrap().push((v["id"].to_string(), body));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap().clone();
    assert_eq!(results.len(), 16 * per_thread);
    let ids: HashSet<&String> = results.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), results.len(), "ids are unique across replicas");
    // both replicas list exactly the acknowledged posts, in id order
    for r in &replicas {
        let stored = all_messages(r, "");
        assert_eq!(stored.len(), results.len(), "nothing lost, nothing extra");
        let nums: Vec<i64> = stored.iter().map(|m| m["id"].as_i64().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "oldest first, ids increasing");
        let got: HashMap<String, String> =
            stored.iter().map(|m| (m["id"].to_string(), m["body"].as_str().unwrap().to_string())).collect();
        for (id, body) in &results {
            assert_eq!(got.get(id), Some(body));
        }
    }
    // per-sender order is the order each poster got its 200s
    let w3: Vec<String> =
        all_messages(&replicas[1], "&from=w3").iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(w3, (0..per_thread).map(|i| format!("t3-{i}")).collect::<Vec<_>>());
}

#[test]
fn sigkill_of_one_replica_under_load_loses_nothing_and_retries_elsewhere_create_no_duplicates() {
    let pg = Arc::new(PgServer::start());
    let mut a = BusServer::start_replica(&pg);
    let b = BusServer::start_replica(&pg);
    let urls = [a.url.clone(), b.url.clone()];
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let retried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let per_thread = 120;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (urls, acked, retried) = (urls.clone(), acked.clone(), retried.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let mut primary = t % 2;
                for i in 0..per_thread {
                    let body = format!("t{t}-{i}");
                    let key = format!("job-{t}-{i}");
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 50, "post {key} never succeeded");
                        let r = c
                            .post(format!("{}/post", urls[primary]))
                            .basic_auth(USER, Some(PASSWORD))
                            .header("Idempotency-Key", &key)
                            .json(&json!({"from": format!("w{t}"), "to": "any", "body": body}))
                            .send();
                        match r {
                            Ok(r) if r.status() == 200 => {
                                let v: Value = r.json().unwrap();
                                assert_eq!(v["body"], body.as_str());
                                acked.lock().unwrap().push((v["id"].to_string(), body.clone()));
                                break;
                            }
                            _ => {
                                // that replica is gone (or failed): the same key, on the other one
                                primary = 1 - primary;
                                retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 300 {
        assert!(!threads.iter().all(|t| t.is_finished()), "posters stopped early");
        std::thread::sleep(Duration::from_millis(5));
    }
    a.kill();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 8 * per_thread, "every post eventually got a 200");
    assert!(retried.load(std::sync::atomic::Ordering::Relaxed) > 0, "some posts were retried on the surviving replica");
    let stored = all_messages(&b, "");
    let mut per_body: HashMap<String, Vec<String>> = HashMap::new();
    for m in &stored {
        per_body.entry(m["body"].as_str().unwrap().to_string()).or_default().push(m["id"].to_string());
    }
    for (id, body) in &acked {
        assert_eq!(
            per_body.get(body),
            Some(&vec![id.clone()]),
            "{body}: stored exactly once, under the id its 200 named"
        );
    }
    assert_eq!(stored.len(), acked.len(), "no duplicates, nothing extra");
}

#[test]
fn postgres_stopped_and_started_under_a_running_replica_gives_503_then_recovers_without_restart() {
    let pg = Arc::new(PgServer::start());
    let mut bus = BusServer::start_replica(&pg);
    assert_eq!(bus.post_json("/post", &json!({"from": "a", "to": "b", "body": "before"})).status(), 200);
    let pid = bus.child.as_ref().unwrap().id();
    pg.stop();
    let h = bus.get("/health");
    assert_eq!(h.status(), 503);
    let h: Value = h.json().unwrap();
    assert_eq!((h["ok"].clone(), h["store_reachable"].clone()), (json!(false), json!(false)));
    assert_eq!(h["store"], pg.url());
    let r = bus.post_json("/post", &json!({"from": "a", "to": "b", "body": "while down"}));
    assert_eq!(r.status(), 503);
    assert!(r.json::<Value>().unwrap()["error"].as_str().unwrap().contains("retry"));
    assert_eq!(bus.get("/messages?to=b").status(), 503);
    assert_eq!(bus.post_json("/ack/1", &json!({"reader": "b"})).status(), 503);
    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = bus.get("/health");
        if r.status() == 200 {
            assert_eq!(r.json::<Value>().unwrap()["store_reachable"], true);
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not recover within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(bus.post_json("/post", &json!({"from": "a", "to": "b", "body": "after"})).status(), 200);
    let bodies: Vec<String> =
        all_messages(&bus, "&to=b").iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(bodies, ["before", "after"], "nothing from the outage was stored, nothing before it lost");
    assert_eq!(bus.post_json("/ack/1", &json!({"reader": "b"})).status(), 200);
    assert_eq!(bus.child.as_ref().unwrap().id(), pid, "same process: no restart");
    assert!(bus.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the replica kept running");
}

/// Messages as compared across stores: everything the API shows.
fn snapshot(bus: &BusServer) -> (Vec<Value>, Vec<Vec<Value>>) {
    let all = all_messages(bus, "");
    let unread = ["linux", "win", "mac", "nobody-yet"]
        .iter()
        .map(|r| all_messages(bus, &format!("&to={r}&unread_by={r}")))
        .collect();
    (all, unread)
}

#[test]
fn migration_from_the_embedded_store_to_postgres_and_back_keeps_ids_order_timestamps_and_read_state() {
    let mut env = Env::new();
    env.var("PGPASSWORD", PG_PASSWORD);
    // an embedded bus with history: an imported original data file (hex and numeric ids), posts, acks
    let mut src = BusServer::start();
    let file = env.path().join("orig.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id": "a1b2c3", "ts": "2026-01-01T00:00:00", "from": "mac", "to": "linux", "body": "hex id", "tags": ["x"], "read_by": ["linux"]}"#,
            "\n",
            r#"{"id": 7, "ts": "2026-01-02T00:00:00", "from": "mac", "to": "any", "body": "numeric id", "priority": "high"}"#,
            "\n"
        ),
    )
    .unwrap();
    src.kill();
    let mut c = env.handoff("x");
    c.args(["bus", "import"]).arg(&file).arg("--data").arg(&src.data);
    run(c).ok();
    src.restart();
    for i in 0..1200 {
        let to = ["linux", "win", "any"][i % 3];
        let r = post_with_key(
            &src.url,
            &format!("key-{i}"),
            &json!({"from": "mac", "to": to, "body": format!("m{i}"), "tags": [format!("n{i}")]}),
        );
        assert_eq!(r.unwrap().status(), 200);
    }
    let listed = all_messages(&src, "");
    for m in listed.iter().filter(|m| m["body"].as_str().unwrap().ends_with('0')) {
        for reader in ["linux", "win"] {
            assert_eq!(src.post_json(&format!("/ack/{}", m["id"]), &json!({"reader": reader})).status(), 200);
        }
    }
    let before = snapshot(&src);
    assert_eq!(before.0.len(), 1202);
    src.terminate();

    // embedded -> PostgreSQL
    let pg = Arc::new(PgServer::start());
    let mut c = env.handoff("x");
    c.args(["--json", "bus", "migrate", "--from"])
        .arg(format!("sqlite:{}", src.data.display()))
        .args(["--to", &pg.url()]);
    let o = run(c);
    o.ok();
    let r = o.json();
    assert_eq!(r["migrate"]["messages"], 1202);
    assert_eq!(r["identical_counts"], true, "{r}");
    assert!(!o.out().contains(PG_PASSWORD) && !o.err().contains(PG_PASSWORD));
    let dst = BusServer::start_replica(&pg);
    let after = snapshot(&dst);
    assert_eq!(after.0, before.0, "every message identical: ids, order, timestamps, tags, unknown fields");
    assert_eq!(after.1, before.1, "every reader's unread list identical");
    // read state was rebuilt into floors: linux has read the first message (seq 1), not the broadcast
    // numbered 7, so everything of linux's below 7 is read
    assert_eq!(pg.sql("SELECT floor FROM bus_reader_floor WHERE reader = 'linux'"), "6");
    // idempotency keys came along; new posts continue after the highest id
    let again = post_with_key(&dst.url, "key-5", &json!({"from": "mac", "to": "win", "body": "m5"}))
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(again["body"], "m5");
    assert_eq!(dst.get("/health").json::<Value>().unwrap()["count"], 1202, "a retried key adds nothing");
    let last_id = before.0.last().unwrap()["id"].as_i64().unwrap();
    let new = dst.post_json("/post", &json!({"from": "a", "body": "after migration"})).json::<Value>().unwrap();
    assert_eq!(new["id"].as_i64().unwrap(), last_id + 1);
    // migrating again copies nothing twice
    let mut c = env.handoff("x");
    c.args(["--json", "bus", "migrate", "--from"])
        .arg(format!("sqlite:{}", src.data.display()))
        .args(["--to", &pg.url()]);
    let o = run(c);
    o.ok();
    assert_eq!(o.json()["migrate"]["messages"], 0);
    assert_eq!(o.json()["migrate"]["skipped"], 1202);

    // and back: PostgreSQL -> a new embedded store
    let back_dir = env.path().join("back");
    let mut c = env.handoff("x");
    c.args(["--json", "bus", "migrate", "--from", &pg.url(), "--to"]).arg(format!("sqlite:{}", back_dir.display()));
    let o = run(c);
    o.ok();
    assert_eq!(o.json()["identical_counts"], true);
    let back = BusServer::start_at(&back_dir, 0);
    assert_eq!(snapshot(&back), snapshot(&dst), "PostgreSQL -> embedded keeps everything too");
}

#[test]
fn a_password_in_the_store_url_is_refused_and_never_echoed() {
    let env = Env::new();
    for args in [
        vec!["bus", "serve", "--listen", "127.0.0.1:0", "--store", "postgres://bus:Hunter2secret@127.0.0.1:5432/bus"],
        vec!["bus", "migrate", "--from", "sqlite:x", "--to", "postgres://bus:Hunter2secret@127.0.0.1:5432/bus"],
    ] {
        let mut c = env.handoff("x");
        c.args(&args).env("BUS_PASS", PASSWORD);
        let o = run(c);
        assert_eq!(o.code(), 78, "{args:?}: {}", o.err());
        assert!(o.err().contains("PGPASSWORD"), "{}", o.err());
        assert!(!o.err().contains("Hunter2secret") && !o.out().contains("Hunter2secret"), "{}", o.err());
    }
    // the right password from the env file (not the environment) works; a wrong one is a clear error
    let pg = PgServer::start();
    let env = Env::new();
    env.write_secret_file("home/.secrets/claude-bus.env", &format!("BUS_PASS={PASSWORD}\nPGPASSWORD=wrong-one\n"));
    let mut c = env.handoff("x");
    c.args(["bus", "serve", "--listen", "127.0.0.1:0", "--store", &pg.url()]);
    let o = run(c);
    assert_eq!(o.code(), 69, "{}", o.err());
    assert!(o.err().contains("password") && o.err().contains(&pg.url()), "{}", o.err());
    assert!(!o.err().contains("wrong-one"));
    env.write_secret_file("home/.secrets/claude-bus.env", &format!("BUS_PASS={PASSWORD}\nPGPASSWORD={PG_PASSWORD}\n"));
    let mut c = env.handoff("x");
    c.args(["bus", "import", "--store", &pg.url()]).arg(env.path().join("none.jsonl"));
    let o = run(c);
    assert!(
        o.err().contains("none.jsonl"),
        "connected with the env file's password, then named the missing file: {}",
        o.err()
    );
    // a database migrated by a newer handoff is refused, not written into
    pg.sql("INSERT INTO bus_schema_migrations(version, description) VALUES (99, 'from the future')");
    let mut c = env.handoff("x");
    c.args(["bus", "serve", "--listen", "127.0.0.1:0", "--store", &pg.url()]);
    let o = run(c);
    assert_eq!(o.code(), 69, "{}", o.err());
    assert!(o.err().contains("version 99") && o.err().contains("upgrade handoff"), "{}", o.err());
}
