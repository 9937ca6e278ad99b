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
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
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

fn channel(cfg: &SmsConfig, token: &str, data: &std::path::Path, policy: RetryPolicy) -> SmsChannel {
    let creds = Credentials::new(ACCOUNT_SID, token, None).unwrap();
    SmsChannel::new(cfg, creds, &Context::quiet("test-machine", data.to_path_buf()), policy).unwrap()
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
    assert!(!e.message.contains(AUTH_TOKEN) && !e.message.contains("wrong-token"), "secret in error: {e}");
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
    let r =
        block_on(sms.deliver(&page("k1", "mac-studio: deploy broke (bus msg 42)"))).expect("Prism accepts the page");
    assert_eq!(r.channel, "sms");
    let got = sids(&r);
    assert_eq!(got.len(), 2, "one message per number: {r:?}");
    assert!(got.iter().all(|s| s.starts_with("SM") && s.len() == 34), "{got:?}");

    // From a Messaging Service, with a page at Twilio's length limit and non-ASCII text.
    let mg = format!("MG{}", "0123456789abcdef".repeat(2));
    let cfg = config(&prism.url, &[ALICE], serde_json::json!({ "from": null, "messaging_service_sid": mg }));
    let sms2 = channel(&cfg, AUTH_TOKEN, data.path(), RetryPolicy::default());
    let long = format!("ü{}", "x".repeat(1599));
    block_on(sms2.deliver(&page("k2", &long))).expect("Prism accepts a Messaging Service page of 1600 characters");

    // The doctor check: an account lookup, nothing sent.
    let h = block_on(sms.health()).expect("account lookup accepted");
    assert!(h.check.contains("Twilio account AC…") && !h.check.contains(ACCOUNT_SID), "{h:?}");
    assert!(h.detail.as_deref().unwrap_or("").contains("active"), "{h:?}");

    // The look-up a retry makes after a lost answer (GET Messages.json?To=...&PageSize=20).
    let creds = Credentials::new(ACCOUNT_SID, AUTH_TOKEN, None).unwrap();
    let client = TwilioClient::new(prism.url.clone(), creds, RetryPolicy::default()).unwrap();
    let found = block_on(client.find_sent(ALICE, "a page never sent")).expect("Prism accepts the look-up");
    assert!(found.is_none(), "Prism's example message is not ours: {found:?}");

    assert_eq!(prism.requests_received(), 5, "2 + 1 messages, 1 account lookup, 1 message look-up:\n{}", prism.log());
    assert_eq!(prism.rejected(), 0, "{}", prism.log());
    assert!(prism.violations().is_empty(), "Prism found spec violations: {:#?}", prism.violations());
}

