//! One behaviour suite every channel must pass, run against a rig per channel (as opendal's behaviour
//! tests run one suite per service), gated by what the channel can do. A rig is the real `handoff`
//! binary configured for one channel plus the real server behind it (or a loopback stand-in that answers
//! as the service documents); the cases drive it through the CLI only (black box) and check the store
//! itself independently (the served directory, the bare repository, the mailbox, the posts a webhook
//! received).
//!
//! Adding a channel: write its rig (in `rigs.rs`, `rigs_docs.rs` or `rigs_pagers.rs`) and one line in
//! `suite!` below listing the case groups its capabilities allow (its `health` test checks the list); each
//! case then runs against it as its own `#[test]`
//! (`channels::<rig>::<case>`), so nextest runs them in parallel.

// a build without some channel features has cases, rigs and helpers that no `suite!` line below uses
#![cfg_attr(
    not(all(
        feature = "git",
        feature = "drive",
        feature = "droplet",
        feature = "sms",
        feature = "email",
        feature = "slack",
        feature = "discord",
        feature = "imessage",
        feature = "folder"
    )),
    allow(unused_imports, dead_code)
)]

mod cases;
mod pages;
mod rigs;
mod rigs_docs;
mod rigs_pagers;

use crate::support::{Env, OutputExt, run};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a rig's channel can do, which gates the cases.
#[derive(Debug, Clone, Copy, Default)]
pub struct Can {
    /// Carries files (`--file`).
    pub files: bool,
    /// Carries documents (`--doc`, one per send).
    pub documents: bool,
    /// Pages a human (`send --urgent`).
    pub pages: bool,
    /// Its server, share or disk can be taken away and brought back (the outage case): every channel
    /// that stores through something besides handoff's own data directory.
    pub go_down: bool,
}

impl Can {
    /// Carries items a pointer names (files or documents), which `fetch` gets back.
    pub fn items(&self) -> bool {
        self.files || self.documents
    }
}

/// Maps a delivered uri to one that names something outside the channel's configured place, and the
/// bytes stored there (it exists, with its true hash: a fetch that followed it would succeed).
pub type Outside = Box<dyn Fn(&Rig, &str) -> (String, Vec<u8>)>;

/// Damages the stored object an item uri names.
pub type Corrupt = Box<dyn Fn(&Rig, &str)>;

/// One channel, configured in an isolated env, with its store readable from the test.
pub struct Rig {
    /// The channel's name (`--via`, receipts, the doctor check).
    pub channel: &'static str,
    /// The isolated HOME / config / data of the sender, machine `a`.
    pub env: Env,
    /// The reader, machine `b` (its own env when the channel keeps a per-machine copy, as git's clone).
    pub reader: Option<Env>,
    /// What it can do.
    pub can: Can,
    /// The objects the store holds that a user would see (bytes of each).
    pub stored: Box<dyn Fn() -> Vec<Vec<u8>>>,
    /// Whether a stored object holds exactly the bytes sent (false: wrapped, as a draft's MIME).
    pub stored_verbatim: bool,
    /// Damages the stored object an item uri names, keeping its size.
    pub corrupt: Option<Corrupt>,
    /// See [`Outside`]; `None` for channels that fetch nothing.
    pub outside: Option<Outside>,
    /// Stops (`false`) or starts (`true`) the channel's server, for rigs that `can.go_down`.
    pub set_up: Option<Box<dyn FnMut(bool)>>,
    /// The pages delivered so far, as their reader sees them (service escaping undone).
    pub pages: Option<Box<dyn Fn() -> Vec<String>>>,
    /// Directories where stored objects (or this machine's copies of them) legitimately live: a name
    /// that climbed out of them, into their parents or the env, is an escape.
    pub places: Vec<PathBuf>,
    /// Servers and temp dirs kept alive for the rig's lifetime.
    pub _keep: Vec<Box<dyn std::any::Any>>,
}

impl Rig {
    /// A rig with nothing but a channel and its env; the rig builders fill in the rest.
    pub fn new(channel: &'static str, env: Env, can: Can) -> Self {
        Rig {
            channel,
            env,
            reader: None,
            can,
            stored: Box::new(Vec::new),
            stored_verbatim: true,
            corrupt: None,
            outside: None,
            set_up: None,
            pages: None,
            places: Vec::new(),
            _keep: Vec::new(),
        }
    }

