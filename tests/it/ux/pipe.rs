//! A reader that goes away (`| head -1`, `| true`) ends handoff's output quietly, with the command's own
//! exit code and no panic.

use crate::support::{Env, OutputExt, handoff_bin, run};
use std::process::{Command, Stdio};

/// Runs `c` with its stdout a pipe whose reading end is closed before handoff writes a byte.
fn with_closed_stdout(mut c: Command) -> (i32, String) {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    let env = Env::new();
    for i in 0..3 {
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", &format!("note {i}")]);
        run(c).ok();
    }
    let cases: &[&[&str]] = &[
        &["completions", "bash"],
        &["log"],
        &["log", "--json"],
        &["man"],
        &["send", "--help"],
        &["sync", "--json"],
        &["doctor"],
        &["send", "--dry-run", "--to", "b", "x"],
    ];
    for args in cases {
        let mut c = env.handoff("a");
        c.args(*args);
        let (code, err) = with_closed_stdout(c);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_ne!(code, 101, "{args:?} panicked: {err}");
        assert!(code == 0 || args[0] == "doctor", "{args:?} exits with its own code, got {code}: {err}");
    }
}

#[test]
fn the_shell_pipelines_from_the_issue_exit_without_a_panic() {
    let env = Env::new();
    for i in 0..40 {
        let mut c = env.handoff("a");
        c.args(["send", "--to", "b", &format!("line {i}")]);
        run(c).ok();
    }
    for line in ["\"$H\" completions bash | true", "\"$H\" log | head -1"] {
        let mut c = Command::new("bash");
        c.args(["-c", &format!("{line}; exit ${{PIPESTATUS[0]}}")]);
        env.apply(&mut c);
        c.env("H", handoff_bin()).env("HANDOFF_MACHINE", "a");
        let o = run(c);
        assert!(!o.err().contains("panicked"), "{line}: {}", o.err());
        assert_eq!(o.code(), 0, "{line}: {}", o.err());
    }
}
