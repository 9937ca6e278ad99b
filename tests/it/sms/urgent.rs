//! The urgent flow (issue 6): `handoff send --urgent` with the real `handoff bus serve` and the Twilio
//! stub — bus up, bus down, SMS down or refusing, over budget — each with its exit code and receipt.

use super::{ALICE, FROM};
use crate::support::bus::BusServer;
use crate::support::twilio_stub::{ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, Reply, TwilioStub, basic};
use crate::support::{Env, OutputExt, run};
use serde_json::Value;

/// An env with the bus env file and an `[sms]` section pointing at `twilio`.
fn env(bus: &BusServer, twilio: &str, budget: u32) -> Env {
    let mut env = Env::new();
    bus.write_env_file(&env);
    env.write_config(&format!(
        "[sms]\nfrom = \"{FROM}\"\nto = [\"{ALICE}\"]\nbase_url = \"{twilio}\"\nmax_pages_per_hour = {budget}\n"
    ));
    env.var("TWILIO_SID", ACCOUNT_SID).var("TWILIO_TOKEN", AUTH_TOKEN);
    env
}

fn send_urgent(env: &Env, text: &str) -> std::process::Output {
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--urgent", "--to", "linux-box", text]);
    run(c)
}

fn step<'a>(receipt: &'a Value, name: &str) -> &'a Value {
    receipt["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {receipt:#}"))
}

fn bus_bodies(bus: &BusServer) -> Vec<(String, String)> {
    let v: Value = bus.get("/messages?to=linux-box").json().unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].to_string().trim_matches('"').to_string(), m["body"].as_str().unwrap().to_string()))
        .collect()
}

fn assert_no_token(o: &std::process::Output) {
    assert!(!o.out().contains(AUTH_TOKEN) && !o.err().contains(AUTH_TOKEN), "the Twilio token leaked");
}

#[test]
fn bus_up_posts_first_then_pages_with_the_message_id() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 5);
    let o = send_urgent(&env, "prod deploy is stuck\nmigration 17 hangs; rolled back to 1.3");
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let posted = bus_bodies(&bus);
    assert_eq!(posted.len(), 1);
    let id = &posted[0].0;
    let inline = step(&j, "inline");
    assert_eq!(inline["status"], "delivered");
    assert_eq!(inline["receipt"]["message_id"].to_string().trim_matches('"'), id);
    let page = step(&j, "page");
    assert_eq!(page["status"], "delivered", "{j:#}");
    let sent = twilio.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].field("Body").unwrap(), format!("mac-studio: prod deploy is stuck (bus msg {id})"));
    assert_eq!((sent[0].field("To"), sent[0].field("From")), (Some(ALICE), Some(FROM)));
    assert!(page["receipt"]["detail"].as_str().unwrap().starts_with("SM"), "{page:#}");
    assert_no_token(&o);
}

#[test]
fn bus_down_pages_with_the_text_itself_and_queues_the_bus_post() {
    let mut bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 5);
    bus.kill();
    let o = send_urgent(&env, "prod deploy is stuck\nmigration 17 hangs");
    assert_eq!(o.code(), 75, "queued = EX_TEMPFAIL\n{}\n{}", o.out(), o.err());
    let j = o.json();
    assert_eq!(step(&j, "inline")["status"], "queued");
    assert_eq!(step(&j, "page")["status"], "delivered");
    let sent = twilio.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].field("Body").unwrap(),
        "mac-studio: prod deploy is stuck migration 17 hangs (bus unreachable; message queued)"
    );
    // The bus comes back: the next run delivers the queued post, and does not page again.
    bus.restart();
    let mut c = env.handoff("mac-studio");
    c.arg("flush");
    run(c).ok();
    assert_eq!(
        bus_bodies(&bus).iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        ["prod deploy is stuck\nmigration 17 hangs"]
    );
    assert_eq!(twilio.sent().len(), 1, "the page is not sent twice");
}

#[test]
fn sms_down_fails_after_the_bus_message_is_safe_and_retries_later_once() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 5);
    twilio.always(Some(Reply::twilio_error(503, 20503, "Service Unavailable")));
    let o = send_urgent(&env, "disk almost full on the build box");
    assert_ne!(o.code(), 0);
    assert_eq!(o.code(), 75, "a transient SMS failure is queued\n{}\n{}", o.out(), o.err());
    let j = o.json();
    assert_eq!(step(&j, "inline")["status"], "delivered");
    let page = step(&j, "page");
    assert_eq!(page["status"], "queued");
    let err = page["error"].as_str().unwrap();
    assert!(err.contains("503") && err.contains("Twilio error 20503"), "{err}");
    assert_eq!(bus_bodies(&bus).len(), 1, "the bus message is posted before the page is tried");
    assert!(twilio.requests().len() >= 2, "5xx is retried");
    assert!(twilio.sent().is_empty());
    assert_no_token(&o);
    // Twilio back: flush sends the page once, pointing at the bus message.
    twilio.always(None);
    let mut c = env.handoff("mac-studio");
    c.arg("flush");
    run(c).ok();
    let id = &bus_bodies(&bus)[0].0;
    let sent = twilio.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].field("Body").unwrap(), format!("mac-studio: disk almost full on the build box (bus msg {id})"));
}

