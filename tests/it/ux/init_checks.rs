//! `handoff init` checks what it writes, before writing: a droplet host that does not resolve and a git
//! remote that does not exist are refused (nothing written, the old config untouched); a real sshd and a
//! real bare repository pass; a host that is only down now is said and written. What init writes points at
//! nothing a `cargo install` user lacks, and its refusals give init's own flags as the fix.

use crate::support::sshd::Sshd;
use crate::support::{Env, OutputExt, free_port, run};
use std::path::Path;

fn init(env: &Env, args: &[&str], out: &Path) -> std::process::Output {
    let mut c = env.handoff("laptop");
    c.args(["init", "--yes", "--no-bus", "--name", "laptop", "--out"]).arg(out).args(args);
    run(c)
}

fn bare_repo(at: &Path) {
    let o = std::process::Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(at).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn init_refuses_a_host_that_does_not_resolve_and_a_missing_git_remote_and_writes_nothing() {
    let env = Env::new();
    let out = env.path().join("config.toml");
    // a host that does not resolve: refused for good (78), named, with the fix; nothing written
    let o = init(&env, &["--droplet-host", "nosuchhost.invalid"], &out);
    assert_eq!(o.code(), 78, "{}\n{}", o.out(), o.err());
    let err = o.err();
    assert!(err.contains("nosuchhost.invalid") && err.contains("does not resolve"), "{err}");
    assert!(err.contains("nothing was written") && err.contains("--no-check"), "{err}");
    assert!(!err.contains("panicked") && !out.exists(), "nothing written: {err}");

    // the same under --json: one error document with the code
    let mut c = env.handoff("laptop");
    c.args(["--json", "init", "--yes", "--no-bus", "--droplet-host", "nosuchhost.invalid", "--out"]).arg(&out);
    let o = run(c);
    assert_eq!((o.code(), o.json()["exit_code"].as_i64()), (78, Some(78)), "{}", o.out());
    assert_eq!(o.json()["schema"], "handoff.error.v1");

    // a git remote path that is not there: refused, with the command that creates it
    let missing = env.path().join("srv/nope.git");
    let o = init(&env, &["--git-remote", missing.to_str().unwrap()], &out);
    assert_eq!(o.code(), 78, "{}", o.err());
    assert!(o.err().contains("does not exist") && o.err().contains("git init --bare"), "{}", o.err());
    assert!(!out.exists());

    // an existing config is left exactly as it was by a refused --force
    std::fs::write(&out, "machine = \"old\"\n").unwrap();
    let o = init(&env, &["--force", "--droplet-host", "nosuchhost.invalid"], &out);
    assert_eq!(o.code(), 78, "{}", o.err());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "machine = \"old\"\n");
    assert!(!env.path().join("config.toml.bak").exists(), "no backup made for a write that did not happen");

    // --no-check writes it unchecked (an offline set-up)
    let o = init(&env, &["--force", "--no-check", "--droplet-host", "nosuchhost.invalid"], &out);
    o.ok();
    assert!(std::fs::read_to_string(&out).unwrap().contains("host = \"nosuchhost.invalid\""));
}

#[test]
fn init_checks_a_real_sshd_and_bare_repo_and_says_what_it_could_not_check() {
    let sshd = Sshd::start();
    let mut env = Env::new();
    sshd.setup_client(&mut env, "droplet");
    let repo = env.path().join("srv/handoffs.git");
    bare_repo(&repo);
    let drop_dir = sshd.server_dir("drop");
    let out = env.path().join("config.toml");
    let mut c = env.handoff("laptop");
    c.args(["--json", "init", "--yes", "--no-bus", "--out"])
        .arg(&out)
        .args(["--droplet-host", "droplet", "--droplet-dir", drop_dir.to_str().unwrap()])
        .args(["--git-remote", repo.to_str().unwrap()]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let checks = o.json()["checks"].as_array().unwrap().clone();
    let by = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("{name}: {checks:?}"));
    assert_eq!(by("droplet")["ok"], true, "{checks:?}");
    assert!(by("droplet")["detail"].as_str().unwrap().contains("writable"), "{checks:?}");
    assert_eq!(by("git")["ok"], true, "{checks:?}");
    assert!(out.exists());

    // a host that is only down now (nothing listens on its port): written, and said so in the text output
    let dot = env.home().join(".ssh/config");
    let mut conf = std::fs::read_to_string(&dot).unwrap();
    conf.push_str(&format!("Host downhost\n    HostName 127.0.0.1\n    Port {}\n", free_port()));
    std::fs::write(&dot, conf).unwrap();
    let mut c = env.handoff("laptop");
    c.args(["init", "--yes", "--no-bus", "--force", "--droplet-host", "downhost", "--out"]).arg(&out);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(
        o.out().contains("? droplet: could not be checked now") && o.out().contains("handoff doctor"),
        "{}",
        o.out()
    );
    assert!(std::fs::read_to_string(&out).unwrap().contains("host = \"downhost\""));
}

#[cfg(feature = "drive")]
#[test]
fn what_init_writes_and_says_needs_nothing_but_the_binary() {
    let env = Env::new();
    crate::support::rclone::write_conf(&env, "[usb]\ntype = local\n");
    let out = env.path().join("config.toml");
    // an unknown remote: the fix is init's own flag, not a config key init itself would write
    let o = init(&env, &["--drive-remote", "gdrive"], &out);
    assert_eq!(o.code(), 78, "{}", o.err());
    let err = o.err();
    assert!(err.contains("gdrive") && err.contains("usb (local)") && err.contains("--drive-remote"), "{err}");
    assert!(!err.contains("[drive] remote"), "no advice to edit what init writes: {err}");
    let o = init(&env, &["--drive-remote", "usb"], &out);
    o.ok();
    assert!(!o.out().contains("[drive] remote in"), "{}", o.out());
    // the config points at what the binary prints, not at a file of the source tree
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("config/handoff.example.toml") && text.contains("handoff config example"), "{text}");
    let mut c = env.handoff("laptop");
    c.args(["config", "example"]);
    let example = run(c).ok().out();
    assert!(example.contains("[drive]") && example.contains("[droplet]") && example.contains("[git]"), "{example}");
    // the very example the unit tests parse, built in
    let in_tree = std::fs::read_to_string(crate::support::repo_root().join("config/handoff.example.toml")).unwrap();
    assert_eq!(example, in_tree);
}
