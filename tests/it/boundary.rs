//! The session boundary (issue 15): queued work is never dropped by an implicit retry, the start hook
//! answers within its budget whatever the bus does, the digest spends its 10,000 characters well, two
//! syncs never show a message twice, a reset bus loses nothing, one bad outbox job blocks nothing, and
//! stored names never collide. Real `handoff` binary, real `handoff bus serve`.

use crate::support::bus::{BusServer, PASSWORD, StoreKind, USER};
use crate::support::{Env, OutputExt, run};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn outbox(env: &Env) -> PathBuf {
    env.path().join("data/handoff/outbox")
}

/// Job folders waiting in the outbox (the quarantine aside).
fn jobs(env: &Env) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(outbox(env)) else { return Vec::new() };
    let mut out: Vec<(String, Value)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.path().join("job.json").exists())
        .map(|e| {
            let j = serde_json::from_slice(&std::fs::read(e.path().join("job.json")).unwrap()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), j)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, j)| j).collect()
}

fn sync_json(env: &Env, machine: &str) -> (std::process::Output, Value) {
    let mut c = env.handoff(machine);
    c.args(["sync", "--json"]);
    let o = run(c);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", o.out(), o.err()));
    (o, v)
}

fn bodies(v: &Value) -> Vec<String> {
    v["sync"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_string()).collect()
}

/// Everything on the bus (up to 500), as the server has it.
fn on_bus(bus: &BusServer) -> Vec<Value> {
    bus.get("/messages?limit=500").json::<Value>().unwrap()["messages"].as_array().unwrap().clone()
}

fn post(bus: &BusServer, from: &str, to: &str, body: &str) {
    let r = bus.post_json("/post", &json!({ "from": from, "to": to, "body": body }));
    assert!(r.status().is_success(), "{}", r.status());
}

#[test]
fn a_queued_send_survives_a_sync_against_a_bus_answering_404_and_flush_then_delivers_it_once() {
    let mut bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    bus.kill();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "queued while the bus was down"]);
    assert_eq!(run(c).code(), 75);
    bus.restart();
    // a config change points the bus at a URL that answers 404
    env.write_config(&format!("[bus]\nurl = \"{}/moved-away\"\n", bus.url));
    let (o, v) = sync_json(&env, "b");
    let problems = v["problems"].to_string();
    assert!(problems.contains("refused") && problems.contains("stays queued"), "{}\n{}", o.out(), o.err());
    let waiting = jobs(&env);
    assert_eq!(waiting.len(), 1, "the implicit flush must not drop the job");
    assert!(waiting[0]["steps"].as_array().unwrap().iter().all(|s| s["failed"] == false), "{:#}", waiting[0]);
    // text mode says it first, before anything else
    let mut c = env.handoff("b");
    c.arg("sync");
    let o = run(c);
    let text = o.out();
    let first_lines: Vec<&str> = text.lines().take_while(|l| l.starts_with('⚠')).collect();
    assert!(first_lines.iter().any(|l| l.starts_with("⚠ outbox job")), "{}", o.out());
    assert_eq!(jobs(&env).len(), 1);
    // the right bus again: an explicit flush delivers it, exactly once
    std::fs::remove_file(env.path().join("config/handoff/config.toml")).unwrap();
    let mut c = env.handoff("a");
    c.arg("flush");
    run(c).ok();
    let mut c = env.handoff("a");
    c.arg("flush");
    run(c).ok();
    let on = on_bus(&bus);
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["body"], "queued while the bus was down");
    assert!(jobs(&env).is_empty());
}

