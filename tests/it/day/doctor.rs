//! `handoff doctor` against real services: a complete working setup is all ✓; a wrong bus password, a
//! stopped sshd, a missing rclone remote and a world-readable secret file are each named with their fix.

use crate::support::bus::{BusServer, PASSWORD, USER};
use crate::support::prism::Prism;
use crate::support::rclone::{self, Kind};
use crate::support::sshd::Sshd;
use crate::support::twilio_stub::{ACCOUNT_SID, AUTH_TOKEN};
use crate::support::{Env, OutputExt, run};
use serde_json::Value;
use std::process::Command;

const ALIAS: &str = "droplet";

fn doctor(env: &Env, extra: &[&str]) -> (i32, Value, String) {
    let mut c = env.handoff("mac-studio");
    c.arg("doctor").args(extra).arg("--json");
    let o = run(c);
    let j = o.json();
    let mut c = env.handoff("mac-studio");
    c.arg("doctor").args(extra);
    let text = run(c);
    assert_eq!(text.code(), o.code(), "text and --json agree on the exit code");
    (o.code(), j, text.out())
}

fn check<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {j:#}"))
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn git_bare(path: &std::path::Path) {
    let o = Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_complete_setup_is_all_green_and_each_breakage_is_named_with_its_fix() {
    let bus = BusServer::start();
    let mut sshd = Sshd::start();
    let webdav = rclone::Server::start(Kind::Webdav);
    let prism = Prism::start();
    let mut env = Env::new();
    let env_file = bus.write_env_file(&env);
    sshd.setup_client(&mut env, ALIAS);
    let conf = rclone::write_conf(&env, &webdav.section("dav", false));
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bare = env.path().join("srv/handoffs.git");
    git_bare(&bare);
    let drop_dir = sshd.server_dir("drop");
    env.var("TWILIO_SID", ACCOUNT_SID).var("TWILIO_TOKEN", AUTH_TOKEN);
    let config = format!(
        "machine = \"mac-studio\"\n\n[git]\nremote = \"file://{}\"\ncheckout = \"~/claude-handoffs\"\n\n[drive]\nremote = \"dav\"\nfolder = \"handoffs\"\n\n[droplet]\nhost = \"{ALIAS}\"\ndir = \"{}\"\n\n[sms]\nfrom = \"+15550001111\"\nto = [\"+15552223333\"]\nbase_url = \"{}\"\n",
        bare.display(),
        drop_dir.display(),
        prism.url
    );
    env.write_config(&config);

    let (code, j, text) = doctor(&env, &["--send-test"]);
    assert_eq!(code, 0, "{j:#}\n{text}");
    assert_eq!(j["ok"], true);
    for name in [
        "config",
        "secrets: bus env file",
        "secrets: rclone.conf",
        "bus",
        "git",
        "drive",
        "droplet",
        "sms",
        "send test",
        "outbox",
    ] {
        assert_eq!(check(&j, name)["ok"], true, "{name}: {j:#}");
    }
    assert!(!text.contains('✗') && text.lines().filter(|l| l.starts_with('✓')).count() >= 10, "{text}");
    assert!(check(&j, "send test")["detail"].as_str().unwrap().contains("acked"), "{j:#}");
    assert!(check(&j, "drive")["detail"].as_str().unwrap().contains("writable"), "{j:#}");
    assert!(check(&j, "droplet")["detail"].as_str().unwrap().contains("writable"), "{j:#}");
    assert!(!walk(&drop_dir).iter().any(|p| p.contains(".handoff-doctor-")), "the droplet probe is removed again");
    let served: Vec<_> = walk(&webdav.root);
    assert!(!served.iter().any(|p| p.contains(".handoff-doctor-")), "the write probe is deleted again: {served:?}");
    // the scratch message went from this machine to itself and is already read: nothing for anyone
    let unread = bus.get("/messages?unread_by=mac-studio").json::<Value>().unwrap();
    assert!(unread["messages"].as_array().unwrap().is_empty(), "{unread:#}");
    let mut c = env.handoff("linux-box");
    c.args(["sync", "--json"]);
    assert!(
        run(c).json()["sync"]["messages"].as_array().unwrap().is_empty(),
        "other machines never see the scratch message"
    );

    // break three things: wrong bus password, stopped sshd, a remote that is not in rclone.conf
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER={USER}\nBUS_PASS=not-{PASSWORD}\nBUS_URL={}\n", bus.url),
    );
    sshd.stop();
    env.write_config(&config.replace("remote = \"dav\"", "remote = \"gdrive\""));
    let (code, j, text) = doctor(&env, &[]);
    assert_ne!(code, 0, "{text}");
    assert_eq!(j["ok"], false);
    let b = check(&j, "bus");
    assert_eq!(b["ok"], false);
    assert!(b["detail"].as_str().unwrap().contains("refused the credentials"), "{b:#}");
    assert!(b["fix"].as_str().unwrap().contains(&env_file.display().to_string()), "the fix names the env file: {b:#}");
    let d = check(&j, "droplet");
    assert_eq!(d["ok"], false);
    assert!(d["detail"].as_str().unwrap().contains(ALIAS), "{d:#}");
    let r = check(&j, "drive");
    assert_eq!(r["ok"], false);
    let rd = r["detail"].as_str().unwrap();
    assert!(
        rd.contains("gdrive") && rd.contains("dav") && rd.contains("rclone config"),
        "names the missing remote, the ones that exist and the fix: {r:#}"
    );
    for name in ["git", "sms", "config"] {
        assert_eq!(check(&j, name)["ok"], true, "{name} still fine: {j:#}");
    }
    for bad in ["bus", "droplet", "drive"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("✗ {bad}:"))), "{bad} line in:\n{text}");
    }
    assert!(
        !text.contains(PASSWORD) && !serde_json::to_string(&j).unwrap().contains(AUTH_TOKEN),
        "no secret in the output"
    );
}

