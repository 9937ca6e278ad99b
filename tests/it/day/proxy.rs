//! `bus serve --trusted-proxy`: behind nginx every request comes from the proxy's address, so the
//! failed-login limiter must key on the forwarded client — but only when the peer is the trusted proxy.

use crate::support::bus::{BusServer, PASSWORD, USER};
use crate::support::handoff_bin;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const LIMIT: usize = 20;

fn get(url: &str, pass: &str, forwarded: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("{url}/health"))
        .basic_auth(USER, Some(pass))
        .header("X-Forwarded-For", forwarded)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn forwarded_clients_are_limited_one_by_one_only_behind_a_trusted_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(handoff_bin())
        .args(["bus", "serve", "--listen", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1", "--data"])
        .arg(tmp.path().join("bus"))
        .env("BUS_PASS", PASSWORD)
        .env("BUS_USER", USER)
        .env("HOME", tmp.path())
        .env_remove("HANDOFF_TRUSTED_PROXY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();

    // one client behind the proxy guesses passwords until it is blocked
    for _ in 0..LIMIT {
        assert_eq!(get(&url, "wrong", "203.0.113.5"), 401);
    }
    assert_eq!(get(&url, PASSWORD, "203.0.113.5"), 429, "the guessing client is blocked");
    // everyone else behind the same proxy still gets in
    assert_eq!(get(&url, PASSWORD, "198.51.100.7"), 200);
    // forging a left-hand entry does not escape the block: the proxy appends the real address last
    assert_eq!(get(&url, PASSWORD, "198.51.100.7, 203.0.113.5"), 429);
    let _ = child.kill();
    let _ = child.wait();

    // without --trusted-proxy the header is ignored: rotating it does not dodge the limiter
    let bus = BusServer::start();
    for i in 0..LIMIT {
        assert_eq!(get(&bus.url, "wrong", &format!("192.0.2.{i}")), 401);
    }
    assert_eq!(get(&bus.url, PASSWORD, "198.51.100.99"), 429);
}