#[test]
fn a_step_queued_for_a_bus_never_lands_on_the_embedded_bus_once_that_bus_leaves_the_config() {
    let mut bus = BusServer::start();
    let env = Env::new();
    let env_file = bus.write_env_file(&env);
    bus.kill();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "queued for the real bus"]);
    assert_eq!(run(c).code(), 75);
    // the bus leaves this machine's config: handoff now runs on its embedded bus
    std::fs::remove_file(&env_file).unwrap();
    let mut c = env.handoff("a");
    c.arg("flush");
    let o = run(c);
    assert_eq!(o.code(), 75, "still queued: {}{}", o.out(), o.err());
    let said = format!("{}{}", o.out(), o.err());
    assert!(
        said.contains(&format!("queued for the bus at {}", bus.url)) && said.contains("outbox drop"),
        "the note names the bus it waits for and the way out: {said}"
    );
    // an implicit flush (a's sync) does not post it either, and b on the embedded bus gets nothing
    sync_json(&env, "a");
    let (o, v) = sync_json(&env, "b");
    assert!(bodies(&v).is_empty(), "the step landed on the embedded bus: {}", o.out());
    let waiting = jobs(&env);
    assert_eq!(waiting.len(), 1);
    let step = &waiting[0]["steps"][0];
    assert_eq!(step["failed"], false, "{step:#}");
    assert!(step["last_error"].as_str().unwrap().contains("queued for the bus at"), "{step:#}");
    // that bus configured again: delivered there, once
    bus.restart();
    bus.write_env_file(&env);
    let mut c = env.handoff("a");
    c.arg("flush");
    run(c).ok();
    let on = on_bus(&bus);
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["body"], "queued for the real bus");
    assert!(jobs(&env).is_empty());
}

#[test]
fn an_explicit_flush_marks_a_refused_job_failed_and_it_stays_listed_until_dropped() {
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    env.write_config(&format!("[bus]\nurl = \"{}/moved-away\"\n", bus.url));
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "to a bus that moved"]);
    let o = run(c);
    assert_eq!(o.code(), 69, "{}", o.err());
    assert!(o.out().contains("outbox retry") && o.out().contains("outbox drop"), "{}", o.out());
    let waiting = jobs(&env);
    assert_eq!(waiting.len(), 1, "a failed job stays in the outbox");
    // every later command says so first
    let (_, v) = sync_json(&env, "b");
    assert!(v["problems"].to_string().contains("failed and waits for you"), "{v:#}");
}

/// A TCP listener that accepts connections and never answers.
struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let held = Mutex::new(Vec::new());
            while !s2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((sock, _)) => held.lock().unwrap().push(sock),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlackHole { port, stop, thread: Some(thread) }
    }
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn the_start_hook_answers_within_its_budget_from_a_bus_that_never_answers() {
    let mut hole = BlackHole::start();
    let env = Env::new();
    let url = format!("http://127.0.0.1:{}", hole.port);
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER={USER}\nBUS_PASS={PASSWORD}\nBUS_URL={url}\n"),
    );
    env.write_config("[budget]\nsend = \"1s\"\n");
    for text in ["first queued", "second queued"] {
        let t = Instant::now();
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", text]);
        let o = run(c);
        assert_eq!(o.code(), 75, "{}", o.err());
        assert!(t.elapsed() < Duration::from_secs(8), "send waited {:?} past its 1s deadline", t.elapsed());
    }
    assert_eq!(jobs(&env).len(), 2);
    let t = Instant::now();
    let mut c = env.handoff("b");
    c.args(["sync", "--format", "claude-hook"]);
    let o = run(c);
    let took = t.elapsed();
    assert_eq!(o.code(), 0, "{}", o.err());
    assert!(took < Duration::from_secs(7), "the hook took {took:?} (budget 5s)");
    let v: Value = serde_json::from_slice(&o.stdout).expect("valid hook JSON");
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
    let ctx = v["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    let mut lines = ctx.lines();
    assert_eq!(lines.next(), Some(handoff_channels::untrusted::PREAMBLE));
    let first = lines.next().unwrap();
    assert!(first.starts_with("⚠ bus: no answer") && first.contains(&url), "{ctx}");
    assert!(ctx.contains("background `handoff flush`"), "the outbox left to a background run is named: {ctx}");
    // the bus comes back on the same port: both sends are delivered, each exactly once
    hole.stop();
    let dir = tempfile::tempdir().unwrap();
    let bus = BusServer::start_at(&dir.path().join("bus"), hole.port);
    let mut c = env.handoff("a");
    c.arg("flush");
    run(c);
    let mut c = env.handoff("a");
    c.arg("flush");
    run(c).ok();
    let mut got: Vec<String> = on_bus(&bus).iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    got.sort();
    assert_eq!(got, ["first queued", "second queued"]);
    assert!(jobs(&env).is_empty());
}