#[test]
fn prism_rejects_a_malformed_request_so_validation_is_live() {
    let prism = Prism::start();
    let client = reqwest::blocking::Client::new();
    let form = [("To", ALICE), ("From", FROM), ("Body", "hello")];
    let post = |account: &str, form: &[(&str, &str)]| {
        client
            .post(format!("{}/2010-04-01/Accounts/{account}/Messages.json", prism.url))
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
    assert!(text.contains("accountsid") && text.contains("pattern"), "{text}");
    // A Message without its required `To` is rejected too.
    assert_eq!(post(ACCOUNT_SID, &[("From", FROM), ("Body", "hello")]).status().as_u16(), 422);
    assert_eq!(prism.rejected(), 2, "the control request passed, the two malformed ones did not");
    let v = prism.violations();
    assert!(v.iter().any(|l| l.contains("accountsid")) && v.iter().any(|l| l.contains("'To'")), "{v:#?}");
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
    let sms = channel(&config(&stub.url, &[ALICE], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    for part in ["400", "Twilio error 21608", "is unverified", "https://www.twilio.com/docs/errors/21608"] {
        assert!(e.message.contains(part), "missing {part:?} in: {e}");
    }
    assert_eq!(stub.requests().len(), 1, "a 4xx is not retried");
    assert_no_secret(&e);
    // The request itself was what Twilio documents.
    let req = &stub.requests()[0];
    assert_eq!(req.path, format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    assert_eq!(req.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!((req.field("To"), req.field("From"), req.field("Body")), (Some(ALICE), Some(FROM), Some("hello")));
}

#[test]
fn stub_401_is_an_auth_error_and_never_shows_the_token() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(&config(&stub.url, &[ALICE, BOB], serde_json::json!({})), "wrong-token", data.path(), quick());
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("401") && e.message.contains("20003") && e.message.contains("TWILIO_TOKEN"), "{e}");
    assert_no_secret(&e);
    assert_eq!(stub.requests().len(), 1, "no retry, and no second number tried with refused credentials");
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
    let sms = channel(&config(&stub.url, &[ALICE], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    let r = block_on(sms.deliver(&page("k", "hello"))).expect("succeeds on the third attempt");
    let statuses: Vec<u16> = stub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 201]);
    assert_eq!(sids(&r), [format!("SM{:032x}", 1)], "the SID of the stub's first created message");
}

#[test]
fn stub_500_is_retried_then_reported_as_transient() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    stub.always(Some(Reply::twilio_error(500, 20500, "Internal Server Error")));
    let sms = channel(&config(&stub.url, &[ALICE], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    let e = block_on(sms.deliver(&page("k", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(e.message.contains("500") && e.message.contains("gave up after 3 attempts"), "{e}");
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
    stub.fail_number(BOB, Some(Reply::twilio_error(503, 20503, "Service Unavailable")));
    let sms = channel(&config(&stub.url, &[ALICE, BOB], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    let e = block_on(sms.deliver(&page("key-1", "hello"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.message.contains("+4…0123") && e.message.contains("did reach +1…3333"), "{e}");
    stub.fail_number(BOB, None);
    let r = block_on(sms.deliver(&page("key-1", "hello"))).unwrap();
    let to: Vec<_> = stub.sent().iter().map(|r| r.field("To").unwrap().to_string()).collect();
    assert_eq!(to, [ALICE, BOB], "Alice was not texted twice");
    assert!(r.detail.as_deref().unwrap().contains("+1…3333 (earlier)"), "{r:?}");
    assert_eq!(sms.ledger().used("test-machine").unwrap(), 1, "one page, one unit of budget");
}

#[test]
fn a_lost_answer_is_looked_up_instead_of_sending_the_page_twice() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(&config(&stub.url, &[ALICE], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    // Twilio creates the message but the answer never arrives: the retry finds it instead of resending.
    stub.lose_answers(1);
    let r = block_on(sms.deliver(&page("k1", "disk full"))).expect("found on retry");
    assert_eq!(stub.sent().len(), 1, "one text, not two");
    assert_eq!(sids(&r), [format!("SM{:032x}", 1)]);
    let methods: Vec<String> = stub.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET"], "the retry looked the message up");
    // The answer is lost on every in-process attempt (one attempt only here): a later run of the same
    // page looks it up first and does not text again.
    let once = RetryPolicy { attempts: 1, ..quick() };
    let sms1 = channel(&config(&stub.url, &[BOB], serde_json::json!({})), AUTH_TOKEN, data.path(), once);
    stub.lose_answers(1);
    let e = block_on(sms1.deliver(&page("k2", "disk full"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    block_on(sms1.deliver(&page("k2", "disk full"))).expect("the later run finds it");
    let to_bob = stub.sent().iter().filter(|r| r.field("To") == Some(BOB)).count();
    assert_eq!(to_bob, 1, "Bob got one text");
    // Without a lost answer there is nothing to look up: a fresh page is a single request.
    let before = stub.requests().len();
    block_on(sms1.deliver(&page("k3", "other page"))).unwrap();
    assert_eq!(stub.requests().len(), before + 1, "a fresh page is one POST");
}

#[test]
fn the_page_budget_refuses_once_spent_without_calling_twilio() {
    let stub = TwilioStub::start();
    let data = tempfile::tempdir().unwrap();
    let sms = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({ "max_pages_per_hour": 2 })),
        AUTH_TOKEN,
        data.path(),
        quick(),
    );
    block_on(sms.deliver(&page("a", "one"))).unwrap();
    block_on(sms.deliver(&page("b", "two"))).unwrap();
    let e = block_on(sms.deliver(&page("c", "three"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("page budget used up: 2 of 2") && e.message.contains("max_pages_per_hour"), "{e}");
    assert_eq!(stub.requests().len(), 2, "the refused page never reached Twilio");
    // A retry of a page already sent is not a new page.
    block_on(sms.deliver(&page("a", "one"))).unwrap();
    assert_eq!(stub.requests().len(), 2);
    // A failed page does not spend the budget: another machine's ledger is separate anyway, so check
    // that a page that reached nobody left the count alone.
    let other = tempfile::tempdir().unwrap();
    stub.always(Some(Reply::twilio_error(400, 21211, "Invalid 'To' Phone Number")));
    let sms2 = channel(
        &config(&stub.url, &[ALICE], serde_json::json!({ "max_pages_per_hour": 2 })),
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
    let sms = channel(&config(&stub.url, &[ALICE], serde_json::json!({})), AUTH_TOKEN, data.path(), quick());
    let e = block_on(sms.deliver(&page("k", &"y".repeat(1601)))).unwrap_err();
    assert!(e.message.contains("1601") && e.message.contains("1600"), "{e}");
    // what the channel takes is its capability, checked once by the executor before `deliver`
    assert!(!sms.capability().accepts(ParcelKind::Text, 5) && sms.capability().accepts(ParcelKind::Page, 5));
    let creds = Credentials::new(ACCOUNT_SID, AUTH_TOKEN, None).unwrap();
    let ctx = Context::quiet("m", data.path().to_path_buf());
    let e = SmsChannel::new(&config(&stub.url, &["555-222-3333"], serde_json::json!({})), creds, &ctx, quick())
        .err()
        .unwrap();
    assert!(e.message.contains("[sms] to") && e.message.contains("E.164"), "{e}");
    assert!(stub.requests().is_empty());
}

// ---- The urgent flow: `handoff send --urgent` with the real bus server ----

mod urgent;
