//! Stoplight Prism serving Twilio's official OpenAPI spec for API v2010, on a free loopback port, killed on
//! drop. Prism validates every request against the spec (a request that breaks it gets a 422/401 instead
//! of a mock answer, and a `[VALIDATOR]` line in the log, which is kept for the tests). `--errors` is not
//! used: it would also turn Twilio's own example answers into errors where they break their own schema
//! (the list examples' relative `uri` fields do), which says nothing about our requests.

use super::{free_port, repo_root, tool};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/install-test-deps.sh` puts the spec (npm package `@twilio-alpha/mcp`).
pub const SPEC: &str = ".test-tools/node/node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json";

/// A running Prism mock of Twilio's API.
pub struct Prism {
    /// `http://127.0.0.1:PORT` — use as `[sms] base_url`.
    pub url: String,
    child: Option<Child>,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Prism {
    /// The spec file; panics with the install command when it is missing.
    pub fn spec() -> PathBuf {
        let p = repo_root().join(SPEC);
        assert!(
            p.exists(),
            "Twilio's OpenAPI spec is missing at {SPEC}: run `bash scripts/install-test-deps.sh` (installs @twilio-alpha/mcp from npm)"
        );
        p
    }

    /// Starts `prism mock` on the spec and waits until it listens.
    pub fn start() -> Self {
        let prism = tool("prism");
        let spec = Self::spec();
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("prism.log");
        let port = free_port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(prism)
            .args(["mock", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&spec)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prism starts");
        let mut p = Prism { url: format!("http://127.0.0.1:{port}"), child: Some(child), log, _tmp: tmp };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if self.log().contains("Prism is listening") {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("prism exited ({status}) before listening:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prism did not start listening within 90 s:\n{}", tail(&self.log(), 40));
    }

    /// Everything Prism logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The request-validation errors Prism logged (`[VALIDATOR] ✖ error Request ...` lines); violations
    /// in Prism's own example answers (`Violation: response...`) are not about our requests.
    pub fn violations(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("[VALIDATOR]") && l.contains("error") && !l.contains("Violation: response"))
            .map(str::to_string)
            .collect()
    }

    /// How many requests Prism found invalid (`Request did not pass the validation rules`).
    pub fn rejected(&self) -> usize {
        self.log().lines().filter(|l| l.contains("Request did not pass the validation rules")).count()
    }

    /// How many requests Prism received (`Request received` lines).
    pub fn requests_received(&self) -> usize {
        self.log().lines().filter(|l| l.contains("Request received")).count()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Prism {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
