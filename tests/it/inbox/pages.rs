//! The inbox's pages without a browser, on both stores: search over bodies (FTS5 / PostgreSQL full text,
//! hostile queries included), threads, pointers, and marking a thread read as the person.

use super::*;
use crate::support::bus::StoreKind;

fn page(bus: &BusServer, path: &str) -> (u16, String) {
    let r = bus.get(path);
    (r.status().as_u16(), r.text().unwrap())
}

fn token(bus: &BusServer) -> String {
    let html = page(bus, "/inbox").1;
    html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string()
}

fn form_post(bus: &BusServer, path: &str, fields: &[(&str, &str)]) -> u16 {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}{path}", bus.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Origin", &bus.url)
        .form(fields)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn search_threads_and_mark_read(kind: StoreKind) {
    let bus = BusServer::start_on(kind);
    let root = post(&bus, "mac-studio", "human", "deploy stuck on migration seventeen", &["urgent"]);
    post(&bus, "linux-box", "human", "lunch order: noodles", &[]);
    let reply = post(&bus, "mac-studio", "human", "still stuck", &[&format!("re:{root}")]);

    let (status, html) = page(&bus, "/inbox?q=migration");
    assert_eq!(status, 200);
    let hits =
        html.split("class=\"hits\"").nth(1).expect("a hits section").split("class=\"conversation\"").next().unwrap();
    assert!(hits.contains("migration seventeen") && !hits.contains("noodles"), "{hits}");
    assert!(hits.contains("1 message(s)"), "{hits}");
    for hostile in ["\"", "migration\" OR \"", "*", "NEAR(a b)", "a AND", "'; DROP TABLE messages; --", "\u{7}"] {
        let q: String = url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
        assert_eq!(page(&bus, &format!("/inbox?q={q}")).0, 200, "query {hostile:?}");
    }
    assert_eq!(all_messages(&bus).len(), 3, "searching changed nothing");

    // the thread: root and reply together, urgent marked, both unread
    let (status, thread) = page(&bus, &format!("/inbox/t/{reply}"));
    assert_eq!(status, 200);
    assert!(thread.contains("migration seventeen") && thread.contains("still stuck"), "{thread}");
    assert!(thread.contains("urgent-badge") && thread.contains("Mark thread read (2)"), "{thread}");
    assert_eq!(page(&bus, "/inbox/t/999999").0, 404);

    let t = token(&bus);
    assert_eq!(form_post(&bus, "/inbox/read", &[("csrf", &t), ("id", &root)]), 303);
    let unread: Value = bus.get("/messages?to=human&unread_by=human").json().unwrap();
    let left: Vec<String> =
        unread["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, ["lunch order: noodles"], "only the other thread is still unread");
    assert!(!page(&bus, &format!("/inbox/t/{root}")).1.contains("Mark thread read"));
}

#[test]
fn inbox_search_threads_and_read_marks_on_sqlite() {
    search_threads_and_mark_read(StoreKind::Sqlite);
}

#[test]
fn inbox_search_threads_and_read_marks_on_postgres() {
    search_threads_and_mark_read(StoreKind::Postgres);
}

#[test]
fn inbox_pointers_show_what_where_size_hash_and_the_fetch_command() {
    let bus = BusServer::start();
    let pointer = handoff_channels::pointer::Pointer {
        title: Some("build logs".into()),
        note: None,
        items: vec![handoff_channels::pointer::PointerItem {
            channel: "droplet".into(),
            name: "build.log".into(),
            size: 1536,
            sha256: "ab".repeat(32),
            uri: "droplet:/opt/claude-bus-files/build.log".into(),
            plain: None,
        }],
    };
    let id = post(&bus, "mac-studio", "any", &pointer.to_body(), &["pointer"]);
    let html = page(&bus, &format!("/inbox/t/{id}")).1;
    for want in [
        "build.log",
        "droplet:/opt/claude-bus-files/build.log",
        "1.5 KiB",
        &"ab".repeat(32),
        &format!("handoff fetch {id}"),
    ] {
        assert!(html.contains(want), "{want} missing in {html}");
    }
    assert!(!html.contains("handoff-pointer/v1"), "the machine line is not shown");
}

#[test]
fn the_twilio_route_is_absent_unless_enabled_and_the_inbox_needs_the_password() {
    let bus = BusServer::start();
    let r =
        reqwest::blocking::Client::new().post(format!("{}/twilio/sms", bus.url)).form(&[("Body", "x")]).send().unwrap();
    assert_eq!(r.status().as_u16(), 401, "not enabled: an ordinary authenticated route that does not exist");
    let r = reqwest::blocking::Client::new().get(format!("{}/inbox", bus.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(all_messages(&bus).is_empty());
}
