//! The folder channel: a shared directory seen by two machines at different mount points (a symlink
//! stands in for the second mount), files and documents round-trip through a pointer on the bus, and a
//! writer killed mid-copy leaves no partial file under the final name (and its stale temporary file is
//! cleaned). The channel's contract (round trip, one copy per key, outage, corruption, hostile names,
//! confinement) is checked by the behaviour suite, `channels::folder`.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, noise, run};
use std::path::{Path, PathBuf};

/// An env using the real bus and `[folder] path = mount`.
fn env(bus: &BusServer, mount: &Path) -> Env {
    let env = Env::new();
    bus.write_env_file(&env);
    env.write_config(&format!("[folder]\npath = \"{}\"\n", mount.display()));
    env
}

/// Every non-hidden file under `dir`.
fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            out.extend(visible_files(&e.path()));
        } else if !name.starts_with('.') {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn files_and_documents_round_trip_between_two_mount_points() {
    let bus = BusServer::start();
    let share = tempfile::tempdir().unwrap();
    let other_mount = tempfile::tempdir().unwrap();
    let mount_b = other_mount.path().join("nas");
    std::os::unix::fs::symlink(share.path(), &mount_b).unwrap();
    let a = env(&bus, share.path());
    let b = env(&bus, &mount_b);
    let file = a.path().join("build log.txt");
    let bytes = noise(300_000, 7);
    std::fs::write(&file, &bytes).unwrap();
    let mut c = a.handoff("mac-studio");
    c.args(["--json", "send", "--to", "linux-box", "--file"]).arg(&file).args([
        "--doc",
        "--title",
        "Notes",
        "# notes\nbody\n",
    ]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let j = o.json();
    let uris: Vec<String> = j["receipt"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["receipt"]["uri"].as_str().map(str::to_string))
        .collect();
    assert_eq!(uris.len(), 2, "{j:#}");
    assert!(uris.iter().all(|u| u.starts_with("folder:")), "{uris:?}");
    let out = b.path().join("got");
    let mut c = b.handoff("linux-box");
    c.args(["--json", "sync", "--fetch", "--out"]).arg(&out);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let got = visible_files(&out);
    let data = got.iter().find(|p| p.to_string_lossy().ends_with("build_log.txt")).unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(std::fs::read(data).unwrap(), bytes);
    let doc = got.iter().find(|p| p.to_string_lossy().ends_with("Notes.md")).unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(std::fs::read_to_string(doc).unwrap(), "# notes\nbody\n");
}

#[test]
fn a_writer_killed_mid_copy_leaves_no_partial_file_under_the_final_name() {
    let bus = BusServer::start();
    let share = tempfile::tempdir().unwrap();
    let a = env(&bus, share.path());
    let big = a.path().join("big.bin");
    let chunk = noise(1 << 20, 3);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        for _ in 0..160 {
            f.write_all(&chunk).unwrap();
        }
    }
    let mut killed = false;
    for _ in 0..5 {
        let mut c = a.handoff("mac-studio");
        c.args(["send", "--to", "linux-box", "--file"]).arg(&big);
        c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        // wait for the temporary file to appear, then kill the writer
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = false;
        while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if !hidden_files(share.path()).is_empty() {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if seen {
            killed = true;
            break;
        }
    }
    assert!(killed, "the copy was never caught in flight");
    assert!(
        visible_files(share.path()).is_empty(),
        "a partial file under a final name: {:?}",
        visible_files(share.path())
    );
    // the killed writer's temporary file is left; once it is stale, the next delivery there removes it
    let parts = hidden_files(share.path());
    assert!(!parts.is_empty(), "the killed writer left its temporary file");
    for p in &parts {
        let o = run({
            let mut c = std::process::Command::new("touch");
            c.args(["-d", "2 hours ago"]).arg(p);
            c
        });
        o.ok();
    }
    // beside it, another machine's copy in progress (fresh): it must be left alone
    let live = parts[0].with_file_name(".0123456789abcdef0123456789abcdef.part");
    std::fs::write(&live, b"being written").unwrap();
    // the next run delivers it completely
    let mut c = a.handoff("mac-studio");
    c.args(["--json", "flush"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let files = visible_files(share.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 160 << 20);
    assert_eq!(hidden_files(share.path()), [live], "the stale temporary file was cleaned, the live one kept");
}

/// Every hidden (temporary) file under `dir`: all but the share's marker.
fn hidden_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(hidden_files(&p));
        } else if e.file_name().to_string_lossy().starts_with('.')
            && e.file_name() != handoff_channels::folder::marker::MARKER
        {
            out.push(p);
        }
    }
    out
}

/// The share is unmounted after it was used: its mount point is still there, empty, on the local disk.
/// Nothing is written into it; the send queues (exit 75) and goes out once, into the share, when it is
/// mounted again.
#[test]
fn the_empty_mount_point_of_an_unmounted_share_gets_nothing_and_the_send_waits_for_the_share() {
    let bus = BusServer::start();
    let disks = tempfile::tempdir().unwrap();
    let (share, mount) = (disks.path().join("nas-share"), disks.path().join("mnt-nas"));
    std::fs::create_dir_all(&share).unwrap();
    // mounted = the mount point leads to the share (a symlink stands in for the mount)
    std::os::unix::fs::symlink(&share, &mount).unwrap();
    let a = env(&bus, &mount);
    let send = |title: &str| {
        let mut c = a.handoff("mac-studio");
        c.args(["--json", "send", "--to", "linux-box", "--via", "folder", "--doc", "--title", title, "# notes\n"]);
        run(c)
    };
    let o = send("first");
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    assert!(share.join(handoff_channels::folder::marker::MARKER).exists());
    // unmounted: an empty directory where the share was
    std::fs::remove_file(&mount).unwrap();
    std::fs::create_dir(&mount).unwrap();
    let o = send("while unmounted");
    assert_eq!(o.code(), 75, "{}\n{}", o.out(), o.err());
    assert!(o.out().contains("not mounted"), "{}", o.out());
    assert_eq!(std::fs::read_dir(&mount).unwrap().count(), 0, "nothing written to the mount point");
    // mounted again: the queued send goes into the share, once
    std::fs::remove_dir(&mount).unwrap();
    std::os::unix::fs::symlink(&share, &mount).unwrap();
    let mut c = a.handoff("mac-studio");
    c.args(["--json", "flush"]);
    let o = run(c);
    assert_eq!(o.code(), 0, "{}\n{}", o.out(), o.err());
    let docs = visible_files(&share);
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs.iter().filter(|p| p.to_string_lossy().contains("while")).count(), 1, "{docs:?}");
}