/// Ids of messages named in a digest text (`── msg ID from …`).
fn ids_in(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("── msg "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn three_hundred_messages_fit_the_hook_newest_first_and_exactly_the_shown_ones_are_marked_shown() {
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    // 300 messages of ~4 KiB: more than the context and more than the overflow file's 1 MiB
    for i in 0..300 {
        let body = format!("message {i} begins\n{}\nmessage {i} ends", "lorem ipsum dolor sit amet\n".repeat(150));
        post(&bus, "a", "b", &body);
    }
    // one unreadable outbox job: a problem the context must state first
    let bad = outbox(&env).join("0000-garbage");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("job.json"), "{ this is not a job").unwrap();
    let mut c = env.handoff("b");
    // a generous budget: this test is about the digest, not the clock (a loaded CI machine is slow)
    c.args(["sync", "--format", "claude-hook", "--budget", "120s"]);
    let o = run(c);
    o.ok();
    let v: Value = o.json();
    let ctx = v["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    let n = ctx.chars().count();
    assert!(n <= 9_500, "{n} characters: no margin under 10,000");
    assert!(ctx.starts_with(handoff_channels::untrusted::PREAMBLE), "{ctx}");
    let second = ctx.lines().nth(1).unwrap();
    assert!(second.starts_with("⚠ outbox job 0000-garbage was unreadable") && second.contains("quarantine"), "{ctx}");
    assert!(ctx.contains("message 299 begins"), "the newest message is in the context");
    // nothing cut mid-line: every fence opened is closed, and the text ends with a whole line
    let opens = ctx.lines().filter(|l| l.starts_with("```") && l.ends_with("text")).count();
    let closes = ctx.lines().filter(|l| l.starts_with("```") && l.trim_end_matches('`').is_empty()).count();
    assert_eq!(opens, closes, "{ctx}");
    assert!(ctx.ends_with('\n'));
    let in_context = ids_in(ctx);
    let file = ctx.rsplit("full digest is in ").next().unwrap().split(" — ").next().unwrap();
    let full = std::fs::read_to_string(file).unwrap();
    let in_file = ids_in(&full);
    let shown: BTreeSet<String> = in_context.union(&in_file).cloned().collect();
    assert!(shown.len() < 300, "1.2 MB of messages cannot all be in the 1 MiB overflow file");
    // the next sync shows exactly the others: nothing twice, nothing lost
    let (_, v) = sync_json(&env, "b");
    let rest: BTreeSet<String> = v["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].to_string().trim_matches('"').to_string())
        .collect();
    assert!(shown.is_disjoint(&rest), "shown twice: {:?}", shown.intersection(&rest).collect::<Vec<_>>());
    assert_eq!(shown.len() + rest.len(), 300);
}

#[test]
fn two_syncs_started_together_show_every_message_exactly_once() {
    let bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    for round in 0..5 {
        for i in 0..60 {
            post(&bus, "a", "b", &format!("round {round} message {i}"));
        }
        let spawn = || {
            let mut c = env.handoff("b");
            c.args(["sync", "--json"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            c.stdin(std::process::Stdio::null());
            c.spawn().unwrap()
        };
        let (x, y) = (spawn(), spawn());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for child in [x, y] {
            let o = child.wait_with_output().unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.err()));
            for b in bodies(&v) {
                *seen.entry(b).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 60, "round {round}: {} distinct of 60", seen.len());
        assert!(seen.values().all(|&n| n == 1), "round {round}: shown twice: {seen:?}");
    }
}

#[test]
fn a_bus_wiped_and_restarted_on_the_same_url_shows_the_messages_posted_after_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bus");
    let mut bus = BusServer::start_at(&data, 0);
    let env = Env::new();
    bus.write_env_file(&env);
    for i in 0..3 {
        post(&bus, "a", "b", &format!("before the reset {i}"));
    }
    assert_eq!(bodies(&sync_json(&env, "b").1).len(), 3);
    bus.kill();
    std::fs::remove_dir_all(&data).unwrap();
    bus.restart();
    assert_eq!(on_bus(&bus).len(), 0, "a wiped bus");
    for i in 0..2 {
        post(&bus, "a", "b", &format!("after the reset {i}"));
    }
    let (_, v) = sync_json(&env, "b");
    assert_eq!(bodies(&v), ["after the reset 0", "after the reset 1"], "{v:#}");
    assert!(v["problems"].to_string().contains("was reset or replaced"), "{v:#}");
    assert!(bodies(&sync_json(&env, "b").1).is_empty(), "and shown once");
}

#[test]
fn health_reports_an_instance_id_and_the_batch_ack_which_acks_many_at_once_on_sqlite() {
    health_and_batch_ack(StoreKind::Sqlite);
}

#[test]
fn health_reports_an_instance_id_and_the_batch_ack_which_acks_many_at_once_on_postgres() {
    health_and_batch_ack(StoreKind::Postgres);
}

fn health_and_batch_ack(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let h: Value = bus.get("/health").json().unwrap();
    assert!(h["instance"].as_str().is_some_and(|s| s.len() >= 16), "{h}");
    assert!(h["features"].as_array().unwrap().contains(&json!("batch_ack")), "{h}");
    for i in 0..3 {
        post(&bus, "a", "b", &format!("m{i}"));
    }
    let ids: Vec<Value> = on_bus(&bus).iter().map(|m| m["id"].clone()).collect();
    let mut all = ids.clone();
    all.push(json!("no-such-id"));
    let r: Value = bus.post_json("/ack", &json!({ "reader": "b", "ids": all })).json().unwrap();
    assert_eq!(r["acked"], 3, "{r}");
    assert_eq!(r["not_found"], json!(["no-such-id"]));
    let unread: Value = bus.get("/messages?to=b&unread_by=b").json().unwrap();
    assert!(unread["messages"].as_array().unwrap().is_empty(), "{unread}");
    // bad input: a clear 400, never a panic
    let r = bus.post_json("/ack", &json!({ "reader": "b", "ids": "1" }));
    assert_eq!(r.status().as_u16(), 400);
    let r = bus.post_json("/ack", &json!({ "ids": ["1"] }));
    assert_eq!(r.status().as_u16(), 400, "no reader");
    let r = bus.post_json("/ack", &json!({ "reader": "b", "ids": vec![json!("1"); 501] }));
    assert_eq!(r.status().as_u16(), 413);
    // a restart keeps the instance id
    let mut bus = bus;
    bus.restart();
    let again: Value = bus.get("/health").json().unwrap();
    assert_eq!(again["instance"], h["instance"]);
}

#[test]
fn garbage_in_one_outbox_job_is_quarantined_and_a_new_send_is_still_delivered() {
    let env = Env::new();
    let bad = outbox(&env).join("0000-garbage");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("job.json"), "\u{0}\u{1} garbage").unwrap();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "still goes through"]);
    let o = run(c);
    o.ok();
    let quarantined = outbox(&env).join("quarantine/0000-garbage");
    assert!(o.err().contains("0000-garbage") && o.err().contains(&quarantined.display().to_string()), "{}", o.err());
    assert!(quarantined.join("job.json").exists() && quarantined.join("NOTE.txt").exists());
    let (_, v) = sync_json(&env, "b");
    assert_eq!(bodies(&v), ["still goes through"]);
}

