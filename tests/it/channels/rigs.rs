//! Rigs for the channels that carry files: the embedded local folder, drive over rclone remotes (a local
//! path, and webdav / s3 / sftp served by `rclone serve`), the SSH droplet, and a shared folder. Each
//! store is a directory on this machine (the served root), read directly by the cases.

use super::{Can, Rig, flip_a_byte, only_visible_file, visible_contents};
use crate::support::Env;
use std::path::{Path, PathBuf};

const FILES: Can = Can { files: true, documents: false, pages: false, go_down: false };

/// A file rig whose objects land under `store`, with `outside` (an existing path outside it, and the
/// uri naming it).
fn file_rig(channel: &'static str, env: Env, can: Can, store: PathBuf, outside: (String, Vec<u8>)) -> Rig {
    let mut rig = Rig::new(channel, env, can);
    let s = store.clone();
    rig.stored = Box::new(move || visible_contents(&s));
    let s = store.clone();
    rig.corrupt = Some(Box::new(move |_: &Rig, _: &str| flip_a_byte(&only_visible_file(&s))));
    rig.outside = Some(Box::new(move |_: &Rig, _: &str| outside.clone()));
    rig.places = vec![store];
    rig
}

/// `/etc/passwd` through `scheme`: an absolute path outside any configured place.
fn etc_passwd(scheme: &str) -> (String, Vec<u8>) {
    (format!("{scheme}/etc/passwd"), std::fs::read("/etc/passwd").unwrap())
}

/// The embedded default: no config, the local payload folder under the data directory.
pub fn local() -> Rig {
    let env = Env::new();
    let store = env.path().join("data/handoff/payloads");
    file_rig("local", env, FILES, store, etc_passwd("local:"))
}

/// `[drive]` on an rclone remote described by `section` (named `remote`), payloads under `folder`.
#[cfg(feature = "drive")]
fn drive_env(section: &str, remote: &str, folder: &str) -> Env {
    use crate::support::rclone;
    let mut env = Env::new();
    env.write_config(&format!("[drive]\nremote = \"{remote}\"\nfolder = \"{folder}\"\n"));
    rclone::write_conf(&env, section);
    rclone::isolate_ssh(&mut env);
    rclone::put_rclone_on_path(&mut env);
    env
}

/// drive over rclone's `local` remote type (opendal's fs service), its folder on a "disk" (`drive/`); the
/// outage unmounts the disk (moves it away) and mounts it back. The channel creates its folder but never
/// the disk's mount point, so the send queues instead of filling the local disk.
#[cfg(feature = "drive")]
pub fn drive_local() -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("drive");
    let store = disk.join("payloads");
    std::fs::create_dir_all(&store).unwrap();
    let env = drive_env("[here]\ntype = local\n\n", "here", store.to_str().unwrap());
    let outside = disk.join("elsewhere.bin");
    let outside_bytes = b"not a payload".to_vec();
    std::fs::write(&outside, &outside_bytes).unwrap();
    let uri = format!("drive:here:{}", outside.display());
    let mut rig = file_rig("drive", env, Can { go_down: true, ..FILES }, store, (uri, outside_bytes));
    let away = tmp.path().join("unmounted");
    rig.set_up = Some(Box::new(move |up| {
        assert!(!up || !disk.exists(), "the channel created the unmounted disk's mount point {}", disk.display());
        let (from, to) = if up { (&away, &disk) } else { (&disk, &away) };
        std::fs::rename(from, to).unwrap();
    }));
    rig._keep = vec![Box::new(tmp)];
    rig
}

/// drive over a server made by `rclone serve <kind>`, reached through a gate (the outage closes it: the
/// port refuses connections, as a server that went away); `folder` inside the served root. For sftp the
/// host key is recorded (first contact, as rclone does) under the gate's port, which stays the same
/// across the outage.
#[cfg(feature = "drive")]
fn drive_served(kind: crate::support::rclone::Kind, folder: &str) -> Rig {
    use crate::support::gate::Gate;
    use crate::support::rclone::{Kind, Server};
    let server = Server::start(kind);
    let gate = Gate::start(server.port);
    let env = drive_env(&server.section_via("served", true, gate.port), "served", folder);
    let store = server.root.join(folder);
    std::fs::create_dir_all(&store).unwrap();
    let outside_folder = match kind {
        Kind::S3 => "bucket/elsewhere/x.bin",
        _ => "elsewhere/x.bin",
    };
    // an object on the same remote, outside the configured folder
    let outside_bytes = b"not a payload".to_vec();
    let outside_path = server.root.join(outside_folder);
    std::fs::create_dir_all(outside_path.parent().unwrap()).unwrap();
    std::fs::write(&outside_path, &outside_bytes).unwrap();
    let uri = format!("drive:served:{outside_folder}");
    let mut rig = file_rig("drive", env, Can { go_down: true, ..FILES }, store, (uri, outside_bytes));
    rig.set_up = Some(Box::new(move |up| gate.set_open(up)));
    rig._keep = vec![Box::new(server)];
    rig
}

/// drive over WebDAV (`rclone serve webdav`).
#[cfg(feature = "drive")]
pub fn drive_webdav() -> Rig {
    drive_served(crate::support::rclone::Kind::Webdav, "handoffs")
}

/// drive over S3 (`rclone serve s3`).
#[cfg(feature = "drive")]
pub fn drive_s3() -> Rig {
    drive_served(crate::support::rclone::Kind::S3, "bucket/handoffs")
}

/// drive over SFTP (`rclone serve sftp`).
#[cfg(feature = "drive")]
pub fn drive_sftp() -> Rig {
    drive_served(crate::support::rclone::Kind::Sftp, "handoffs")
}

/// `[droplet]` on a loopback sshd (an ssh alias in the test HOME), which can be stopped and restarted.
#[cfg(feature = "droplet")]
pub fn droplet() -> Rig {
    use crate::support::sshd::Sshd;
    const ALIAS: &str = "droplet-suite";
    let mut sshd = Sshd::start();
    let mut env = Env::new();
    sshd.setup_client(&mut env, ALIAS);
    let store = sshd.server_dir("drop");
    env.write_config(&format!("[droplet]\nhost = \"{ALIAS}\"\ndir = \"{}\"\n", store.display()));
    let mut rig = file_rig("droplet", env, Can { go_down: true, ..FILES }, store, etc_passwd("droplet:"));
    rig.set_up = Some(Box::new(move |up| if up { sshd.restart() } else { sshd.kill_all() }));
    rig
}

/// `[folder]` on a shared directory; the outage unmounts it (moves it away) and mounts it back.
#[cfg(feature = "folder")]
pub fn folder() -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("nas");
    std::fs::create_dir_all(&share).unwrap();
    let env = Env::new();
    env.write_config(&format!("[folder]\npath = \"{}\"\n", share.display()));
    let beside = tmp.path().join("beside.bin");
    let bytes = b"beside the share".to_vec();
    std::fs::write(&beside, &bytes).unwrap();
    let mut rig =
        file_rig("folder", env, Can { go_down: true, ..FILES }, share.clone(), ("folder:../beside.bin".into(), bytes));
    let away: PathBuf = tmp.path().join("unmounted");
    rig.set_up = Some(Box::new(move |up| {
        // an unmounted share is never created: the send queues instead of filling the local disk
        assert!(!up || !share.exists(), "the channel created the unmounted share {}", share.display());
        let (from, to): (&Path, &Path) = if up { (&away, &share) } else { (&share, &away) };
        std::fs::rename(from, to).unwrap();
    }));
    rig._keep = vec![Box::new(tmp)];
    rig
}