#[test]
fn a_down_bus_and_a_readable_secret_file_get_their_fixes() {
    let mut bus = BusServer::start();
    let env = Env::new();
    let env_file = bus.write_env_file(&env);
    let conf = rclone::write_conf(&env, "[here]\ntype = local\n");
    env.write_config(&format!("[drive]\nremote = \"here\"\nfolder = \"{}\"\n", env.path().join("drive").display()));
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    bus.kill();
    let (code, j, text) = doctor(&env, &["--send-test"]);
    assert_eq!(code, 1, "{text}");
    let b = check(&j, "bus");
    assert_eq!(b["ok"], false);
    assert!(b["detail"].as_str().unwrap().contains("cannot reach the bus"), "{b:#}");
    let fix = b["fix"].as_str().unwrap();
    assert!(fix.contains("handoff bus serve") && fix.contains(&env_file.display().to_string()), "{fix}");
    assert_eq!(check(&j, "send test")["ok"], false);
    let s = check(&j, "secrets: rclone.conf");
    assert_eq!(s["ok"], false);
    assert_eq!(s["fix"], format!("chmod 600 {}", conf.display()));
    assert_eq!(check(&j, "secrets: bus env file")["ok"], true);
    assert!(text.contains(&format!("— fix: chmod 600 {}", conf.display())), "{text}");
}

#[test]
fn doctor_says_which_bus_it_uses_and_where_that_came_from() {
    let bus = BusServer::start();
    let config_line = |env: &Env| {
        let (_, j, _) = doctor(env, &[]);
        check(&j, "config")["detail"].as_str().unwrap().to_string()
    };
    // no config file, the bus from the conventional env file: named, never "embedded default"
    let env = Env::new();
    let env_file = bus.write_env_file(&env);
    let line = config_line(&env);
    assert!(
        line.contains("no config file")
            && line.contains(&format!("bus {} (from BUS_URL in the env file {})", bus.url, env_file.display())),
        "{line}"
    );
    assert!(!line.contains("embedded"), "a bus is in use: {line}");

    // BUS_URL in the environment wins over the file, and says so
    let mut env = Env::new();
    bus.write_env_file(&env);
    env.var("BUS_URL", bus.url.clone());
    assert!(config_line(&env).contains(&format!("bus {} (from BUS_URL in the environment)", bus.url)));

    // [bus] url in the config file
    let env = Env::new();
    bus.write_env_file(&env);
    let config = env.write_config(&format!("[bus]\nurl = {:?}\n", bus.url));
    let line = config_line(&env);
    assert!(line.contains(&format!("(from [bus] url in {})", config.display())), "{line}");

    // nothing anywhere: the embedded default's local store, by its path
    let line = config_line(&Env::new());
    assert!(line.contains("bus: the embedded default's local store") && line.contains("bus.sqlite"), "{line}");
}
