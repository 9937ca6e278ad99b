//! The behaviour cases for channels that page a human (`send --urgent` with `[route] page = [<channel>]`),
//! each written once for every pager.

use super::cases::require;
use super::{Rig, ok, step};
use crate::support::{OutputExt, run};
use serde_json::Value;

/// `handoff --json send --urgent --to b <text>` as machine a.
fn urgent(rig: &Rig, text: &str) -> (std::process::Output, Value) {
    let mut c = rig.env.handoff("a");
    c.args(["--json", "send", "--urgent", "--to", "b", text]);
    let o = run(c);
    let j = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, j)
}

/// The bus id of an urgent send's message.
fn bus_id(j: &Value) -> String {
    let inline = step(j, "inline");
    assert_eq!(inline["status"], "delivered", "{j:#}");
    inline["receipt"]["message_id"].as_str().unwrap_or_else(|| panic!("{j:#}")).to_string()
}

fn pages(rig: &Rig) -> Vec<String> {
    (rig.pages.as_ref().expect("a pager's rig reads the pages it delivered"))()
}

/// Asserts `page` names the bus message `id` (the reader finds the whole message there).
fn names_bus_id(page: &str, id: &str) {
    assert!(page.contains(&format!("bus msg {id}")), "the page names bus message {id}: {page:?}");
}

pub fn arrives_once_naming_the_bus_id(rig: Rig) {
    require(&rig, rig.can.pages, "it pages no one");
    let (o, j) = urgent(&rig, "prod deploy is stuck\nmigration 17 hangs; rolled back to 1.3");
    ok(&o);
    let id = bus_id(&j);
    let page = step(&j, "page");
    assert_eq!(page["status"], "delivered", "{j:#}");
    assert_eq!(page["receipt"]["channel"], rig.channel, "the receipt says which channel paged: {j:#}");
    let got = pages(&rig);
    assert_eq!(got.len(), 1, "one page: {got:?}");
    names_bus_id(&got[0], &id);
    assert!(got[0].contains("prod deploy is stuck"), "{got:?}");
    // later runs never page again
    ok(&rig.flush());
    ok(&rig.flush());
    assert_eq!(pages(&rig).len(), 1, "paged exactly once");
}

pub fn text_arrives_intact(rig: Rig) {
    require(&rig, rig.can.pages, "it pages no one");
    let canary = rig.env.path().join("pwned");
    let first = format!(
        "it's \"quoted\" \\ back\\\"; do shell script \"touch {}\" $(id) `id` <b>&amp;</b> %s 😀",
        canary.display()
    );
    let text = format!("{first}\nsecond line\twith a tab\n\nthird");
    let (o, j) = urgent(&rig, &text);
    ok(&o);
    let id = bus_id(&j);
    let got = pages(&rig);
    assert_eq!(got.len(), 1, "one page however many lines the text has: {got:?}");
    assert!(got[0].contains(&first), "the line arrives byte for byte:\nsent {first:?}\ngot  {:?}", got[0]);
    names_bus_id(&got[0], &id);
    assert!(!canary.exists(), "the text ran a command");
    // the whole text, newlines and all, is on the bus where the page points
    let mut c = rig.env.handoff("a");
    c.args(["--json", "show", &id]);
    let o = run(c);
    ok(&o);
    assert!(o.out().contains(&serde_json::to_string(&text).unwrap()), "the bus holds the text intact: {}", o.out());
}

pub fn outage(mut rig: Rig) {
    require(&rig, rig.can.pages, "it pages no one");
    require(&rig, rig.can.go_down, "it has no server that can be stopped");
    (rig.set_up.as_mut().unwrap())(false);
    let (o, j) = urgent(&rig, "disk almost full on the build box");
    assert_eq!(o.code(), 75, "a page that cannot go out now is queued:\n{}\n{}", o.out(), o.err());
    let id = bus_id(&j);
    assert_eq!(step(&j, "page")["status"], "queued", "{j:#}");
    assert!(pages(&rig).is_empty(), "nothing paged while the service was down");
    (rig.set_up.as_mut().unwrap())(true);
    ok(&rig.flush());
    ok(&rig.flush());
    let got = pages(&rig);
    assert_eq!(got.len(), 1, "paged exactly once: {got:?}");
    names_bus_id(&got[0], &id);
}
