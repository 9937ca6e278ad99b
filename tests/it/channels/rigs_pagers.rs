//! Rigs for the channels that only page a human: SMS through Prism serving Twilio's own OpenAPI spec,
//! Slack and Discord through the harness's webhook servers, iMessage through an `osascript` stand-in. Each
//! env has `[route] page = [<channel>]` and the embedded bus (the page names its message id).

use super::{Can, Rig};
use crate::support::Env;
use crate::support::gate::Gate;

const PAGES: Can = Can { files: false, documents: false, pages: true, go_down: true };

/// An env paging through `channel` only, with `section` as its config.
fn pager_env(channel: &str, section: &str) -> Env {
    let env = Env::new();
    env.write_config(&format!("{section}\n[route]\npage = [\"{channel}\"]\n"));
    env
}

/// The Twilio numbers of the SMS rig.
const FROM: &str = "+15550001111";
const TO: &str = "+15552223333";

/// `[sms]` against Prism (Twilio's spec, request validation on) behind a gate that keeps what was sent:
/// Prism does not log bodies, so the pages are read from the requests that reached it.
#[cfg(feature = "sms")]
pub fn sms() -> Rig {
    use crate::support::prism::Prism;
    use crate::support::twilio_stub::{ACCOUNT_SID, AUTH_TOKEN, form_urlencoded};
    let prism = Prism::start();
    let port: u16 = prism.url.rsplit(':').next().unwrap().parse().unwrap();
    let gate = std::sync::Arc::new(Gate::start(port));
    let mut env = pager_env(
        "sms",
        &format!("[sms]\nfrom = \"{FROM}\"\nto = [\"{TO}\"]\nbase_url = \"http://127.0.0.1:{}\"\n", gate.port),
    );
    env.var("TWILIO_SID", ACCOUNT_SID).var("TWILIO_TOKEN", AUTH_TOKEN);
    let mut rig = Rig::new("sms", env, PAGES);
    let (g1, g2) = (gate.clone(), gate.clone());
    let prism = std::sync::Arc::new(prism);
    let p2 = prism.clone();
    rig.pages = Some(Box::new(move || {
        assert!(p2.violations().is_empty(), "Prism found requests that break Twilio's spec: {:?}", p2.violations());
        http_posts(&g1.sent(), "/Messages.json")
            .iter()
            .map(|body| {
                let form = form_urlencoded(body);
                assert!(form.iter().any(|(k, v)| k == "To" && v == TO), "{form:?}");
                form.into_iter().find(|(k, _)| k == "Body").map(|(_, v)| v).unwrap_or_default()
            })
            .collect()
    }));
    rig.set_up = Some(Box::new(move |up| g2.set_open(up)));
    rig._keep = vec![Box::new(prism), Box::new(gate)];
    rig
}

/// The bodies of the HTTP `POST`s to a path ending in `suffix` among the bytes clients sent (one entry
/// per connection, several requests per connection when it was kept alive).
fn http_posts(connections: &[Vec<u8>], suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for conn in connections {
        let mut rest: &[u8] = conn;
        while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let body_end = (end + 4 + len).min(rest.len());
            let body = String::from_utf8_lossy(&rest[end + 4..body_end]).into_owned();
            let target = head.lines().next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
            if head.starts_with("POST ") && target.split('?').next().unwrap_or_default().ends_with(suffix) {
                out.push(body);
            }
            rest = &rest[body_end..];
        }
    }
    out
}

/// A webhook pager (`slack` or `discord`) whose URL comes from `var`, through a gate to the harness's
/// webhook server; `decode` undoes the service's escaping.
#[cfg(any(feature = "slack", feature = "discord"))]
fn webhook(channel: &'static str, var: &str, decode: fn(&str) -> String) -> Rig {
    use crate::support::webhook_stub::{DISCORD_PATH, SLACK_PATH, WebhookStub};
    let stub = std::sync::Arc::new(WebhookStub::start());
    let port: u16 = stub.base.rsplit(':').next().unwrap().parse().unwrap();
    let gate = std::sync::Arc::new(Gate::start(port));
    let path = if channel == "slack" { SLACK_PATH } else { DISCORD_PATH };
    let mut env = pager_env(channel, &format!("[{channel}]\n"));
    env.var(var, format!("http://127.0.0.1:{}{path}", gate.port));
    let mut rig = Rig::new(channel, env, PAGES);
    let (s2, g2) = (stub.clone(), gate.clone());
    rig.pages =
        Some(Box::new(move || s2.posts().iter().filter(|p| p.service == channel).map(|p| decode(&p.text)).collect()));
    rig.set_up = Some(Box::new(move |up| g2.set_open(up)));
    rig._keep = vec![Box::new(stub), Box::new(gate)];
    rig
}

/// `[slack]` with an incoming webhook; pages are mrkdwn, escaped as Slack documents (`&amp;`, `&lt;`, `&gt;`).
#[cfg(feature = "slack")]
pub fn slack() -> Rig {
    webhook("slack", "SLACK_WEBHOOK_URL", |t| t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

/// `[discord]` with a webhook; `content` is shown as sent.
#[cfg(feature = "discord")]
pub fn discord() -> Rig {
    webhook("discord", "DISCORD_WEBHOOK_URL", str::to_string)
}

/// `[imessage]` with an `osascript` stand-in that records each run's arguments (NUL-separated, one file
/// per run, so every byte is kept). There is no server: the outage case does not apply.
#[cfg(feature = "imessage")]
pub fn imessage() -> Rig {
    use std::os::unix::fs::PermissionsExt;
    let mut env = pager_env("imessage", "[imessage]\nto = \"+15552223333\"\n");
    let bin = env.path().join("bin");
    let runs = env.path().join("osascript-runs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&runs).unwrap();
    let script = format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}/run.'$$\n", runs.display());
    std::fs::write(bin.join("osascript"), script).unwrap();
    std::fs::set_permissions(bin.join("osascript"), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.var("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    let mut rig = Rig::new("imessage", env, Can { go_down: false, ..PAGES });
    rig.pages = Some(Box::new(move || {
        let mut files: Vec<_> = std::fs::read_dir(&runs).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let raw = std::fs::read(f).unwrap();
                let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                // the fixed script, then the text, then the recipient: each one argument
                assert_eq!(args.get(2).copied(), Some(&b"+15552223333"[..]), "{:?}", String::from_utf8_lossy(&raw));
                String::from_utf8(args[1].to_vec()).unwrap()
            })
            .collect()
    }));
    rig
}
