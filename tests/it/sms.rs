//! The SMS channel (issue 6): our Twilio client against Prism serving Twilio's own OpenAPI spec with
//! request validation, and against a Twilio-shaped stub for the error paths the spec cannot express.

use crate::support::prism::Prism;
use crate::support::twilio_stub::{ACCOUNT_SID, AUTH_TOKEN, Reply, TwilioStub};
use handoff_channels::sms::{Credentials, RetryPolicy, SmsChannel, SmsConfig, TwilioClient};
use handoff_channels::{Channel, ChannelError, Context, ErrorKind, Parcel, ParcelKind, Receipt};
use std::time::Duration;

const FROM: &str = "+15550001111";
const ALICE: &str = "+15552223333";
const BOB: &str = "+447700900123";

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn config(base: &str, to: &[&str], extra: serde_json::Value) -> SmsConfig {
    let mut v = serde_json::json!({ "from": FROM, "to": to, "base_url": base });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// Quick retries so the error-path tests stay fast; the policy's shape is what is tested.
fn quick() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_wait: Duration::from_secs(1),
    }
}

fn channel(
    cfg: &SmsConfig,
    token: &str,
    data: &std::path::Path,
    policy: RetryPolicy,
) -> SmsChannel {
    let creds = Credentials::new(ACCOUNT_SID, token, None).unwrap();
    SmsChannel::new(
        cfg,
        creds,
        &Context::quiet("test-machine", data.to_path_buf()),
        policy,
    )
    .unwrap()
}

fn page(key: &str, body: &str) -> Parcel {
    Parcel {
        key: key.into(),
        from: "test-machine".into(),
        to: "any".into(),
        kind: ParcelKind::Page,
        title: None,
        body: body.into(),
        tags: vec![],
        file: None,
    }
}

