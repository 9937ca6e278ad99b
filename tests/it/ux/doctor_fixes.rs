//! Every ✗ line of `handoff doctor` names a fix: a droplet host that does not resolve, a droplet that is
//! down, a git remote that does not exist (a path, or a bare remote name like `origin`), a config with an
//! unknown key, a waiting outbox.

use crate::support::{Env, OutputExt, free_port, run};
use serde_json::Value;

/// `doctor` as text and as JSON; asserts every failed check names its fix in both, returns (text, json).
fn doctor_with_fixes(env: &Env) -> (String, Value) {
    let mut c = env.handoff("laptop");
    c.arg("doctor");
    let o = run(c);
    assert_eq!(o.code(), 1, "a failed check exits 1:\n{}\n{}", o.out(), o.err());
    let text = o.out();
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(!failed.is_empty(), "{text}");
    for l in &failed {
        assert!(l.contains(" — fix: "), "a ✗ line without its fix: {l}");
    }
    let mut c = env.handoff("laptop");
    c.args(["doctor", "--json"]);
    let j = run(c).json();
    for c in j["checks"].as_array().unwrap().iter().filter(|c| c["ok"] == false) {
        assert!(c["fix"].as_str().is_some_and(|f| f.len() > 10), "no fix: {c}");
    }
    (text, j)
}

fn fix_of(j: &Value, name: &str) -> String {
    let c =
        j["checks"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("{name}: {j}"));
    assert_eq!(c["ok"], false, "{c}");
    c["fix"].as_str().unwrap().to_string()
}

#[test]
fn every_failed_doctor_check_names_its_fix() {
    let mut env = Env::new();
    // a droplet host that does not resolve, and a git remote path that is not there
    let missing = env.path().join("srv/nope.git");
    let config = format!(
        "machine = \"laptop\"\n\n[git]\nremote = {:?}\ncheckout = \"~/claude-handoffs\"\n\n[droplet]\nhost = \"nosuchhost.invalid\"\ndir = \"/srv/drop\"\n",
        missing.display().to_string()
    );
    env.write_config(&config);
    let (_, j) = doctor_with_fixes(&env);
    let fix = fix_of(&j, "droplet");
    assert!(fix.contains("--droplet-host") && fix.contains("~/.ssh/config"), "{fix}");
    let fix = fix_of(&j, "git");
    assert!(fix.contains("git init --bare") && fix.contains("--git-remote"), "{fix}");

    // a git remote given as a bare remote name (`origin`, as in a checkout) and a droplet that is down
    std::fs::create_dir_all(env.home().join(".ssh")).unwrap();
    std::fs::write(
        env.home().join(".ssh/config"),
        format!("Host downhost\n    HostName 127.0.0.1\n    Port {}\n", free_port()),
    )
    .unwrap();
    env.var("SSH_AUTH_SOCK", "");
    env.write_config(
        &config
            .replace(&format!("{:?}", missing.display().to_string()), "\"origin\"")
            .replace("nosuchhost.invalid", "downhost"),
    );
    let (text, j) = doctor_with_fixes(&env);
    assert!(text.contains("✗ git:") && text.contains("✗ droplet:"), "{text}");
    assert!(fix_of(&j, "git").contains("--git-remote"), "{j}");
    assert!(fix_of(&j, "droplet").contains("ssh downhost"), "{j}");

    // a send queued for the down droplet: the outbox line says how to deliver it
    let f = env.path().join("trace.bin");
    std::fs::write(&f, [7u8; 64]).unwrap();
    let mut c = env.handoff("laptop");
    c.args(["send", "--to", "desk", "--via", "droplet", "-f", f.to_str().unwrap(), "x"]);
    assert_eq!(run(c).code(), 75);
    let (_, j) = doctor_with_fixes(&env);
    assert!(fix_of(&j, "outbox").contains("handoff flush"), "{j}");

    // a config handoff cannot read
    env.write_config("machine = \"laptop\"\nno_such_key = 1\n");
    let (_, j) = doctor_with_fixes(&env);
    assert!(fix_of(&j, "config").contains("handoff config example"), "{j}");
}

#[test]
fn a_fresh_machine_has_no_failed_git_check_before_its_first_document() {
    let env = Env::new();
    let mut c = env.handoff("laptop");
    c.args(["doctor", "--json"]);
    let o = run(c);
    let j = o.json();
    let git = j["checks"].as_array().unwrap().iter().find(|c| c["check"] == "git").unwrap().clone();
    assert_eq!(git["ok"], true, "{j:#}");
    assert!(git["detail"].as_str().unwrap().contains("created with the first one"), "{git}");
    assert_eq!(o.code(), 0, "a fresh machine's doctor is all ✓: {j:#}");
}
