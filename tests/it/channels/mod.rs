//! One behaviour suite every channel must pass, run against a rig per channel (as opendal's behaviour
//! tests run one suite per service), gated by what the channel can do. A rig is the real `handoff`
//! binary configured for one channel plus the real server behind it; the cases drive it through the CLI
//! and check the store itself (a directory on this machine: the served root) independently.
//!
//! Adding a channel: write its rig in `rigs.rs` and one `suite!` line below; every case its capabilities
//! allow then runs against it.

mod cases;
mod rigs;

use crate::support::{Env, OutputExt, run};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a rig's channel can do, which gates the cases.
#[derive(Debug, Clone, Copy)]
pub struct Can {
    /// Carries files (`--file`).
    pub files: bool,
    /// Its server can be stopped and started again (the outage case).
    pub go_down: bool,
}

/// One channel, configured in an isolated env, with its store visible on this machine.
pub struct Rig {
    /// The channel's name (`--via`, receipts).
    pub channel: &'static str,
    /// The isolated HOME / config / data of the two machines `a` (sender) and `b` (reader).
    pub env: Env,
    /// The directory where the channel's stored objects land (the served root).
    pub store: PathBuf,
    /// What it can do.
    pub can: Can,
    /// A pointer uri of this channel that names something outside its configured place.
    pub outside_uri: String,
    /// What is stored at `outside_uri` (it exists: a fetch that followed it would succeed).
    pub outside_bytes: Vec<u8>,
    /// Stops (`false`) or starts (`true`) the channel's server, for rigs that `can.go_down`.
    pub set_up: Option<Box<dyn FnMut(bool)>>,
    /// Servers and temp dirs kept alive for the rig's lifetime.
    pub _keep: Vec<Box<dyn std::any::Any>>,
}

impl Rig {
    /// `handoff --json send --to b --via <channel> --file ...` as machine a.
    pub fn send_files(&self, files: &[&Path]) -> (std::process::Output, Value) {
        let mut c = self.env.handoff("a");
        c.args(["--json", "send", "--to", "b", "--via", self.channel]);
        for f in files {
            c.arg("--file").arg(f);
        }
        let o = run(c);
        let j = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (o, j)
    }

    /// `handoff fetch <target> --out <dir>` as machine b.
    pub fn fetch(&self, target: &str, out: &Path) -> std::process::Output {
        let mut c = self.env.handoff("b");
        c.args(["--json", "fetch", target, "--out"]).arg(out);
        run(c)
    }

    /// Writes `bytes` as a file to send, named `name`, in a folder of its own (`sub`).
    pub fn file(&self, sub: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.env.path().join("outgoing").join(sub).join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Every regular file in the store whose name does not start with a dot (what a user would see).
    pub fn stored(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        visible_files(&self.store, &mut out);
        out.sort();
        out
    }
}

pub fn visible_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            visible_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The bus message id of a send's pointer (from its JSON receipt).
pub fn pointer_id(j: &Value) -> String {
    j["receipt"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {j:#}"))
        .iter()
        .find(|s| s["step"] == "pointer")
        .and_then(|s| s["receipt"]["message_id"].as_str())
        .unwrap_or_else(|| panic!("no pointer posted: {j:#}"))
        .to_string()
}

/// The receipts of a send's payload steps.
pub fn payload_receipts(j: &Value) -> Vec<Value> {
    j["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "payload")
        .map(|s| s["receipt"].clone())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Asserts a command succeeded, showing its output otherwise.
pub fn ok(o: &std::process::Output) {
    assert_eq!(o.code(), 0, "stdout:\n{}\nstderr:\n{}", o.out(), o.err());
}

/// One test per (rig, case), named `<rig>__<case>`, each skipped only by the rig's capabilities (and then
/// it says so in its output: a capability the channel lacks is not a silent pass).
macro_rules! suite {
    ($($rig:ident),* $(,)?) => {
        $(
            mod $rig {
                use super::cases;
                #[test]
                fn round_trip_with_sha256() { cases::round_trip_with_sha256(super::rigs::$rig()) }
                #[test]
                fn same_key_delivered_twice_makes_one_copy() { cases::same_key_twice(super::rigs::$rig()) }
                #[test]
                fn two_same_named_files_in_one_send() { cases::two_same_named_files(super::rigs::$rig()) }
                #[test]
                fn outage_queues_with_exit_75_then_delivers_exactly_once() { cases::outage(super::rigs::$rig()) }
                #[test]
                fn corrupted_stored_object_fails_the_fetch_and_leaves_nothing() { cases::corrupted(super::rigs::$rig()) }
                #[test]
                fn hostile_names_stay_inside_and_run_nothing() { cases::hostile_names(super::rigs::$rig()) }
                #[test]
                fn health_leaves_nothing_visible() { cases::health_leaves_nothing(super::rigs::$rig()) }
                #[test]
                fn a_uri_outside_the_configured_place_is_refused() { cases::outside_uri_refused(super::rigs::$rig()) }
            }
        )*
    };
}

suite!(local, drive_local, drive_webdav, drive_s3, drive_sftp, droplet);