#[test]
fn the_state_database_and_the_outbox_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut bus = BusServer::start();
    let env = Env::new();
    bus.write_env_file(&env);
    bus.kill();
    let mut c = env.handoff("a");
    c.args(["send", "--to", "b", "queued"]);
    assert_eq!(run(c).code(), 75);
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(outbox(&env)), 0o700);
    let job = std::fs::read_dir(outbox(&env)).unwrap().filter_map(Result::ok).find(|e| e.path().is_dir()).unwrap();
    assert_eq!(mode(job.path()), 0o700);
    assert_eq!(mode(job.path().join("job.json")), 0o600);
    assert_eq!(mode(job.path().join("lock")), 0o600);
    bus.restart();
    sync_json(&env, "b");
    assert_eq!(mode(env.path().join("data/handoff/state.sqlite")), 0o600);
}

#[test]
fn two_same_named_files_in_one_send_arrive_intact_on_the_local_store() {
    let env = Env::new();
    for (dir, text) in [("a", "the first notes"), ("b", "the second notes, longer")] {
        std::fs::create_dir_all(env.path().join(dir)).unwrap();
        std::fs::write(env.path().join(dir).join("notes.txt"), text).unwrap();
    }
    let mut c = env.handoff("x");
    c.args(["send", "--to", "y", "--file", "a/notes.txt", "--file", "b/notes.txt"]);
    run(c).ok();
    let (_, v) = sync_json(&env, "y");
    let id = v["sync"]["messages"][0]["id"].to_string();
    let out = env.path().join("got");
    let mut c = env.handoff("y");
    c.args(["fetch", id.trim_matches('"'), "--out"]).arg(&out);
    run(c).ok();
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "the first notes");
    assert_eq!(std::fs::read_to_string(out.join("notes (2).txt")).unwrap(), "the second notes, longer");
}
