//! The email channel against a real IMAP server (dovecot on loopback, see `support::dovecot`): a
//! document becomes a draft with the configured To/Cc, a retry after a lost answer leaves one draft, a
//! machine with only `[email]` is briefed by `sync`, a wrong password exits 77 naming the server, and a
//! stopped server queues the send (75) until `flush` delivers it once.

use crate::support::dovecot::{Dovecot, PASSWORD, USER};
use crate::support::tcp_cut::TcpCut;
use crate::support::{Env, OutputExt, run};

/// An env whose config has only `[email]` (to `url`), trusting the server's certificate.
fn env(imap: &Dovecot, url: &str, password: &str) -> Env {
    let mut env = Env::new();
    env.write_config(&format!(
        "[email]\nimap = \"{url}\"\nuser = \"{USER}\"\ndrafts = \"Drafts\"\nto = [\"{USER}\"]\ncc = [\"alice@work.example\", \"Alice Phone <alice@phone.example>\"]\n"
    ));
    env.var("SSL_CERT_FILE", imap.ca().display().to_string()).var("HANDOFF_IMAP_PASSWORD", password);
    env
}

fn send_doc(env: &Env, title: &str, text: &str) -> std::process::Output {
    let doc = env.path().join("doc.md");
    std::fs::write(&doc, text).unwrap();
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--doc", "--via", "email", "--to", "linux-box", "--title", title]).arg(&doc);
    run(c)
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn a_document_becomes_one_draft_with_to_and_cc_and_a_mail_only_machine_is_briefed() {
    let imap = Dovecot::start();
    let a = env(&imap, &imap.url, PASSWORD);
    let text = "# Release plan\n\nship 1.4 on Monday; migration 17 first.\n\"quotes\" and é😀\n";
    let o = send_doc(&a, "Release plan", text);
    assert_eq!(o.code(), 0, "{}\n{}\n{}", o.out(), o.err(), imap.log());
    let drafts = imap.drafts();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    let (flags, raw) = &drafts[0];
    assert!(flags.contains('D'), "flagged \\Draft: {flags:?}");
    assert_eq!(header(raw, "Subject"), Some("handoff: Release plan"));
    assert_eq!(header(raw, "To"), Some(format!("<{USER}>").as_str()));
    let cc = header(raw, "Cc").unwrap();
    assert!(cc.contains("alice@work.example") && cc.contains("alice@phone.example"), "{cc}");
    let key = header(raw, "X-Handoff-Key").unwrap();
    let receipt = o.json();
    let step = &receipt["receipt"]["steps"][0];
    assert_eq!(step["receipt"]["uri"], format!("email:{key}"), "{receipt:#}");
    assert!(!o.out().contains(PASSWORD) && !o.err().contains(PASSWORD));

    // machine B: a new machine with only [email] configured (no bus credentials at all)
    let b = env(&imap, &imap.url, PASSWORD);
    let o = run({
        let mut c = b.handoff("linux-box");
        c.args(["--json", "sync"]);
        c
    });
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let out = o.out();
    assert!(out.contains("Release plan") && out.contains("migration 17 first"), "{out}");
    assert!(out.contains(&format!("email:{key}")), "{out}");
    // the cursor moved: nothing new the second time
    let o = run({
        let mut c = b.handoff("linux-box");
        c.args(["--json", "sync"]);
        c
    });
    assert!(!o.out().contains("migration 17 first"), "shown again: {}", o.out());
    // the sender does not see its own draft
    let o = run({
        let mut c = a.handoff("mac-studio");
        c.args(["--json", "sync"]);
        c
    });
    assert!(!o.out().contains("migration 17 first"), "{}", o.out());
}

#[test]
fn a_retry_after_a_lost_answer_leaves_one_draft() {
    let imap = Dovecot::start();
    let relay = TcpCut::start(imap.port);
    let env = env(&imap, &format!("imaps://127.0.0.1:{}", relay.port), PASSWORD);
    // the document is large enough that the cut falls inside the APPEND, after the server has the draft
    let text = format!("# Big brief\n{}\n", "line of the brief, long enough to matter\n".repeat(8000));
    relay.cut_after(Some(200_000));
    let o = send_doc(&env, "Big brief", &text);
    assert_eq!(o.code(), 75, "the lost answer leaves the send queued:\n{}\n{}", o.out(), o.err());
    assert!(relay.cuts.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the answer was really cut");
    assert_eq!(imap.drafts().len(), 1, "the server stored the draft whose answer was lost");
    relay.cut_after(None);
    let o = run({
        let mut c = env.handoff("mac-studio");
        c.args(["--json", "flush"]);
        c
    });
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("already there"), "found by its key, not appended again: {}", o.out());
    assert_eq!(imap.drafts().len(), 1, "one draft after the retry");
}

#[test]
fn a_wrong_password_exits_77_naming_the_server() {
    let imap = Dovecot::start();
    let env = env(&imap, &imap.url, "not-the-password");
    let o = send_doc(&env, "x", "body");
    assert_eq!(o.code(), 77, "{}\n{}", o.out(), o.err());
    let all = format!("{}{}", o.out(), o.err());
    assert!(all.contains(&format!("127.0.0.1:{}", imap.port)) && all.contains("HANDOFF_IMAP_PASSWORD"), "{all}");
    assert!(!all.contains("not-the-password"), "the password leaked: {all}");
    assert!(imap.drafts().is_empty());
    // doctor says the same, without sending anything
    let o = run({
        let mut c = env.handoff("mac-studio");
        c.args(["--json", "doctor"]);
        c
    });
    let j = o.json();
    let check = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "email").unwrap().clone();
    assert_eq!(check["ok"], false, "{j:#}");
    assert!(imap.drafts().is_empty());
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let imap = Dovecot::start();
    let mut env = env(&imap, &imap.url, PASSWORD);
    env.var("SSL_CERT_FILE", "/nonexistent-ca.pem");
    let o = send_doc(&env, "x", "body");
    assert_ne!(o.code(), 0);
    assert!(format!("{}{}", o.out(), o.err()).contains("TLS"), "{}\n{}", o.out(), o.err());
    assert!(imap.drafts().is_empty(), "nothing is sent over an unverified connection");
}

