//! Issue 20: the person in the loop. Twilio's inbound webhook on the real `bus serve` (signed by Twilio's
//! own Python library), the urgent round trip through Prism, and the web inbox in a real chromium.

mod browser;
mod pages;
#[cfg(feature = "sms")]
mod round_trip;
mod twilio;

use crate::support::bus::{BusServer, PASSWORD, USER};
use crate::support::{free_port, tool};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// The Twilio auth token the test webhook checks signatures with.
pub const TOKEN: &str = "tw-inbound-test-token-4c1d";
/// The person the machines page (allowed to answer).
pub const ALICE: &str = "+15552223333";
/// Someone else (not allowed).
pub const MALLORY: &str = "+15559990000";
/// The Twilio number the pages come from.
pub const TWILIO_NUMBER: &str = "+15550001111";

/// `X-Twilio-Signature` for `url` and `params`, computed by the `twilio` package from PyPI.
pub fn twilio_sign(url: &str, params: &[(&str, &str)]) -> String {
    let python = tool("python3");
    let script = crate::support::repo_root().join("tests/it/inbox/sign.py");
    let map: serde_json::Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let input = serde_json::json!({ "token": TOKEN, "url": url, "params": map });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "signing with the twilio package failed (install it: `bash scripts/install-test-deps.sh`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bus with the Twilio webhook on, its public URL being its own loopback address; `ALICE` allowed.
pub fn webhook_bus() -> BusServer {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    BusServer::start_with(
        port,
        &["--twilio-webhook", "--public-url", &public, "--twilio-allow", ALICE],
        &[("TWILIO_TOKEN", TOKEN)],
    )
}

/// The URL Twilio signs for the test bus.
pub fn webhook_url(bus: &BusServer) -> String {
    format!("{}/twilio/sms", bus.url)
}

/// The parameters of an inbound SMS as Twilio posts them.
pub fn inbound<'a>(sid: &'a str, from: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", from),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("To", TWILIO_NUMBER),
    ]
}

/// POSTs `params` to the webhook with `signature` (none: no header); returns status and body.
pub fn post_sms(bus: &BusServer, params: &[(&str, &str)], signature: Option<&str>) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new().post(webhook_url(bus)).form(params);
    if let Some(s) = signature {
        req = req.header("X-Twilio-Signature", s);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Every message on the bus, oldest first.
pub fn all_messages(bus: &BusServer) -> Vec<Value> {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{}/messages?limit=500", bus.url))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["messages"].as_array().unwrap().clone()
}

/// Posts a message as `from` with `tags`; returns its id.
pub fn post(bus: &BusServer, from: &str, to: &str, body: &str, tags: &[&str]) -> String {
    let r = bus.post_json("/post", &serde_json::json!({ "from": from, "to": to, "body": body, "tags": tags }));
    assert!(r.status().is_success(), "{:?}", r.status());
    let v: Value = r.json().unwrap();
    id_of(&v)
}

/// A message's id as text (ids are numbers or strings on the wire).
pub fn id_of(m: &Value) -> String {
    match &m["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The tags of a message.
pub fn tags_of(m: &Value) -> Vec<String> {
    m["tags"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()).unwrap_or_default()
}
