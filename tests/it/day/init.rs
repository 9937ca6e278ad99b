//! `handoff init` by flags: from the bus env file and an rclone.conf to a config `doctor` accepts.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_from_an_env_file_and_rclone_conf_writes_a_config_doctor_accepts() {
    let bus = BusServer::start();
    let env = Env::new();
    let env_file = bus.write_env_file(&env);
    let drive_root = env.path().join("drive-root");
    // the alias's directory exists (drive never creates the directory holding its folder: an unmounted disk)
    std::fs::create_dir_all(&drive_root).unwrap();
    crate::support::rclone::write_conf(
        &env,
        &format!("[usb]\ntype = local\n\n[box]\ntype = alias\nremote = {}\n", drive_root.display()),
    );
    std::fs::set_permissions(env.path().join("config/rclone/rclone.conf"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    std::fs::create_dir_all(env.home().join(".ssh")).unwrap();
    std::fs::write(
        env.home().join(".ssh/config"),
        "Host droplet\n  HostName 192.0.2.7\nHost *\n  ServerAliveInterval 30\n",
    )
    .unwrap();

    // nothing chosen for drive or droplet by flags: init lists what it found and how to pick it
    let mut c = env.handoff("x");
    c.args(["init", "--name", "mac-studio", "--no-bus", "--yes", "--out"]).arg(env.path().join("probe.toml"));
    let o = run(c);
    o.ok();
    assert!(
        o.out().contains("usb (local)") && o.out().contains("--drive-remote") && o.out().contains("droplet"),
        "{}",
        o.out()
    );

    let mut c = env.handoff("x");
    c.args(["init", "--name", "mac-studio", "--drive-remote", "box", "--drive-folder", "handoffs", "--json"]);
    let o = run(c);
    o.ok();
    let j = o.json();
    let path = std::path::PathBuf::from(j["config"].as_str().unwrap());
    assert_eq!(path, env.path().join("config/handoff/config.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("env_file = \"~/.secrets/claude-bus.env\"") && text.contains("remote = \"box\""), "{text}");
    assert!(!text.contains(crate::support::bus::PASSWORD), "no secret in the config");
    assert_eq!(j["plan"]["drive"]["remote"], "box");
    assert_eq!(j["plan"]["bus_env_file"], "~/.secrets/claude-bus.env");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    let mut c = env.handoff("ignored");
    c.env_remove("HANDOFF_MACHINE").args(["doctor", "--send-test"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "doctor accepts what init wrote:\n{}\n{}", o.out(), o.err());
    assert!(
        o.out().contains("machine mac-studio") && o.out().contains("✓ drive") && o.out().contains("✓ send test"),
        "{}",
        o.out()
    );

    // never overwrites without --force; with it, the old one is kept as .bak
    let mut c = env.handoff("x");
    c.args(["init", "--name", "other", "--yes"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("already exists") && o.err().contains("--force"), "{}", o.err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let mut c = env.handoff("x");
    c.args(["init", "--name", "other", "--yes", "--force", "--droplet-host", "droplet"]);
    run(c).ok();
    assert!(std::fs::read_to_string(&path).unwrap().contains("host = \"droplet\""));
    assert_eq!(std::fs::read_to_string(path.with_extension("toml.bak")).unwrap(), text);

    // a drive remote that rclone.conf does not have is refused, naming the ones it has
    let mut c = env.handoff("x");
    c.args(["init", "--yes", "--force", "--drive-remote", "gdrive"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("gdrive") && o.err().contains("usb (local)"), "{}", o.err());
    // a world-readable env file is refused with the chmod fix
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = env.handoff("x");
    c.args(["init", "--yes", "--force"]);
    let o = run(c);
    assert_eq!(o.code(), 78);
    assert!(o.err().contains("chmod 600"), "{}", o.err());
}

#[test]
fn init_asks_on_a_terminal_and_enter_keeps_the_suggestion() {
    let env = Env::new();
    crate::support::rclone::write_conf(&env, "[usb]\ntype = local\n\n[box]\ntype = local\n");
    std::fs::create_dir_all(env.home().join(".ssh")).unwrap();
    std::fs::write(env.home().join(".ssh/config"), "Host droplet\n  HostName 192.0.2.7\n").unwrap();
    // a real pseudo-terminal (util-linux `script`): name, git remote (Enter = skip), remote #2, host by name
    let mut c = std::process::Command::new(crate::support::tool("script"));
    c.args(["-qec", &format!("{} init", crate::support::handoff_bin().display()), "/dev/null"]);
    env.apply(&mut c);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"studio\n\n2\ndroplet\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("name of this machine [") && out.contains("2) box (local)") && out.contains("1) droplet"),
        "{out}"
    );
    let text = std::fs::read_to_string(env.path().join("config/handoff/config.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(cfg["machine"].as_str(), Some("studio"));
    assert_eq!(cfg["drive"]["remote"].as_str(), Some("box"));
    assert_eq!(cfg["droplet"]["host"].as_str(), Some("droplet"));
    assert!(cfg.get("git").is_none() && cfg.get("bus").is_none(), "{text}");
}

#[cfg(all(feature = "email", feature = "slack", feature = "imessage", feature = "folder"))]
#[test]
fn init_flags_write_the_email_slack_imessage_and_folder_sections_and_the_page_order() {
    let env = Env::new();
    let share = env.path().join("nas");
    std::fs::create_dir_all(&share).unwrap();
    let out = env.path().join("c.toml");
    let mut c = env.handoff("x");
    c.args(["init", "--name", "mac-studio", "--no-bus", "--yes", "--email-imap", "imaps://imap.gmail.com:993"])
        .args(["--email-user", "me@gmail.com", "--email-drafts", "[Gmail]/Drafts", "--email-to", "me@gmail.com"])
        .args(["--email-cc", "Me at work <me@work.example>", "--slack", "--imessage-to", "+15552223333", "--folder"])
        .arg(&share)
        .args(["--page", "imessage", "--page", "slack", "--out"])
        .arg(&out);
    run(c).ok();
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "[email]",
        "\"[Gmail]/Drafts\"",
        "Me at work <me@work.example>",
        "[slack]",
        "[imessage]",
        "[folder]",
        "page = [\"imessage\", \"slack\"]",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // the written config is one handoff reads: doctor parses it (the checks themselves may fail here)
    let mut c = env.handoff("mac-studio");
    c.args(["--config"]).arg(&out).args(["--json", "doctor"]);
    let j = run(c).json();
    let config = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "config").unwrap().clone();
    assert_eq!(config["ok"], true, "{j:#}");
    let folder = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "folder").unwrap().clone();
    assert_eq!(folder["ok"], true, "{j:#}");
}

/// Each channel's own flags of `init`, as its module declares them (`handoff_channels::<name>::init`).
const CHANNEL_FLAGS: [(&str, bool, &[&str]); 8] = [
    ("git", cfg!(feature = "git"), &["--git-remote <URL>", "--git-checkout <DIR>"]),
    (
        "drive",
        cfg!(feature = "drive"),
        &["--drive-remote <REMOTE>", "--drive-folder <FOLDER>", "--rclone-config <PATH>"],
    ),
    ("droplet", cfg!(feature = "droplet"), &["--droplet-host <HOST>", "--droplet-dir <DIR>"]),
    (
        "email",
        cfg!(feature = "email"),
        &["--email-imap <URL>", "--email-user <USER>", "--email-drafts <FOLDER>", "--email-to", "--email-cc"],
    ),
    ("slack", cfg!(feature = "slack"), &["--slack "]),
    ("discord", cfg!(feature = "discord"), &["--discord "]),
    ("imessage", cfg!(feature = "imessage"), &["--imessage-to <TO>"]),
    ("folder", cfg!(feature = "folder"), &["--folder <PATH>"]),
];

#[test]
fn init_help_lists_the_flags_each_built_channel_declares_with_their_defaults_and_requirements() {
    let env = Env::new();
    let mut c = env.handoff("x");
    c.args(["init", "--help"]);
    let help = run(c).ok().out();
    for (name, built, flags) in CHANNEL_FLAGS {
        for flag in flags {
            assert_eq!(help.contains(flag), built, "{name}: {flag} listed iff built:\n{help}");
        }
    }
    // the defaults and the flags every build has, around the channels' own
    for want in ["[default: claude-handoffs]", "[default: /opt/claude-bus-files]", "[default: ~/claude-handoffs]"] {
        assert!(help.contains(want), "{want}:\n{help}");
    }
    for common in ["--no-bus", "--page <CHANNEL>", "--no-check"] {
        assert!(help.contains(common), "{common}:\n{help}");
    }
    // a channel's `requires` holds across the flattening: --email-imap without --email-user is a usage error
    if cfg!(feature = "email") {
        let mut c = env.handoff("x");
        c.args(["init", "--yes", "--no-bus", "--email-imap", "imaps://imap.example.com:993"]);
        let o = run(c);
        assert_eq!(o.code(), 2, "{}", o.err());
        assert!(o.err().contains("--email-user"), "{}", o.err());
    }
}

#[cfg(all(
    feature = "git",
    feature = "drive",
    feature = "droplet",
    feature = "email",
    feature = "discord",
    feature = "imessage",
    feature = "folder"
))]
#[test]
fn init_writes_hostile_flag_values_of_every_channel_as_one_toml_value_each() {
    let env = Env::new();
    crate::support::rclone::write_conf(&env, "[usb]\ntype = local\n");
    let out = env.path().join("c.toml");
    // quotes, backslashes, newlines and would-be section headers in every kind of value
    let remote = "file:///srv/h\"x.git\n[evil]\nx = 1";
    let drive_folder = "hand\\offs\"\n[sms]";
    let host = "box\r\n[droplet2]";
    let dir = "/srv/\"drop\"";
    let user = "me\"@example.com\n";
    let to = "A \"B\" <a@b.example>";
    let imessage = "+1555\"\n[slack]";
    let folder = env.path().join("nas \"x\"\n[y]");
    let page = "imessage\"]";
    let mut c = env.handoff("x");
    c.args(["--json", "init", "--name", "laptop", "--no-bus", "--yes", "--no-check", "--out"])
        .arg(&out)
        .args(["--git-remote", remote, "--drive-remote", "usb", "--drive-folder", drive_folder])
        .args(["--droplet-host", host, "--droplet-dir", dir, "--email-imap", "imaps://imap.example.com:993"])
        .args([
            "--email-user",
            user,
            "--email-to",
            to,
            "--email-cc",
            "\u{7}bell",
            "--discord",
            "--imessage-to",
            imessage,
        ])
        .arg("--folder")
        .arg(&folder)
        .args(["--page", page]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let plan = o.json()["plan"].clone();
    assert_eq!((plan["git"]["remote"].as_str(), plan["drive"]["folder"].as_str()), (Some(remote), Some(drive_folder)));
    assert_eq!(plan["droplet"]["host"].as_str(), Some(host));

    let text = std::fs::read_to_string(&out).unwrap();
    let cfg: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut sections: Vec<&str> = cfg.keys().map(String::as_str).collect();
    sections.sort();
    assert_eq!(
        sections,
        ["discord", "drive", "droplet", "email", "folder", "git", "imessage", "machine", "route"],
        "no value opened a section of its own:\n{text}"
    );
    let s = |table: &str, key: &str| cfg[table][key].as_str().unwrap_or_else(|| panic!("[{table}] {key}:\n{text}"));
    assert_eq!((s("git", "remote"), s("drive", "folder"), s("drive", "remote")), (remote, drive_folder, "usb"));
    assert_eq!((s("droplet", "host"), s("droplet", "dir")), (host, dir));
    assert_eq!((s("email", "user"), cfg["email"]["to"][0].as_str()), (user, Some(to)));
    assert_eq!(cfg["email"]["cc"][0].as_str(), Some("\u{7}bell"));
    assert_eq!((s("imessage", "to"), s("folder", "path")), (imessage, folder.to_str().unwrap()));
    assert_eq!(cfg["route"]["page"][0].as_str(), Some(page));
    assert!(cfg["discord"].as_table().is_some_and(|t| t.is_empty()), "the webhook URL is never written:\n{text}");
}