    /// The reader's env.
    pub fn reader_env(&self) -> &Env {
        self.reader.as_ref().unwrap_or(&self.env)
    }

    /// `handoff --json send --to b --via <channel>` as machine a: the files with `--file`, or (on a
    /// channel without files) the one file as a document titled by its name.
    pub fn send_items(&self, files: &[&Path]) -> (std::process::Output, Value) {
        let mut c = self.env.handoff("a");
        c.args(["--json", "send", "--to", "b", "--via", self.channel]);
        if self.can.files {
            for f in files {
                c.arg("--file").arg(f);
            }
        } else {
            assert_eq!(files.len(), 1, "a document channel takes one document per send");
            let title = files[0].file_name().unwrap().to_string_lossy().into_owned();
            c.args(["--doc", &format!("--title={title}")]).arg(files[0]);
        }
        let o = run(c);
        let j = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        (o, j)
    }

    /// `handoff --json fetch <target> --out <dir>` as machine b.
    pub fn fetch(&self, target: &str, out: &Path) -> std::process::Output {
        let mut c = self.reader_env().handoff("b");
        c.args(["--json", "fetch", target, "--out"]).arg(out);
        run(c)
    }

    /// `handoff --json flush` as machine a.
    pub fn flush(&self) -> std::process::Output {
        let mut c = self.env.handoff("a");
        c.args(["--json", "flush"]);
        run(c)
    }