#[test]
fn sms_refused_exits_non_zero_naming_twilios_error() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 5);
    twilio.always(Some(Reply::twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")));
    let mut c = env.handoff("mac-studio");
    c.args(["send", "--urgent", "--to", "linux-box", "prod is down"]);
    let o = run(c);
    assert_eq!(o.code(), 69, "a permanent refusal: EX_UNAVAILABLE\n{}\n{}", o.out(), o.err());
    assert!(
        o.out().contains("✓ inline") && o.out().contains("21610") && o.out().contains("unsubscribed recipient"),
        "{}",
        o.out()
    );
    assert_eq!(bus_bodies(&bus).len(), 1);
    assert_eq!(twilio.requests().len(), 1, "a 4xx is not retried");
}

#[test]
fn over_budget_refuses_the_page_but_still_posts_the_bus_message() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 2);
    for n in 1..=2 {
        let o = send_urgent(&env, &format!("alert {n}"));
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    }
    let o = send_urgent(&env, "alert 3");
    assert_eq!(o.code(), 69, "{}\n{}", o.out(), o.err());
    let j = o.json();
    assert_eq!(step(&j, "inline")["status"], "delivered");
    let page = step(&j, "page");
    assert_eq!(page["status"], "failed");
    let err = page["error"].as_str().unwrap();
    assert!(err.contains("page budget used up: 2 of 2") && err.contains("max_pages_per_hour"), "{err}");
    assert_eq!(bus_bodies(&bus).len(), 3, "all three messages are on the bus");
    assert_eq!(twilio.sent().len(), 2, "the third page never reached Twilio");
    assert_eq!(twilio.requests().len(), 2);
    // Another machine on the same host has its own budget.
    let mut c = env.handoff("other-box");
    c.args(["send", "--urgent", "--to", "linux-box", "alert from elsewhere"]);
    run(c).ok();
    assert_eq!(twilio.sent().len(), 3);
}

#[test]
fn doctor_checks_the_account_without_sending_anything() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 5);
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "doctor"]);
    let o = run(c);
    let j = o.json();
    let sms = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "sms").expect("an sms check");
    assert_eq!(sms["ok"], true, "{j:#}");
    assert!(sms["detail"].as_str().unwrap().contains("active"), "{sms:#}");
    let reqs = twilio.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json").as_str())
    );
    assert!(twilio.sent().is_empty());
    assert_no_token(&o);
    // Without credentials: the check fails naming the variables; other commands still work.
    let bare = Env::new();
    bus.write_env_file(&bare);
    bare.write_config(&format!("[sms]\nfrom = \"{FROM}\"\nto = [\"{ALICE}\"]\nbase_url = \"{}\"\n", twilio.url));
    let mut c = bare.handoff("mac-studio");
    c.args(["--json", "doctor"]);
    let j = run(c).json();
    let sms = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "sms").unwrap();
    assert_eq!(sms["ok"], false);
    assert!(sms["detail"].as_str().unwrap().contains("TWILIO_SID"), "{sms:#}");
    let mut c = bare.handoff("mac-studio");
    c.args(["send", "--to", "linux-box", "not urgent"]);
    run(c).ok();
}

#[test]
fn an_api_key_from_an_env_file_works_and_no_secret_reaches_the_logs() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = Env::new();
    bus.write_env_file(&env);
    let key_file = env.write_secret_file(
        "home/.secrets/twilio.env",
        &format!("TWILIO_SID={API_KEY_SID}\nTWILIO_TOKEN={API_KEY_SECRET}\n"),
    );
    env.write_config(&format!(
        "[sms]\nfrom = \"{FROM}\"\nto = [\"{ALICE}\"]\nbase_url = \"{}\"\nenv_file = \"{}\"\naccount_sid = \"{ACCOUNT_SID}\"\n",
        twilio.url,
        key_file.display()
    ));
    let mut c = env.handoff("mac-studio");
    c.args(["-vv", "send", "--urgent", "--to", "linux-box", "build box is on fire"]).env("RUST_LOG", "trace");
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(o.err().contains("page sent"), "the log shows the page: {}", o.err());
    let sent = twilio.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].authorization.as_deref(), Some(basic(API_KEY_SID, API_KEY_SECRET).as_str()));
    assert!(sent[0].path.contains(ACCOUNT_SID), "the URL names the account, not the key: {}", sent[0].path);
    assert_no_token(&o);
    // A world-readable env file is refused, naming the fix: a configuration to correct (78), as init does.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = env.handoff("mac-studio");
    c.args(["send", "--urgent", "--to", "linux-box", "again"]);
    let o = run(c);
    assert_eq!(o.code(), 78, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("chmod 600"), "{}", o.out());
    assert_eq!(twilio.sent().len(), 1);
}

#[test]
fn concurrent_sessions_cannot_overrun_the_budget() {
    let bus = BusServer::start();
    let twilio = TwilioStub::start();
    let env = env(&bus, &twilio.url, 3);
    let children: Vec<_> = (1..=6)
        .map(|n| {
            let mut c = env.handoff("mac-studio");
            c.args(["send", "--urgent", "--to", "linux-box", &format!("loop alert {n}")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("handoff starts")
        })
        .collect();
    let mut codes: Vec<i32> = children.into_iter().map(|c| c.wait_with_output().unwrap().code()).collect();
    codes.sort();
    assert_eq!(codes, [0, 0, 0, 69, 69, 69], "three pages go, three are refused");
    assert_eq!(twilio.sent().len(), 3);
    assert_eq!(bus_bodies(&bus).len(), 6, "every message is on the bus");
}
