//! README's exit-code table, row by row: every example it gives is run here against the real binary (and a
//! real bus server where one is needed) and must exit with its row's code.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, free_port, repo_root, run};
use std::collections::BTreeMap;

/// The README's exit-code table: code → its "for example" column.
pub fn readme_table() -> BTreeMap<i32, String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme.split("### Exit codes").nth(1).expect("README has an Exit codes section");
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| "))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cols.get(1)?.parse().ok()?, cols.get(3)?.to_string()))
        })
        .collect()
}

/// An env whose bus env file names a port nothing listens on.
fn unreachable_bus_env() -> Env {
    let env = Env::new();
    env.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER=claude\nBUS_PASS=pw\nBUS_URL=http://127.0.0.1:{}\n", free_port()),
    );
    env
}

fn code(env: &Env, args: &[&str]) -> (i32, String) {
    let mut c = env.handoff("laptop");
    c.args(args);
    let o = run(c);
    (o.code(), format!("stdout:\n{}\nstderr:\n{}", o.out(), o.err()))
}

#[test]
fn every_example_in_the_readme_exit_code_table_exits_with_its_code() {
    let table = readme_table();
    assert_eq!(table.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 65, 69, 75, 77, 78], "{table:?}");
    let embedded = Env::new();
    let down = unreachable_bus_env();
    let bus = BusServer::start();
    let wrong_pw = Env::new();
    wrong_pw.write_secret_file(
        "home/.secrets/claude-bus.env",
        &format!("BUS_USER=claude\nBUS_PASS=not-the-password\nBUS_URL={}\n", bus.url),
    );
    let bad_config = Env::new();
    bad_config.write_config("[route]\ninline_mux = \"1KiB\"\n");
    let no_twilio = Env::new();
    no_twilio.write_config("[sms]\nfrom = \"+15550001111\"\nto = [\"+15552223333\"]\n");
    let missing = embedded.path().join("no-such-file.bin");
    let missing = missing.to_str().unwrap();
    let secret = "deploy with ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";

    // (code, the README's words for the case, the env, the command line)
    let cases: Vec<(i32, &str, &Env, Vec<&str>)> = vec![
        (0, "`handoff send \"hi\"`", &embedded, vec!["send", "hi"]),
        (1, "`handoff doctor` with a failed check", &down, vec!["doctor"]),
        (2, "`handoff send` with nothing to send", &embedded, vec!["send"]),
        (2, "`handoff log --since yesterday`", &embedded, vec!["log", "--since", "yesterday"]),
        (2, "an unknown flag", &embedded, vec!["send", "--no-such-flag", "x"]),
        (65, "`handoff send --file` of a missing file", &embedded, vec!["send", "--file", missing]),
        (65, "a message holding a secret", &embedded, vec!["send", secret]),
        (69, "`handoff sync` when the bus is unreachable", &down, vec!["sync"]),
        (69, "`handoff fetch ID` when the bus is unreachable", &down, vec!["fetch", "7"]),
        (75, "`handoff send` while the bus is down", &down, vec!["send", "--to", "desk", "later"]),
        (75, "`handoff flush` while it is still down", &down, vec!["flush"]),
        (77, "`handoff sync` with a wrong bus password", &wrong_pw, vec!["sync"]),
        (78, "a config file with an unknown key", &bad_config, vec!["sync"]),
        (78, "`handoff send --via drive` with no `[drive]`", &embedded, vec!["send", "--via", "drive", "x"]),
        (
            78,
            "`handoff send --urgent` with `[sms]` but no Twilio credentials",
            &no_twilio,
            vec!["send", "--urgent", "--to", "desk", "prod is down"],
        ),
    ];
    for (want, words, env, args) in cases {
        assert!(table[&want].contains(words), "README's row {want} does not name {words:?}: {}", table[&want]);
        let (got, out) = code(env, &args);
        assert_eq!(got, want, "{args:?} ({words}):\n{out}");
        // the same failure under --json: one JSON line with the same code
        if want != 0 {
            let mut c = env.handoff("laptop");
            c.args(&args).arg("--json");
            let o = run(c);
            assert_eq!(o.code(), want, "{args:?} --json");
            let v = o.json();
            assert_eq!((v["ok"].as_bool(), v["exit_code"].as_i64()), (Some(false), Some(want as i64)), "{args:?}: {v}");
        }
    }
}
