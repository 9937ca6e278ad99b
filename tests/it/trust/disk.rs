//! Secrets on disk: env files others can read are refused with the chmod that fixes them; what handoff
//! writes (data dirs, outbox jobs, the bus server's store) is private to the user.

use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt, run};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn a_bus_env_file_readable_by_others_is_refused_with_the_chmod_fix() {
    let bus = BusServer::start();
    let env = Env::new();
    let f = bus.write_env_file(&env);
    for loose in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(loose)).unwrap();
        let mut c = env.handoff("alpha");
        c.args(["send", "--to", "beta", "hello"]);
        let out = run(c);
        assert_eq!(out.code(), 78, "mode {loose:o}: {}", out.err());
        assert!(out.err().contains(&format!("chmod 600 {}", f.display())), "{}", out.err());
        assert!(!out.err().contains(crate::support::bus::PASSWORD));
    }
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = env.handoff("alpha");
    c.args(["send", "--to", "beta", "hello"]);
    run(c).ok();
}

#[test]
fn queued_jobs_data_dirs_and_the_bus_store_are_private_to_the_user() {
    let mut bus = BusServer::start();
    assert_eq!(mode(&bus.data), 0o700, "the bus server's data dir");
    let env = Env::new();
    bus.write_env_file(&env);
    bus.kill();
    let mut c = env.handoff("alpha");
    c.args(["send", "--to", "beta", "queued while the bus is down"]);
    assert_eq!(run(c).code(), 75);
    let data = env.path().join("data/handoff");
    assert_eq!(mode(&data), 0o700, "handoff's data dir");
    let jobs: Vec<_> =
        std::fs::read_dir(data.join("outbox")).unwrap().flatten().map(|e| e.path().join("job.json")).collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(mode(&jobs[0]), 0o600, "a queued job");
    // a data dir left open by an older version is tightened
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = env.handoff("alpha");
    c.arg("doctor");
    let _ = run(c);
    let mut c = env.handoff("alpha");
    c.args(["sync", "--format", "json"]);
    let _ = run(c);
    assert_eq!(mode(&data), 0o700);
}
