//! Slack and Discord against harness servers that answer as the services document (`support::webhook_stub`):
//! pages with the bus id, `429`s waited out and delivered once, a deleted webhook as a permanent error
//! naming the fix, Discord's 2,000-character limit, `?wait=true` receipts, and pages escalating from a
//! failing SMS to Slack.

use crate::support::webhook_stub::WebhookStub;
use crate::support::{Env, OutputExt, run};
use serde_json::Value;

fn env_with(section: &str, var: &str, url: &str) -> Env {
    let mut env = Env::new();
    env.write_config(&format!("[{section}]\n\n[route]\npage = [\"{section}\"]\n"));
    env.var(var, url);
    env
}

fn urgent(env: &Env, text: &str) -> std::process::Output {
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--urgent", "--to", "linux-box", text]);
    run(c)
}

fn flush(env: &Env) -> std::process::Output {
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "flush"]);
    run(c)
}

fn step<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["receipt"]["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("{j:#}"))
}

fn bus_id(j: &Value) -> String {
    step(j, "inline")["receipt"]["message_id"].as_str().map(str::to_string).unwrap_or_else(|| panic!("{j:#}"))
}

#[cfg(feature = "slack")]
#[test]
fn slack_waits_out_a_429_then_posts_the_page_once_naming_the_bus_id() {
    let stub = WebhookStub::start();
    let env = env_with("slack", "SLACK_WEBHOOK_URL", &stub.slack_url());
    stub.rate_limit(&[1.0]);
    let o = urgent(&env, "<!channel> prod deploy is stuck & rolling back");
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let id = bus_id(&j);
    let page = step(&j, "page");
    assert_eq!(
        (page["status"].as_str(), page["receipt"]["channel"].as_str()),
        (Some("delivered"), Some("slack")),
        "{j:#}"
    );
    let posts = stub.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].text.contains(&format!("(bus msg {id})")), "{}", posts[0].text);
    assert!(
        posts[0].text.contains("&lt;!channel&gt;") && posts[0].text.contains("&amp;"),
        "mrkdwn escaped: {}",
        posts[0].text
    );
    let reqs = stub.requests();
    assert_eq!(reqs.iter().map(|r| r.2).collect::<Vec<_>>(), [429, 200]);
    assert!(reqs[1].0 - reqs[0].0 >= std::time::Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(stub.early_retries(), 0);
    // a later run never posts the delivered page again
    assert_eq!(flush(&env).code(), 0);
    assert_eq!(stub.posts().len(), 1);
    assert!(!o.out().contains(&stub.slack_url()) && !o.err().contains("x8Yw2Qp4"), "the webhook URL leaked");
}

#[cfg(feature = "slack")]
#[test]
fn a_deleted_slack_webhook_is_a_permanent_error_naming_the_fix() {
    let stub = WebhookStub::start();
    let env = env_with("slack", "SLACK_WEBHOOK_URL", &stub.slack_url());
    stub.delete();
    let o = urgent(&env, "prod down");
    assert_eq!(o.code(), 69, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let page = step(&j, "page");
    assert_eq!(page["status"], "failed", "{j:#}");
    let err = page["error"].as_str().unwrap();
    assert!(err.contains("404") && err.contains("SLACK_WEBHOOK_URL") && err.contains("new incoming webhook"), "{err}");
    assert!(!err.contains("x8Yw2Qp4"), "the webhook's secret part leaked: {err}");
    assert_eq!(step(&j, "inline")["status"], "delivered", "the bus post went");
    // doctor sees it too, without posting anything
    let o = run({
        let mut c = env.handoff("mac-studio");
        c.args(["--json", "doctor"]);
        c
    });
    let j = o.json();
    let check = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "slack").unwrap().clone();
    assert_eq!(check["ok"], false, "{j:#}");
    assert!(stub.posts().is_empty());
}

