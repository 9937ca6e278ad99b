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

/// Runs `handoff ARGS` on a pseudo-terminal (util-linux `script`), so colour would be on; returns the bytes.
fn on_a_terminal(env: &Env, no_color: bool, args: &str) -> String {
    let mut c = Command::new(crate::support::tool("script"));
    c.args(["-qec", &format!("{} {args}", handoff_bin().display()), "/dev/null"]);
    env.apply(&mut c);
    c.env("HANDOFF_MACHINE", "a").env("BUS_URL", "http://127.0.0.1:9").env("BUS_PASS", "x");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
}

#[test]
fn no_color_turns_colour_off_on_a_terminal_for_help_and_logs() {
    let env = Env::new();
    let help = on_a_terminal(&env, false, "--help");
    assert!(help.contains("\u{1b}["), "help is coloured on a terminal: {help:?}");
    let help = on_a_terminal(&env, true, "--help");
    assert!(help.contains("Usage:") && !help.contains("\u{1b}["), "{help:?}");
    let logs = on_a_terminal(&env, false, "-vv doctor");
    assert!(logs.contains("DEBUG") && logs.contains("\u{1b}["), "{logs:?}");
    let logs = on_a_terminal(&env, true, "-vv doctor");
    assert!(logs.contains("DEBUG") && !logs.contains("\u{1b}["), "{logs:?}");
}

#[test]
fn every_subcommand_has_an_example_in_its_help() {
    fn subcommands(path: &[String]) -> Vec<Vec<String>> {
        let o = Command::new(handoff_bin()).args(path).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut out = Vec::new();
        let mut in_commands = false;
        for l in text.lines() {
            if l.starts_with("Commands:") {
                in_commands = true;
                continue;
            }
            if in_commands {
                if !l.starts_with("  ") {
                    break;
                }
                let name = l.split_whitespace().next().unwrap_or("");
                if l.starts_with("  ") && !l.starts_with("   ") && name != "help" {
                    let mut p = path.to_vec();
                    p.push(name.to_string());
                    out.push(p);
                }
            }
        }
        out
    }
    let mut todo = subcommands(&[]);
    let mut seen = 0;
    while let Some(p) = todo.pop() {
        let nested = subcommands(&p);
        if nested.is_empty() {
            let o = Command::new(handoff_bin()).args(&p).arg("--help").output().unwrap();
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("Example"),
                "`handoff {}` --help has no example",
                p.join(" ")
            );
            seen += 1;
        }
        todo.extend(nested);
    }
    assert!(seen >= 15, "found only {seen} commands");
}