#[test]
fn a_stopped_server_queues_the_send_then_flush_delivers_it_once() {
    let mut imap = Dovecot::start();
    let env = env(&imap, &imap.url, PASSWORD);
    imap.stop();
    let o = send_doc(&env, "While down", "sent while the server was stopped");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    imap.restart();
    for _ in 0..2 {
        let o = run({
            let mut c = env.handoff("mac-studio");
            c.args(["--json", "flush"]);
            c
        });
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    }
    let drafts = imap.drafts();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    assert_eq!(header(&drafts[0].1, "Subject"), Some("handoff: While down"));
}

#[test]
fn fetch_keeps_to_fetch_max_and_refuses_a_draft_larger_than_its_pointer_claims() {
    let imap = Dovecot::start();
    let a = env(&imap, &imap.url, PASSWORD);
    let cfg = std::fs::read_to_string(a.path().join("config/handoff/config.toml")).unwrap();
    a.write_config(&format!("{cfg}\n[route]\nfetch_max = \"10KiB\"\n"));
    let small = "# small\nfits under fetch_max\n".to_string();
    let large = format!("# large\n{}", "a line of the long brief, \"quoted\" é\n".repeat(2_000));
    for (title, text) in [("Small", &small), ("Large", &large)] {
        let o = send_doc(&a, title, text);
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    }
    assert_eq!(imap.drafts().len(), 2);

    // sync --fetch downloads what fits in [route] fetch_max and lists the rest
    let out = a.path().join("auto");
    let o = run({
        let mut c = a.handoff("linux-box");
        c.args(["--json", "sync", "--fetch", "--out"]).arg(&out);
        c
    });
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let fetched: Vec<&str> =
        j["sync"]["fetched"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fetched, ["Small.md"], "{j:#}");
    let notes = j["sync"]["notes"].to_string();
    assert!(notes.contains("not fetched") && notes.contains("fetch_max"), "{notes}");
    assert_eq!(std::fs::read_to_string(j["sync"]["fetched"][0]["path"].as_str().unwrap()).unwrap(), small);
    let mut written = Vec::new();
    crate::channels::visible_files(&out, &mut written);
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["Small.md"], "nothing of the large draft was written: {written:?}");

    // a pointer that claims less than the draft holds: refused, nothing written
    let key = imap
        .drafts()
        .iter()
        .find(|(_, raw)| header(raw, "Subject") == Some("handoff: Large"))
        .and_then(|(_, raw)| header(raw, "X-Handoff-Key").map(str::to_string))
        .unwrap();
    use sha2::Digest;
    for claimed in [large.len() as u64 - 1, 100] {
        let pointer = handoff_channels::Pointer {
            title: None,
            note: None,
            items: vec![handoff_channels::PointerItem {
                channel: "email".into(),
                name: "large.md".into(),
                size: claimed,
                sha256: hex::encode(sha2::Sha256::digest(large.as_bytes())),
                uri: format!("email:{key}"),
                plain: None,
            }],
        };
        let got = a.path().join(format!("got-{claimed}"));
        let o = run({
            let mut c = a.handoff("linux-box");
            c.args(["--json", "fetch", &pointer.to_body(), "--out"]).arg(&got);
            c
        });
        assert_ne!(o.code(), 0, "a draft larger than its pointer claims was fetched: {}", o.out());
        let text = format!("{}{}", o.out(), o.err());
        assert!(text.contains("holds more than") && text.contains(&format!("{claimed} bytes")), "{text}");
        let left: Vec<_> =
            std::fs::read_dir(&got).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "a refused fetch leaves nothing: {left:?}");
    }
}