#[cfg(feature = "slack")]
#[test]
fn a_webhook_url_in_a_message_is_refused_like_a_token() {
    let stub = WebhookStub::start();
    let env = env_with("slack", "SLACK_WEBHOOK_URL", &stub.slack_url());
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--to", "linux-box", &format!("post here: {}", stub.slack_url())]);
    let o = run(c);
    assert_eq!(o.code(), 65, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("SLACK_WEBHOOK_URL"), "{}", o.out());
    // a real-looking webhook of any workspace is refused by its shape too
    let mut c = env.handoff("mac-studio");
    let other = ["https://hooks.slack.com/services/", "T024BE7LD/B01ABCDEF12/", "Zq3kWx8Rt5Yp2Lm9Nb4Vc7Hd"].concat();
    c.args(["--json", "send", "--to", "linux-box", &other]);
    assert_eq!(run(c).code(), 65);
    assert!(stub.posts().is_empty());
}

#[cfg(feature = "discord")]
#[test]
fn discord_honours_retry_after_from_the_body_and_the_receipt_carries_the_message_id() {
    let stub = WebhookStub::start();
    let env = env_with("discord", "DISCORD_WEBHOOK_URL", &stub.discord_url());
    stub.rate_limit(&[0.8]);
    let o = urgent(&env, "@everyone deploy stuck");
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let id = bus_id(&j);
    let posts = stub.posts();
    assert_eq!(posts.len(), 1);
    let msg_id = posts[0].id.clone().expect("posted with ?wait=true");
    let detail = step(&j, "page")["receipt"]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(&msg_id), "{detail}");
    assert!(posts[0].text.contains(&format!("(bus msg {id})")));
    assert_eq!(posts[0].payload["allowed_mentions"]["parse"], serde_json::json!([]), "no @everyone ping");
    let reqs = stub.requests();
    assert_eq!(reqs.iter().map(|r| r.2).collect::<Vec<_>>(), [429, 200]);
    assert!(reqs[1].0 - reqs[0].0 >= std::time::Duration::from_millis(800));
    assert_eq!(stub.early_retries(), 0);
    assert_eq!(flush(&env).code(), 0);
    assert_eq!(stub.posts().len(), 1, "delivered once");
}

