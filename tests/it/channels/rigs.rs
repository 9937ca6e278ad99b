//! One rig per channel (and per way of reaching it): the real servers, the config, the store's directory.

use super::{Can, Rig};
use crate::support::Env;
use crate::support::rclone::{self, Kind, Server};
use crate::support::sshd::Sshd;

const FILES: Can = Can { files: true, go_down: false };

/// The embedded default: no config, the local payload folder under the data directory.
pub fn local() -> Rig {
    let env = Env::new();
    let store = env.path().join("data/handoff/payloads");
    Rig {
        channel: "local",
        store,
        can: FILES,
        outside_uri: "local:/etc/passwd".into(),
        outside_bytes: std::fs::read("/etc/passwd").unwrap(),
        set_up: None,
        _keep: Vec::new(),
        env,
    }
}

/// `[drive]` on an rclone remote described by `section` (named `remote`), payloads under `folder`.
fn drive_env(section: &str, remote: &str, folder: &str) -> Env {
    let mut env = Env::new();
    env.write_config(&format!("[drive]\nremote = \"{remote}\"\nfolder = \"{folder}\"\n"));
    rclone::write_conf(&env, section);
    rclone::isolate_ssh(&mut env);
    rclone::put_rclone_on_path(&mut env);
    env
}

/// drive over rclone's `local` remote type (opendal's fs service).
pub fn drive_local() -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("drive").join("payloads");
    std::fs::create_dir_all(&store).unwrap();
    let env = drive_env("[here]\ntype = local\n\n", "here", store.to_str().unwrap());
    let outside = tmp.path().join("drive").join("elsewhere.bin");
    let outside_bytes = b"not a payload".to_vec();
    std::fs::write(&outside, &outside_bytes).unwrap();
    Rig {
        channel: "drive",
        env,
        store,
        can: FILES,
        outside_uri: format!("drive:here:{}", outside.display()),
        outside_bytes,
        set_up: None,
        _keep: vec![Box::new(tmp)],
    }
}

/// drive over a server made by `rclone serve <kind>`; `folder` inside the served root.
fn drive_served(kind: Kind, folder: &str) -> Rig {
    let server = Server::start(kind);
    let env = drive_env(&server.section("served", true), "served", folder);
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
    Rig {
        channel: "drive",
        env,
        store,
        can: FILES,
        outside_uri: format!("drive:served:{outside_folder}"),
        outside_bytes,
        set_up: None,
        _keep: vec![Box::new(server)],
    }
}

pub fn drive_webdav() -> Rig {
    drive_served(Kind::Webdav, "handoffs")
}

pub fn drive_s3() -> Rig {
    drive_served(Kind::S3, "bucket/handoffs")
}

pub fn drive_sftp() -> Rig {
    drive_served(Kind::Sftp, "handoffs")
}

/// `[droplet]` on a loopback sshd (an ssh alias in the test HOME), which can be stopped and restarted.
pub fn droplet() -> Rig {
    const ALIAS: &str = "droplet-suite";
    let sshd = Sshd::start();
    let mut env = Env::new();
    sshd.setup_client(&mut env, ALIAS);
    let store = sshd.server_dir("drop");
    env.write_config(&format!("[droplet]\nhost = \"{ALIAS}\"\ndir = \"{}\"\n", store.display()));
    let mut sshd = sshd;
    Rig {
        channel: "droplet",
        env,
        store,
        can: Can { files: true, go_down: true },
        outside_uri: "droplet:/etc/passwd".into(),
        outside_bytes: std::fs::read("/etc/passwd").unwrap(),
        set_up: Some(Box::new(move |up| if up { sshd.restart() } else { sshd.kill_all() })),
        _keep: Vec::new(),
    }
}