fn sids(r: &Receipt) -> Vec<String> {
    r.detail
        .as_deref()
        .unwrap_or("")
        .split(", ")
        .filter_map(|p| p.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_no_secret(e: &ChannelError) {
    assert!(
        !e.message.contains(AUTH_TOKEN) && !e.message.contains("wrong-token"),
        "secret in error: {e}"
    );
}

// ---- Prism: Twilio's own spec, request validation on ----

#[test]
fn prism_accepts_every_request_our_client_sends() {
    let prism = Prism::start();
    let data = tempfile::tempdir().unwrap();

    // From a number, to two recipients.
    let sms = channel(
        &config(&prism.url, &[ALICE, BOB], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        RetryPolicy::default(),
    );
    let r = block_on(sms.deliver(&page("k1", "mac-studio: deploy broke (bus msg 42)")))
        .expect("Prism accepts the page");
    assert_eq!(r.channel, "sms");
    let got = sids(&r);
    assert_eq!(got.len(), 2, "one message per number: {r:?}");
    assert!(
        got.iter().all(|s| s.starts_with("SM") && s.len() == 34),
        "{got:?}"
    );

    // From a Messaging Service, with a page at Twilio's length limit and non-ASCII text.
    let mg = format!("MG{}", "0123456789abcdef".repeat(2));
    let cfg = config(
        &prism.url,
        &[ALICE],
        serde_json::json!({ "from": null, "messaging_service_sid": mg }),
    );
    let sms2 = channel(&cfg, AUTH_TOKEN, data.path(), RetryPolicy::default());
    let long = format!("ü{}", "x".repeat(1599));
    block_on(sms2.deliver(&page("k2", &long)))
        .expect("Prism accepts a Messaging Service page of 1600 characters");

    // The doctor check: an account lookup, nothing sent.
    let h = block_on(sms.health()).expect("account lookup accepted");
    assert!(
        h.check.contains("Twilio account AC…") && !h.check.contains(ACCOUNT_SID),
        "{h:?}"
    );
    assert!(
        h.detail.as_deref().unwrap_or("").contains("active"),
        "{h:?}"
    );

    // The look-up a retry makes after a lost answer (GET Messages.json?To=...&PageSize=20).
    let creds = Credentials::new(ACCOUNT_SID, AUTH_TOKEN, None).unwrap();
    let client = TwilioClient::new(prism.url.clone(), creds, RetryPolicy::default()).unwrap();
    let found =
        block_on(client.find_sent(ALICE, "a page never sent")).expect("Prism accepts the look-up");
    assert!(
        found.is_none(),
        "Prism's example message is not ours: {found:?}"
    );

    assert_eq!(
        prism.requests_received(),
        5,
        "2 + 1 messages, 1 account lookup, 1 message look-up:\n{}",
        prism.log()
    );
    assert_eq!(prism.rejected(), 0, "{}", prism.log());
    assert!(
        prism.violations().is_empty(),
        "Prism found spec violations: {:#?}",
        prism.violations()
    );
}

#[test]
fn prism_rejects_a_malformed_request_so_validation_is_live() {
    let prism = Prism::start();
    let client = reqwest::blocking::Client::new();
    let form = [("To", ALICE), ("From", FROM), ("Body", "hello")];
    let post = |account: &str, form: &[(&str, &str)]| {
        client
            .post(format!(
                "{}/2010-04-01/Accounts/{account}/Messages.json",
                prism.url
            ))
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
            .form(form)
            .send()
            .unwrap()
    };
    // Control: the well-formed request is accepted.
    assert_eq!(post(ACCOUNT_SID, &form).status().as_u16(), 201);
    // A bad AccountSid (not AC + 32 hex digits) is rejected by validation.
    let bad = post("ACnot-a-real-sid", &form);
    assert_eq!(bad.status().as_u16(), 422);
    let text = bad.text().unwrap();
    assert!(
        text.contains("accountsid") && text.contains("pattern"),
        "{text}"
    );
    // A Message without its required `To` is rejected too.
    assert_eq!(
        post(ACCOUNT_SID, &[("From", FROM), ("Body", "hello")])
            .status()
            .as_u16(),
        422
    );
    assert_eq!(
        prism.rejected(),
        2,
        "the control request passed, the two malformed ones did not"
    );
    let v = prism.violations();
    assert!(
        v.iter().any(|l| l.contains("accountsid")) && v.iter().any(|l| l.contains("'To'")),
        "{v:#?}"
    );
}

// ---- The stub: error paths ----

#[test]
fn stub_400_shows_twilios_error_json_and_is_not_retried() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    stub.script([Reply::twilio_error(
        400,
        21608,
        "The number +15552223333 is unverified. Trial accounts cannot send messages to unverified numbers",
    )]);
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    for part in [
        "400",
        "Twilio error 21608",
        "is unverified",
        "https://www.twilio.com/docs/errors/21608",
    ] {
        assert!(e.message.contains(part), "missing {part:?} in: {e}");
    }
    assert_eq!(stub.requests().len(), 1, "a 4xx is not retried");
    assert_no_secret(&e);
    // The request itself was what Twilio documents.
    let req = &stub.requests()[0];
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        (req.field("To"), req.field("From"), req.field("Body")),
        (Some(ALICE), Some(FROM), Some("hello"))
    );
}

#[test]
fn stub_401_is_an_auth_error_and_never_shows_the_token() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(
        &config(&stub.url, &[ALICE, BOB], serde_json::json!({})),
        "wrong-token",
        data.path(),
        quick(),
    );
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message.contains("401")
            && e.message.contains("20003")
            && e.message.contains("TWILIO_TOKEN"),
        "{e}"
    );
    assert_no_secret(&e);
    assert_eq!(
        stub.requests().len(),
        1,
        "no retry, and no second number tried with refused credentials"
    );
    let h = block_on(sms.health()).unwrap_err();
    assert_eq!(h.kind, ErrorKind::Auth);
    assert_no_secret(&h);
}

#[test]
fn stub_429_then_success_is_retried() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    stub.script([
        Reply::twilio_error(429, 20429, "Too Many Requests").header("Retry-After", "0"),
        Reply::twilio_error(429, 20429, "Too Many Requests"),
    ]);
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    let r = block_on(sms.deliver(&page("k", "hello"))).expect("succeeds on the third attempt");
    let statuses: Vec<u16> = stub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 201]);
    assert_eq!(
        sids(&r),
        [format!("SM{:032x}", 1)],
        "the SID of the stub's first created message"
    );
}