#[cfg(feature = "discord")]
#[test]
fn a_deleted_discord_webhook_is_permanent_and_a_long_rate_limit_queues() {
    let stub = WebhookStub::start();
    let env = env_with("discord", "DISCORD_WEBHOOK_URL", &stub.discord_url());
    // a wait longer than handoff will sit through: queued for later, not posted, not failed
    stub.rate_limit(&[600.0]);
    let o = urgent(&env, "prod down");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(stub.posts().is_empty());
    stub.delete();
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--urgent", "--to", "linux-box", "again"]);
    let o = run(c);
    let j = o.json();
    let err = step(&j, "page")["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("deleted") && err.contains("DISCORD_WEBHOOK_URL"), "{j:#}");
}

#[cfg(feature = "discord")]
#[test]
fn discord_text_over_2000_characters_is_shortened_naming_the_bus_id() {
    use handoff_channels::discord::{DiscordChannel, DiscordConfig};
    use handoff_channels::{Channel, Context, Parcel, ParcelKind};
    let stub = WebhookStub::start();
    // the harness holds Discord to its limit: a 2,001-character post is refused with Discord's error JSON
    let r = reqwest::blocking::Client::new()
        .post(format!("{}?wait=true", stub.discord_url()))
        .json(&serde_json::json!({"content": "x".repeat(2001)}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().unwrap()["code"], 50035);
    let env = Env::new();
    let env_file = env.write_secret_file("discord.env", &format!("DISCORD_WEBHOOK_URL={}\n", stub.discord_url()));
    let cfg = DiscordConfig { env_file: Some(env_file), username: None, priority: None };
    let ch = DiscordChannel::from_config(&cfg, &Context::quiet("m", env.path().join("data"))).unwrap();
    let long = "é".repeat(4000);
    let parcel = Parcel {
        key: "k-long-1".into(),
        from: "m".into(),
        to: "any".into(),
        kind: ParcelKind::Text,
        title: None,
        body: long,
        tags: vec!["re:4711".into()],
        file: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let receipt = rt.block_on(ch.deliver(&parcel)).unwrap();
    let posts = stub.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text.chars().count(), 2000);
    assert!(posts[0].text.ends_with("the full text is bus message 4711]"), "{}", posts[0].text);
    assert!(receipt.detail.unwrap().contains(posts[0].id.as_deref().unwrap()));
    // the same key again: the ledger answers, Discord is not asked
    rt.block_on(ch.deliver(&parcel)).unwrap();
    assert_eq!(stub.posts().len(), 1);
}

#[cfg(all(feature = "slack", feature = "sms"))]
#[test]
fn an_urgent_page_escalates_from_a_failing_sms_to_slack_once() {
    use crate::support::twilio_stub::{ACCOUNT_SID, AUTH_TOKEN, Reply, TwilioStub};
    let twilio = TwilioStub::start();
    twilio.always(Some(Reply::twilio_error(500, 20500, "Internal Server Error")));
    let stub = WebhookStub::start();
    let mut env = Env::new();
    env.write_config(&format!(
        "[sms]\nfrom = \"+15550001111\"\nto = [\"+15552223333\"]\nbase_url = \"{}\"\n\n[slack]\n\n[route]\npage = [\"sms\", \"slack\"]\n",
        twilio.url
    ));
    env.var("TWILIO_SID", ACCOUNT_SID).var("TWILIO_TOKEN", AUTH_TOKEN).var("SLACK_WEBHOOK_URL", stub.slack_url());
    let o = urgent(&env, "prod is down\nmigration 17 hangs");
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let id = bus_id(&j);
    assert!(!twilio.requests().is_empty() && twilio.sent().is_empty(), "the SMS was tried and failed");
    assert!(twilio.requests().iter().all(|r| r.status == 500));
    let page = step(&j, "page");
    assert_eq!(page["receipt"]["channel"], "slack", "the receipt says which channel paged: {j:#}");
    let posts = stub.posts();
    assert_eq!(posts.len(), 1, "exactly one page");
    assert_eq!(posts[0].text, format!("mac-studio: prod is down (bus msg {id})"));
    assert_eq!(flush(&env).code(), 0);
    assert_eq!(stub.posts().len(), 1);
    assert!(twilio.sent().is_empty());
}

/// `send --via slack|discord TEXT`: the short message goes to the chat channel instead of the bus (the
/// router used to refuse it), escaped as any text for that service, once.
#[cfg(all(feature = "slack", feature = "discord"))]
#[test]
fn a_short_message_can_be_sent_via_slack_or_discord_instead_of_the_bus() {
    let stub = WebhookStub::start();
    let mut env = Env::new();
    env.write_config("[slack]\n\n[discord]\n");
    env.var("SLACK_WEBHOOK_URL", stub.slack_url());
    env.var("DISCORD_WEBHOOK_URL", stub.discord_url());
    for (via, n) in [("slack", 1), ("discord", 2)] {
        let mut c = env.handoff("mac-studio");
        c.args(["--json", "send", "--via", via, "--to", "linux-box", "<!here> build 812 is green"]);
        let o = run(c);
        assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
        let j = o.json();
        let inline = step(&j, "inline");
        assert_eq!(inline["receipt"]["channel"].as_str(), Some(via), "{j:#}");
        assert!(inline["receipt"]["message_id"].is_null(), "nothing went on the bus: {j:#}");
        let posts = stub.posts();
        assert_eq!(posts.len(), n, "{posts:?}");
        assert_eq!(posts[n - 1].service, via);
        assert!(posts[n - 1].text.contains("build 812 is green"), "{}", posts[n - 1].text);
    }
    assert!(stub.posts()[0].text.starts_with("&lt;!here&gt;"), "mrkdwn escaped: {}", stub.posts()[0].text);
    // a document still cannot go to a chat channel: refused before anything is posted
    let mut c = env.handoff("mac-studio");
    c.args(["send", "--via", "slack", "--doc", "--to", "linux-box", "# notes"]);
    let o = run(c);
    assert_eq!(o.code(), 78, "{}\n{}", o.out(), o.err());
    assert!(o.err().contains("cannot take a document"), "{}", o.err());
    assert_eq!(stub.posts().len(), 2);
    assert_eq!(flush(&env).code(), 0);
    assert_eq!(stub.posts().len(), 2, "a later flush posts nothing again");
}
