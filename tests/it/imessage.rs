//! The iMessage channel with an `osascript` stand-in on PATH that records its arguments (NUL-separated,
//! so every byte is kept): hostile text arrives as one argument, byte for byte, and the script it runs
//! is handoff's fixed one; with no `osascript` anywhere, doctor says the channel is unavailable and
//! nothing else fails.

use crate::support::{Env, OutputExt, run};

/// Puts an `osascript` stand-in in `<env>/bin` that writes its arguments to `<env>/osascript.args`.
fn stand_in(env: &mut Env) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.path().join("osascript.args");
    let script = format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n", record.display());
    std::fs::write(bin.join("osascript"), script).unwrap();
    std::fs::set_permissions(bin.join("osascript"), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.var("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    record
}

fn args(record: &std::path::Path) -> Vec<Vec<u8>> {
    let raw = std::fs::read(record).expect("osascript was run");
    raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(<[u8]>::to_vec).collect()
}

#[test]
fn hostile_text_reaches_osascript_as_one_argument_byte_for_byte() {
    use handoff_channels::imessage::{ImessageChannel, ImessageConfig, SCRIPT};
    use handoff_channels::{Channel, Context, Parcel, ParcelKind};
    let mut env = Env::new();
    let record = stand_in(&mut env);
    let pwned = env.path().join("pwned");
    let text = format!(
        "it's \"quoted\" \\ back\"; do shell script \"touch {}\"\nsecond line\t😀 ünïcödé $(id) `id` -e x",
        pwned.display()
    );
    let cfg =
        ImessageConfig { to: "+15552223333".into(), osascript: Some(env.path().join("bin/osascript")), priority: None };
    let ch = ImessageChannel::from_config(&cfg, &Context::quiet("m", env.path().join("data"))).unwrap();
    let parcel = Parcel {
        key: "page-1".into(),
        from: "m".into(),
        to: "any".into(),
        kind: ParcelKind::Page,
        title: None,
        body: text.clone(),
        tags: vec![],
        file: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(ch.deliver(&parcel)).unwrap();
    let a = args(&record);
    assert_eq!(a.len(), 3, "script, text, recipient: {a:?}");
    assert_eq!(std::fs::read_to_string(String::from_utf8(a[0].clone()).unwrap()).unwrap(), SCRIPT);
    assert_eq!(a[1], text.as_bytes());
    assert_eq!(a[2], b"+15552223333");
    assert!(!pwned.exists());
    // the same page again is not sent twice
    std::fs::remove_file(&record).unwrap();
    rt.block_on(ch.deliver(&parcel)).unwrap();
    assert!(!record.exists());
}

#[test]
fn an_urgent_send_pages_through_the_stand_in_with_the_bus_id() {
    let mut env = Env::new();
    let record = stand_in(&mut env);
    env.write_config("[imessage]\nto = \"me@icloud.com\"\n\n[route]\npage = [\"imessage\"]\n");
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "send", "--urgent", "--to", "linux-box", "it's \"down\"; do shell script \"id\" 😀"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let steps = j["receipt"]["steps"].as_array().unwrap();
    let id =
        steps.iter().find(|s| s["step"] == "inline").unwrap()["receipt"]["message_id"].as_str().unwrap().to_string();
    let a = args(&record);
    assert_eq!(
        String::from_utf8(a[1].clone()).unwrap(),
        format!("mac-studio: it's \"down\"; do shell script \"id\" 😀 (bus msg {id})")
    );
    assert_eq!(a[2], b"me@icloud.com");
}

#[test]
fn without_osascript_doctor_says_unavailable_and_everything_else_works() {
    let mut env = Env::new();
    let empty = env.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    env.var("PATH", empty.display().to_string());
    env.write_config("[imessage]\nto = \"+15552223333\"\n");
    let mut c = env.handoff("mac-studio");
    c.args(["--json", "doctor"]);
    let j = run(c).json();
    let checks = j["checks"].as_array().unwrap();
    let im = checks.iter().find(|c| c["check"] == "imessage").unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(im["ok"], false);
    assert!(im["detail"].as_str().unwrap().contains("unavailable"), "{im}");
    for c in checks.iter().filter(|c| c["check"] == "config" || c["check"] == "bus") {
        assert_eq!(c["ok"], true, "{c}");
    }
    // an ordinary send is untouched by the missing osascript
    let mut c = env.handoff("mac-studio");
    c.args(["send", "--to", "linux-box", "hello"]);
    run(c).ok();
}
