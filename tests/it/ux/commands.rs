//! status, show, reply and outbox list|retry|drop round trips against a real `handoff bus serve`, and the
//! recipient typo check.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use crate::ux::json::json_line;

fn env_for(bus: &BusServer) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    env
}

fn handoff(env: &Env, machine: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.handoff(machine);
    c.args(args);
    run(c)
}

fn bus_count(bus: &BusServer) -> usize {
    bus.get("/messages?limit=500").json::<serde_json::Value>().unwrap()["messages"].as_array().unwrap().len()
}

#[test]
fn status_show_reply_and_a_thread_round_trip_through_a_real_bus() {
    let bus = BusServer::start();
    let (desk, laptop) = (env_for(&bus), env_for(&bus));
    let sent = json_line(&desk, "desk", &["send", "-t", "laptop", "tests pass; PR ready"]);
    let id = sent["receipt"]["steps"][0]["receipt"]["message_id"].as_str().unwrap().to_string();

    let st = json_line(&laptop, "laptop", &["status"]);
    assert_eq!(st["bus"]["reachable"], true, "{st}");
    assert_eq!(st["bus"]["unread"], 1, "{st}");
    assert!(st["last_sync"].is_null());
    handoff(&laptop, "laptop", &["sync"]).ok();
    let st = json_line(&laptop, "laptop", &["status"]);
    assert_eq!(st["bus"]["unread"], 0, "read by the sync: {st}");
    assert!(st["last_sync"].is_string(), "{st}");
    let text = handoff(&laptop, "laptop", &["status"]);
    assert!(text.ok().out().contains("0 unread") && text.out().contains("last sync"), "{}", text.out());

    let shown = json_line(&laptop, "laptop", &["show", &id]);
    assert_eq!((shown["from"].as_str(), shown["body"].as_str()), (Some("desk"), Some("tests pass; PR ready")));

    // reply: to the sender, tagged re:ID
    let r = json_line(&laptop, "laptop", &["reply", &id, "merged, thanks"]);
    let reply_id = r["receipt"]["steps"][0]["receipt"]["message_id"].as_str().unwrap().to_string();
    let got = json_line(&desk, "desk", &["sync"]);
    let m = &got["sync"]["messages"][0];
    assert_eq!((m["from"].as_str(), m["body"].as_str()), (Some("laptop"), Some("merged, thanks")), "{got}");
    assert!(m["tags"].as_array().unwrap().iter().any(|t| t == &format!("re:{id}")), "{m}");
    // both sides follow the thread
    assert_eq!(json_line(&desk, "desk", &["show", &reply_id])["thread"], id.as_str());
    let orig = json_line(&desk, "desk", &["show", &id]);
    assert_eq!(orig["direction"], "sent");
    assert_eq!(orig["replies"], serde_json::json!([reply_id]), "{orig}");
    let log = handoff(&desk, "desk", &["log"]);
    let text = log.out();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| l.contains("tests pass")).unwrap();
    assert!(lines[first + 1].contains("↳ re") && lines[first + 1].contains("merged"), "{lines:?}");
    // -m takes the id; an unknown id is a usage error naming the fix
    let o = handoff(&laptop, "laptop", &["reply", "-m", "999999", "hello?"]);
    assert_eq!(o.code(), 65, "{}", o.err());
    assert!(o.err().contains("handoff log"), "{}", o.err());
    let o = handoff(&laptop, "laptop", &["show", "999999"]);
    assert_eq!(o.code(), 65, "{}", o.err());
}

#[test]
fn outbox_list_drop_and_retry_decide_about_queued_work() {
    let mut bus = BusServer::start();
    let (desk, laptop) = (env_for(&bus), env_for(&bus));
    handoff(&laptop, "laptop", &["send", "-t", "desk", "hello"]).ok();
    bus.kill();
    assert_eq!(handoff(&laptop, "laptop", &["send", "-t", "desk", "to be dropped"]).code(), 75);
    assert_eq!(handoff(&laptop, "laptop", &["send", "-t", "desk", "to be retried"]).code(), 75);
    let list = json_line(&laptop, "laptop", &["outbox", "list"]);
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{list}");
    assert_eq!(jobs[0]["summary"], "to be dropped");
    assert!(jobs[0]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{list}");
    let (drop_id, retry_id) = (jobs[0]["id"].as_str().unwrap(), jobs[1]["id"].as_str().unwrap());
    let st = json_line(&laptop, "laptop", &["status"]);
    assert_eq!((st["bus"]["reachable"].as_bool(), st["outbox"]["waiting"].as_u64()), (Some(false), Some(2)), "{st}");
    assert_eq!(st["outbox"]["oldest_id"], drop_id);

    assert_eq!(json_line(&laptop, "laptop", &["outbox", "drop", drop_id])["action"], "drop");
    let o = handoff(&laptop, "laptop", &["outbox", "drop", drop_id]);
    assert_eq!(o.code(), 65, "dropping twice names the missing job: {}", o.err());
    assert!(o.err().contains("handoff outbox list"), "{}", o.err());
    let o = handoff(&laptop, "laptop", &["outbox", "drop", "../../etc"]);
    assert_eq!(o.code(), 65, "a path is no job id: {}", o.err());
    let r = json_line(&laptop, "laptop", &["outbox", "retry", retry_id]);
    assert_eq!(r["exit_code"], 75, "bus still down: still queued: {r}");

    bus.restart();
    let r = json_line(&laptop, "laptop", &["outbox", "retry", retry_id]);
    assert_eq!(r["exit_code"], 0, "{r}");
    assert!(json_line(&laptop, "laptop", &["outbox", "list"])["jobs"].as_array().unwrap().is_empty());
    let got = json_line(&desk, "desk", &["sync"]);
    let bodies: Vec<&str> =
        got["sync"]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["hello", "to be retried"], "the dropped job never arrives, the retried one once");
}

#[test]
fn a_typo_of_a_known_machine_is_refused_and_nothing_is_posted() {
    let bus = BusServer::start();
    let (linux, mac) = (env_for(&bus), env_for(&bus));
    handoff(&linux, "linux", &["send", "-t", "mac", "hi from linux"]).ok();
    handoff(&mac, "mac", &["sync"]).ok();
    let before = bus_count(&bus);
    // the original Flask bus knows `mac` from mac's own sync; `mac` knows `linux` as a sender
    for typo in ["linx", "LINUX", "Linux"] {
        let o = handoff(&mac, "mac", &["send", "--to", typo, "the fix"]);
        assert_eq!(o.code(), 2, "{typo}: {}", o.err());
        assert!(o.err().contains("did you mean linux?"), "{typo}: {}", o.err());
        let o = handoff(&mac, "mac", &["send", "--to", typo, "the fix", "--json"]);
        assert_eq!(o.json()["exit_code"], 2);
    }
    assert_eq!(bus_count(&bus), before, "nothing was posted");
    // a genuinely new machine: accepted with a note; a near name with --new-machine too
    let o = handoff(&mac, "mac", &["send", "--to", "windows-box", "welcome"]);
    o.ok();
    assert!(o.err().contains("no machine named windows-box has been seen"), "{}", o.err());
    handoff(&mac, "mac", &["send", "--to", "linux2", "--new-machine", "hello twin"]).ok();
    assert_eq!(bus_count(&bus), before + 2);
}