#[test]
fn stub_500_is_retried_then_reported_as_transient() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    stub.always(Some(Reply::twilio_error(
        500,
        20500,
        "Internal Server Error",
    )));
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(
        e.message.contains("500") && e.message.contains("gave up after 3 attempts"),
        "{e}"
    );
    assert_eq!(stub.requests().len(), 3);
    // Twilio back: the same page (same key) goes out, once.
    stub.always(None);
    block_on(sms.deliver(&page("k", "hello"))).unwrap();
    assert_eq!(stub.sent().len(), 1);
}

#[test]
fn a_retried_page_reaches_each_number_exactly_once() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    stub.fail_number(
        BOB,
        Some(Reply::twilio_error(503, 20503, "Service Unavailable")),
    );
    let sms = channel(
        &config(&stub.url, &[ALICE, BOB], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    let e = block_on(sms.deliver(&page("key-1", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(
        e.message.contains("+4…0123") && e.message.contains("did reach +1…3333"),
        "{e}"
    );
    stub.fail_number(BOB, None);
    let r = block_on(sms.deliver(&page("key-1", "hello"))).unwrap();
    let to: Vec<_> = stub
        .sent()
        .iter()
        .map(|r| r.field("To").unwrap().to_string())
        .collect();
    assert_eq!(to, [ALICE, BOB], "Alice was not texted twice");
    assert!(
        r.detail.as_deref().unwrap().contains("+1…3333 (earlier)"),
        "{r:?}"
    );
    assert_eq!(
        sms.ledger().used("test-machine").unwrap(),
        1,
        "one page, one unit of budget"
    );
}

#[test]
fn a_lost_answer_is_looked_up_instead_of_sending_the_page_twice() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    // Twilio creates the message but the answer never arrives: the retry finds it instead of resending.
    stub.lose_answers(1);
    let r = block_on(sms.deliver(&page("k1", "disk full"))).expect("found on retry");
    assert_eq!(stub.sent().len(), 1, "one text, not two");
    assert_eq!(sids(&r), [format!("SM{:032x}", 1)]);
    let methods: Vec<String> = stub.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET"], "the retry looked the message up");
    // The answer is lost on every in-process attempt (one attempt only here): a later run of the same
    // page looks it up first and does not text again.
    let once = RetryPolicy {
        attempts: 1,
        ..quick()
    };
    let sms1 = channel(
        &config(&stub.url, &[BOB], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        once,
    );
    stub.lose_answers(1);
    let e = block_on(sms1.deliver(&page("k2", "disk full"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    block_on(sms1.deliver(&page("k2", "disk full"))).expect("the later run finds it");
    let to_bob = stub
        .sent()
        .iter()
        .filter(|r| r.field("To") == Some(BOB))
        .count();
    assert_eq!(to_bob, 1, "Bob got one text");
    // Without a lost answer there is nothing to look up: a fresh page is a single request.
    let before = stub.requests().len();
    block_on(sms1.deliver(&page("k3", "other page"))).unwrap();
    assert_eq!(
        stub.requests().len(),
        before + 1,
        "a fresh page is one POST"
    );
}

#[test]
fn the_page_budget_refuses_once_spent_without_calling_twilio() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(
        &config(
            &stub.url,
            &[ALICE],
            serde_json::json!({ "max_pages_per_hour": 2 }),
        ),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    block_on(sms.deliver(&page("a", "one"))).unwrap();
    block_on(sms.deliver(&page("b", "two"))).unwrap();
    let e = block_on(sms.deliver(&page("c", "three"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message.contains("page budget used up: 2 of 2")
            && e.message.contains("max_pages_per_hour"),
        "{e}"
    );
    assert_eq!(
        stub.requests().len(),
        2,
        "the refused page never reached Twilio"
    );
    // A retry of a page already sent is not a new page.
    block_on(sms.deliver(&page("a", "one"))).unwrap();
    assert_eq!(stub.requests().len(), 2);
    // A failed page does not spend the budget: another machine's ledger is separate anyway, so check
    // that a page that reached nobody left the count alone.
    let other = tempfile::tempdir().unwrap();
    stub.always(Some(Reply::twilio_error(
        400,
        21211,
        "Invalid 'To' Phone Number",
    )));
    let sms2 = channel(
        &config(
            &stub.url,
            &[ALICE],
            serde_json::json!({ "max_pages_per_hour": 2 }),
        ),
        AUTH_TOKEN,
        other.path(),
        quick(),
    );
    assert!(block_on(sms2.deliver(&page("x", "four"))).is_err());
    assert_eq!(sms2.ledger().used("test-machine").unwrap(), 0);
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({})),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    let e = block_on(sms.deliver(&page("k", &"y".repeat(1601)))).unwrap_err();
    assert!(
        e.message.contains("1601") && e.message.contains("1600"),
        "{e}"
    );
    let mut text = page("k2", "hello");
    text.kind = ParcelKind::Text;
    assert!(
        block_on(sms.deliver(&text))
            .unwrap_err()
            .message
            .contains("pages")
    );
    let creds = Credentials::new(ACCOUNT_SID, AUTH_TOKEN, None).unwrap();
    let ctx = Context::quiet("m", data.path().to_path_buf());
    let e = SmsChannel::new(
        &config(&stub.url, &["555-222-3333"], serde_json::json!({})),
        creds,
        &ctx,
        quick(),
    )
    .err()
    .unwrap();
    assert!(
        e.message.contains("[sms] to") && e.message.contains("E.164"),
        "{e}"
    );
    assert!(stub.requests().is_empty());
}

// ---- The urgent flow: `handoff send --urgent` with the real bus server ----

mod urgent {
    use super::{ALICE, FROM};
    use crate::support::bus::BusServer;
    use crate::support::twilio_stub::{
        ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, Reply, TwilioStub, basic,
    };
    use crate::support::{Env, OutputExt, run};
    use serde_json::Value;

    /// An env with the bus env file and an `[sms]` section pointing at `twilio`.
    fn env(bus: &BusServer, twilio: &str, budget: u32) -> Env {
        let mut env = Env::new();
        bus.write_env_file(&env);
        env.write_config(&format!(
            "[sms]\nfrom = \"{FROM}\"\nto = [\"{ALICE}\"]\nbase_url = \"{twilio}\"\nmax_pages_per_hour = {budget}\n"
        ));
        env.var("TWILIO_SID", ACCOUNT_SID)
            .var("TWILIO_TOKEN", AUTH_TOKEN);
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
            .map(|m| {
                (
                    m["id"].to_string().trim_matches('"').to_string(),
                    m["body"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn assert_no_token(o: &std::process::Output) {
        assert!(
            !o.out().contains(AUTH_TOKEN) && !o.err().contains(AUTH_TOKEN),
            "the Twilio token leaked"
        );
    }

    #[test]
    fn bus_up_posts_first_then_pages_with_the_message_id() {
        let bus = BusServer::start();
        let twilio = TwilioStub::start();
        let env = env(&bus, &twilio.url, 5);
        let o = send_urgent(
            &env,
            "prod deploy is stuck\nmigration 17 hangs; rolled back to 1.3",
        );
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
        let j = o.json();
        let posted = bus_bodies(&bus);
        assert_eq!(posted.len(), 1);
        let id = &posted[0].0;
        let inline = step(&j, "inline");
        assert_eq!(inline["status"], "delivered");
        assert_eq!(
            inline["receipt"]["message_id"]
                .to_string()
                .trim_matches('"'),
            id
        );
        let page = step(&j, "page");
        assert_eq!(page["status"], "delivered", "{j:#}");
        let sent = twilio.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].field("Body").unwrap(),
            format!("mac-studio: prod deploy is stuck (bus msg {id})")
        );
        assert_eq!(
            (sent[0].field("To"), sent[0].field("From")),
            (Some(ALICE), Some(FROM))
        );
        assert!(
            page["receipt"]["detail"]
                .as_str()
                .unwrap()
                .starts_with("SM"),
            "{page:#}"
        );
        assert_no_token(&o);
    }

    #[test]
    fn bus_down_pages_with_the_text_itself_and_queues_the_bus_post() {
        let mut bus = BusServer::start();
        let twilio = TwilioStub::start();
        let env = env(&bus, &twilio.url, 5);
        bus.kill();
        let o = send_urgent(&env, "prod deploy is stuck\nmigration 17 hangs");
        assert_eq!(
            o.code(),
            75,
            "queued = EX_TEMPFAIL\n{}\n{}",
            o.out(),
            o.err()
        );
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
            bus_bodies(&bus)
                .iter()
                .map(|(_, b)| b.as_str())
                .collect::<Vec<_>>(),
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
        assert_eq!(
            o.code(),
            75,
            "a transient SMS failure is queued\n{}\n{}",
            o.out(),
            o.err()
        );
        let j = o.json();
        assert_eq!(step(&j, "inline")["status"], "delivered");
        let page = step(&j, "page");
        assert_eq!(page["status"], "queued");
        let err = page["error"].as_str().unwrap();
        assert!(
            err.contains("503") && err.contains("Twilio error 20503"),
            "{err}"
        );
        assert_eq!(
            bus_bodies(&bus).len(),
            1,
            "the bus message is posted before the page is tried"
        );
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
        assert_eq!(
            sent[0].field("Body").unwrap(),
            format!("mac-studio: disk almost full on the build box (bus msg {id})")
        );
    }

    #[test]
    fn sms_refused_exits_non_zero_naming_twilios_error() {
        let bus = BusServer::start();
        let twilio = TwilioStub::start();
        let env = env(&bus, &twilio.url, 5);
        twilio.always(Some(Reply::twilio_error(
            400,
            21610,
            "Attempt to send to unsubscribed recipient",
        )));
        let mut c = env.handoff("mac-studio");
        c.args(["send", "--urgent", "--to", "linux-box", "prod is down"]);
        let o = run(c);
        assert_eq!(
            o.code(),
            69,
            "a permanent refusal: EX_UNAVAILABLE\n{}\n{}",
            o.out(),
            o.err()
        );
        assert!(
            o.out().contains("✓ inline")
                && o.out().contains("21610")
                && o.out().contains("unsubscribed recipient"),
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
        assert!(
            err.contains("page budget used up: 2 of 2") && err.contains("max_pages_per_hour"),
            "{err}"
        );
        assert_eq!(
            bus_bodies(&bus).len(),
            3,
            "all three messages are on the bus"
        );
        assert_eq!(
            twilio.sent().len(),
            2,
            "the third page never reached Twilio"
        );
        assert_eq!(twilio.requests().len(), 2);
        // Another machine on the same host has its own budget.
        let mut c = env.handoff("other-box");
        c.args([
            "send",
            "--urgent",
            "--to",
            "linux-box",
            "alert from elsewhere",
        ]);
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
        let sms = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "sms")
            .expect("an sms check");
        assert_eq!(sms["ok"], true, "{j:#}");
        assert!(
            sms["detail"].as_str().unwrap().contains("active"),
            "{sms:#}"
        );
        let reqs = twilio.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str()),
            (
                "GET",
                format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json").as_str()
            )
        );
        assert!(twilio.sent().is_empty());
        assert_no_token(&o);
        // Without credentials: the check fails naming the variables; other commands still work.
        let bare = Env::new();
        bus.write_env_file(&bare);
        bare.write_config(&format!(
            "[sms]\nfrom = \"{FROM}\"\nto = [\"{ALICE}\"]\nbase_url = \"{}\"\n",
            twilio.url
        ));
        let mut c = bare.handoff("mac-studio");
        c.args(["--json", "doctor"]);
        let j = run(c).json();
        let sms = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "sms")
            .unwrap();
        assert_eq!(sms["ok"], false);
        assert!(
            sms["detail"].as_str().unwrap().contains("TWILIO_SID"),
            "{sms:#}"
        );
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
        c.args([
            "-vv",
            "send",
            "--urgent",
            "--to",
            "linux-box",
            "build box is on fire",
        ])
        .env("RUST_LOG", "trace");
        let o = run(c);
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
        assert!(
            o.err().contains("page sent"),
            "the log shows the page: {}",
            o.err()
        );
        let sent = twilio.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].authorization.as_deref(),
            Some(basic(API_KEY_SID, API_KEY_SECRET).as_str())
        );
        assert!(
            sent[0].path.contains(ACCOUNT_SID),
            "the URL names the account, not the key: {}",
            sent[0].path
        );
        assert_no_token(&o);
        // A world-readable env file is refused, naming the fix.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = env.handoff("mac-studio");
        c.args(["send", "--urgent", "--to", "linux-box", "again"]);
        let o = run(c);
        assert_eq!(o.code(), 69, "{}\n{}", o.out(), o.err());
        assert!(o.out().contains("chmod 600"), "{}", o.out());
        assert_eq!(twilio.sent().len(), 1);
    }
}