    /// Writes `bytes` as a file to send, named `name`, in a folder of its own (`sub`).
    pub fn file(&self, sub: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.env.path().join("outgoing").join(sub).join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// What the store holds now.
    pub fn stored(&self) -> Vec<Vec<u8>> {
        (self.stored)()
    }
}

/// Every regular file under `dir` whose name (and every folder's on the way) does not start with a dot:
/// what a user browsing it would see.
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

/// The bytes of every visible file under `dir`, sorted by path.
pub fn visible_contents(dir: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    visible_files(dir, &mut files);
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The single visible file under `dir` (the one object a send stored).
pub fn only_visible_file(dir: &Path) -> PathBuf {
    let mut files = Vec::new();
    visible_files(dir, &mut files);
    assert_eq!(files.len(), 1, "one object stored: {files:?}");
    files.remove(0)
}

/// Flips one byte in the middle of `path`, keeping its size.
pub fn flip_a_byte(path: &Path) {
    let mut held = std::fs::read(path).unwrap();
    let at = held.len() / 2;
    held[at] ^= 0x55;
    std::fs::write(path, &held).unwrap();
}

/// The bus message id of a send's pointer (from its JSON receipt).
pub fn pointer_id(j: &Value) -> String {
    step(j, "pointer")["receipt"]["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no pointer posted: {j:#}"))
        .to_string()
}

/// The step named `name` of a send's JSON receipt.
pub fn step<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["receipt"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {j:#}"))
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {j:#}"))
}

/// The receipts of a send's payload steps.
pub fn payload_receipts(j: &Value) -> Vec<Value> {
    j["receipt"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {j:#}"))
        .iter()
        .filter(|s| s["step"] == "payload")
        .map(|s| s["receipt"].clone())
        .collect()
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Asserts a command succeeded, showing its output otherwise.
pub fn ok(o: &std::process::Output) {
    assert_eq!(o.code(), 0, "stdout:\n{}\nstderr:\n{}", o.out(), o.err());
}

/// The case groups a rig's `suite!` line must list, derived from what the rig says its channel can do:
/// `items` (round trip, same key, same names, corruption, hostile names, outside uri), `outage`,
/// `pages` (page once, page text intact) and `page_outage`. `health` runs for every rig and checks this,
/// so a line can neither leave out a case its channel can do nor list one it cannot.
pub fn groups_for(can: &Can) -> Vec<&'static str> {
    let mut g = Vec::new();
    if can.items() {
        g.push("items");
        if can.go_down {
            g.push("outage");
        }
    }
    if can.pages {
        g.push("pages");
        if can.go_down {
            g.push("page_outage");
        }
    }
    g
}

/// The `health` case, after checking the rig's `suite!` line lists exactly the groups its capabilities
/// call for.
pub fn health_with_declared(rig: Rig, declared: &[&str]) {
    assert_eq!(
        declared,
        groups_for(&rig.can).as_slice(),
        "the suite! line of the {} rig must list exactly the case groups its capabilities allow",
        rig.channel
    );
    cases::health_leaves_nothing(rig)
}

/// The tests of one case group (see [`groups_for`]).
macro_rules! suite_group {
    (items) => {
        #[test]
        fn round_trip_with_sha256() {
            cases::round_trip_with_sha256(rig())
        }
        #[test]
        fn same_key_delivered_twice_makes_one_copy() {
            cases::same_key_twice(rig())
        }
        #[test]
        fn two_same_named_items_keep_both() {
            cases::two_same_named(rig())
        }
        #[test]
        fn corrupted_stored_object_fails_the_fetch_and_leaves_nothing() {
            cases::corrupted(rig())
        }
        #[test]
        fn hostile_names_stay_inside_and_run_nothing() {
            cases::hostile_names(rig())
        }
        #[test]
        fn a_uri_outside_the_configured_place_is_refused() {
            cases::outside_uri_refused(rig())
        }
    };
    (outage) => {
        #[test]
        fn outage_queues_with_exit_75_then_delivers_exactly_once() {
            cases::outage(rig())
        }
    };
    (pages) => {
        #[test]
        fn a_page_arrives_once_naming_the_bus_id() {
            pages::arrives_once_naming_the_bus_id(rig())
        }
        #[test]
        fn page_text_with_quotes_newlines_and_escapes_arrives_intact() {
            pages::text_arrives_intact(rig())
        }
    };
    (page_outage) => {
        #[test]
        fn page_outage_queues_with_exit_75_then_pages_exactly_once() {
            pages::outage(rig())
        }
    };
}

/// One test per (rig, case), named `<rig>::<case>`, for the case groups the rig's line lists (checked
/// against its capabilities by its `health` test, so no case is skipped or passed without running).
/// Each rig line carries the cargo feature its channel is built under.
macro_rules! suite {
    ($($(#[$attr:meta])* $rig:ident from $module:ident: $($group:ident),+;)*) => {
        $(
            $(#[$attr])*
            mod $rig {
                #[allow(unused_imports)]
                use super::{cases, pages, $module::$rig as rig};
                #[test]
                fn health_leaves_nothing_visible() {
                    super::health_with_declared(rig(), &[$(stringify!($group)),+])
                }
                $(suite_group!($group);)+
            }
        )*
    };
}

suite! {
    // no outage for `local`: its store is handoff's own data directory, which handoff creates (the embedded
    // default); no server or share stands between them to go away. drive over a `local` remote can: its
    // folder's disk can be unmounted (the channel then queues, as `folder` does).
    local from rigs: items;
    #[cfg(feature = "drive")] drive_local from rigs: items, outage;
    #[cfg(feature = "drive")] drive_webdav from rigs: items, outage;
    #[cfg(feature = "drive")] drive_s3 from rigs: items, outage;
    #[cfg(feature = "drive")] drive_sftp from rigs: items, outage;
    #[cfg(feature = "droplet")] droplet from rigs: items, outage;
    #[cfg(feature = "folder")] folder from rigs: items, outage;
    #[cfg(feature = "git")] git_file from rigs_docs: items, outage;
    #[cfg(feature = "git")] git_ssh from rigs_docs: items, outage;
    #[cfg(feature = "git")] git_https from rigs_docs: items, outage;
    #[cfg(feature = "email")] email from rigs_docs: items, outage, pages, page_outage;
    #[cfg(feature = "sms")] sms from rigs_pagers: pages, page_outage;
    #[cfg(feature = "slack")] slack from rigs_pagers: pages, page_outage;
    #[cfg(feature = "discord")] discord from rigs_pagers: pages, page_outage;
    #[cfg(feature = "imessage")] imessage from rigs_pagers: pages;
}
