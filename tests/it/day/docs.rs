//! Completions and man page come from the clap definitions and work in the real shells.

use crate::support::{Env, OutputExt, handoff_bin, run};
use std::process::Command;

fn generate(env: &Env, args: &[&str]) -> String {
    let mut c = env.handoff("a");
    c.args(args);
    let o = run(c);
    o.ok();
    o.out()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_every_shell_gets_a_script() {
    let env = Env::new();
    let script = env.path().join("handoff.bash");
    std::fs::write(&script, generate(&env, &["completions", "bash"])).unwrap();
    // load it in a real bash and ask for completions of `handoff ho`
    let probe = format!(
        "source {}; COMP_WORDS=(handoff ho); COMP_CWORD=1; COMP_LINE='handoff ho'; COMP_POINT=10; _handoff handoff ho handoff; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let o = Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hooks");
    for (shell, marker) in
        [("zsh", "#compdef handoff"), ("fish", "complete -c handoff"), ("powershell", "Register-ArgumentCompleter")]
    {
        let s = generate(&env, &["completions", shell]);
        assert!(s.contains(marker) && s.contains("doctor"), "{shell}: {}", &s[..s.len().min(300)]);
    }
    let mut c = Command::new(handoff_bin());
    c.args(["completions", "tcsh"]);
    assert_eq!(run(c).code(), 2, "an unknown shell is a usage error");
}

#[test]
fn man_page_is_roff_listing_every_command() {
    let env = Env::new();
    let page = generate(&env, &["man"]);
    assert!(page.contains(".TH handoff 1"), "{}", &page[..page.len().min(300)]);
    for cmd in ["send", "sync", "fetch", "flush", "doctor", "hooks", "log", "init", "completions"] {
        assert!(page.contains(cmd), "{cmd} missing from the man page");
    }
    // it renders: groff reads it without warnings and shows the name section
    let page_file = env.path().join("handoff.1");
    std::fs::write(&page_file, &page).unwrap();
    let o = Command::new(crate::support::tool("groff"))
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page_file)
        .output()
        .unwrap();
    assert!(o.status.success() && o.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(crate::support::tool("groff"))
        .args(["-man", "-Tascii", "-P-c", "-P-b", "-P-u"])
        .arg(&page_file)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("NAME") && shown.contains("Hand work between"), "{shown}");
}
