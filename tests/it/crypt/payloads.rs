//! Encrypted payloads on the file and document channels: drive (a `local` rclone remote, read back with
//! rclone and the age CLI), the droplet (a real sshd, read on the server), git (the git CLI in its own
//! clone), and a pointer queued in the outbox.

use super::{data_dir, handoff, machine, make_key, messages, raw_bus, sync_json};
use crate::support::bus::BusServer;
use crate::support::{Env, OutputExt};
use std::path::{Path, PathBuf};

mod drive {
    use super::*;
    use crate::support::rclone;

    use crate::support::noise as payload;

    pub(super) fn drive_machine(bus: &BusServer, folder: &Path) -> (Env, PathBuf) {
        let mut env = machine(bus, &format!("[drive]\nremote = \"here\"\nfolder = \"{}\"\n", folder.display()));
        let conf = rclone::write_conf(&env, "[here]\ntype = local\n");
        rclone::isolate_ssh(&mut env);
        rclone::put_rclone_on_path(&mut env);
        (env, conf)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn an_encrypted_file_is_ciphertext_on_the_drive_and_fetch_yields_the_same_bytes_or_nothing() {
        let bus = BusServer::start();
        let store = tempfile::tempdir().unwrap();
        let folder = store.path().join("payloads");
        let (a, conf) = drive_machine(&bus, &folder);
        let (b, _) = drive_machine(&bus, &folder);
        make_key(&a, "a");
        let key_b = make_key(&b, "b");
        handoff(&a, "a", &["sync"]).ok();
        let bytes = payload(300_000, 11);
        let file = a.path().join("quarterly-numbers.bin");
        std::fs::write(&file, &bytes).unwrap();
        let out = handoff(
            &a,
            "a",
            &[
                "--json",
                "send",
                "--encrypt",
                "--keep",
                "--to",
                "b",
                "--file",
                file.to_str().unwrap(),
                "numbers attached",
            ],
        );
        out.ok();
        let steps = out.json()["receipt"]["steps"].clone();
        let uri = steps[0]["receipt"]["uri"].as_str().unwrap().to_string();
        assert!(uri.starts_with("drive:here:") && uri.ends_with(".age"), "{steps:#}");
        assert!(!uri.contains("quarterly"), "the stored name is neutral: {uri}");

        // rclone, the independent client, reads back ciphertext of the size the router planned on
        let stored = rclone::cat(&conf, uri.strip_prefix("drive:").unwrap(), None);
        assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
        assert!(stored.stdout.starts_with(b"age-encryption.org/v1\n"));
        assert_ne!(stored.stdout.len(), bytes.len());
        assert!(!stored.stdout.windows(64).any(|w| w == &bytes[1000..1064]), "no plaintext run on the remote");
        // the reference age CLI decrypts it with b's identity file
        let enc = store.path().join("downloaded.age");
        std::fs::write(&enc, &stored.stdout).unwrap();
        let out = std::process::Command::new(crate::support::tool("age"))
            .args(["-d", "-i"])
            .arg(data_dir(&b).join("keys/identity.txt"))
            .arg(&enc)
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout == bytes, "age -d: {}", String::from_utf8_lossy(&out.stderr));
        // the pointer on the bus is encrypted too: no name, no hash
        let raw = serde_json::to_string(&raw_bus(&bus)).unwrap();
        assert!(!raw.contains("quarterly") && !raw.contains("numbers attached") && !raw.contains(".age"), "{raw}");

        let (out, j) = sync_json(&b, "b");
        out.ok();
        let m = &messages(&j)[0];
        assert_eq!(m["encrypted"], true);
        assert_eq!(m["pointer"]["items"][0]["name"], "quarterly-numbers.bin", "{j:#}");
        assert_eq!(m["pointer"]["note"], "numbers attached");
        let id = m["id"].as_str().unwrap().to_string();
        let dest = b.path().join("got");
        let out = handoff(&b, "b", &["--json", "fetch", &id, "--out", dest.to_str().unwrap()]);
        out.ok();
        assert_eq!(std::fs::read(dest.join("quarterly-numbers.bin")).unwrap(), bytes);

        // flip one byte of the stored ciphertext (size kept): fetch fails loudly and leaves nothing
        let on_disk = files_under(&folder).into_iter().find(|p| p.extension().is_some_and(|e| e == "age")).unwrap();
        let mut stored = std::fs::read(&on_disk).unwrap();
        let at = stored.len() - 100;
        stored[at] ^= 0x01;
        std::fs::write(&on_disk, &stored).unwrap();
        // the ciphertext's sha256 (hashed while downloading) no longer matches the encrypted pointer
        let dest2 = b.path().join("got2");
        let out = handoff(&b, "b", &["fetch", &id, "--out", dest2.to_str().unwrap()]);
        assert_eq!(out.code(), 65, "{}\n{}", out.out(), out.err());
        assert!(out.err().contains("tampered"), "{}", out.err());
        assert!(files_under(&dest2).is_empty(), "nothing written: {:?}", files_under(&dest2));

        // a substitute that decrypts fine (anyone can encrypt to b's public key) is refused too: its
        // sha256 is not the one in the encrypted pointer
        let other = store.path().join("other.bin");
        std::fs::write(&other, payload(300_000, 12)).unwrap();
        let age = std::process::Command::new(crate::support::tool("age"))
            .args(["-r", &key_b, "-o"])
            .arg(&on_disk)
            .arg(&other)
            .output()
            .unwrap();
        assert!(age.status.success(), "{}", String::from_utf8_lossy(&age.stderr));
        let dest3 = b.path().join("got3");
        let out = handoff(&b, "b", &["fetch", &id, "--out", dest3.to_str().unwrap()]);
        assert_eq!(out.code(), 65, "{}\n{}", out.out(), out.err());
        assert!(out.err().contains("does not match the pointer"), "{}", out.err());
        assert!(files_under(&dest3).is_empty(), "nothing written: {:?}", files_under(&dest3));
    }
}

#[test]
fn an_encrypted_pointer_queued_in_the_outbox_is_encrypted_when_flush_posts_it() {
    let mut bus = BusServer::start();
    let store = tempfile::tempdir().unwrap();
    let folder = store.path().join("payloads");
    let (a, _) = drive::drive_machine(&bus, &folder);
    let (b, _) = drive::drive_machine(&bus, &folder);
    make_key(&a, "a");
    make_key(&b, "b");
    handoff(&a, "a", &["sync"]).ok();
    let file = a.path().join("notes.txt");
    std::fs::write(&file, "queued notes\n").unwrap();
    bus.kill();
    let out = handoff(&a, "a", &["send", "--encrypt", "--to", "b", "--file", file.to_str().unwrap(), "see notes"]);
    assert_eq!(out.code(), 75, "{}\n{}", out.out(), out.err());
    std::fs::remove_file(&file).unwrap();
    bus.restart();
    handoff(&a, "a", &["flush"]).ok();
    let raw = serde_json::to_string(&raw_bus(&bus)).unwrap();
    assert!(!raw.contains("see notes") && !raw.contains("notes.txt"), "{raw}");
    let (out, j) = sync_json(&b, "b");
    out.ok();
    let m = &messages(&j)[0];
    assert_eq!(m["pointer"]["note"], "see notes", "{j:#}");
    let dest = b.path().join("got");
    handoff(&b, "b", &["fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(dest.join("notes.txt")).unwrap(), "queued notes\n");
}

mod git {
    use super::*;
    use crate::support::run;
    use std::process::{Command, Stdio};

    fn git(env: &Env, dir: &Path, args: &[&str]) -> String {
        let mut c = Command::new("git");
        env.apply(&mut c);
        c.current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["-c", "user.name=Tester", "-c", "user.email=t@example.com"])
            .args(args);
        let o = run(c);
        o.ok();
        o.out()
    }

    fn git_machine(bus: &BusServer, remote: &str, extra: &str) -> Env {
        let env = Env::new();
        let checkout = env.home().join("claude-handoffs");
        bus.write_env_file(&env);
        env.write_config(&format!(
            "{extra}[git]\nremote = {remote:?}\ncheckout = {:?}\nbranch = \"main\"\n",
            checkout.display().to_string()
        ));
        env
    }

    #[test]
    fn an_encrypted_document_is_ciphertext_in_the_repo_and_readable_only_by_its_recipient() {
        let bus = BusServer::start();
        let repos = tempfile::tempdir().unwrap();
        let bare = repos.path().join("docs.git");
        let scratch = Env::new();
        git(&scratch, repos.path(), &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        let remote = format!("file://{}", bare.display());
        let a = git_machine(&bus, &remote, "encrypt = \"always\"\n");
        let b = git_machine(&bus, &remote, "");
        make_key(&a, "a");
        make_key(&b, "b");
        handoff(&a, "a", &["sync"]);
        let text = "# Migration plan\n\nmove the users table on sunday\n";
        let mut c = a.handoff("a");
        c.args(["send", "--doc", "-", "--to", "b", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        child.wait_with_output().unwrap().ok();

        // the git CLI, in its own clone, sees only ciphertext under a neutral name
        let clone = repos.path().join("clone");
        git(&scratch, repos.path(), &["clone", "-q", &remote, clone.to_str().unwrap()]);
        let files = git(&scratch, &clone, &["ls-files"]);
        let archived: Vec<&str> = files.lines().filter(|l| l.starts_with("handoffs/")).collect();
        assert_eq!(archived.len(), 1, "{files}");
        assert!(archived[0].ends_with(".md.age") && !archived[0].contains("migration"), "{files}");
        for f in [archived[0], "latest.md"] {
            let stored = std::fs::read_to_string(clone.join(f)).unwrap();
            assert!(stored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"), "{f}: {stored}");
            assert!(!stored.contains("sunday"), "{f}");
        }
        assert!(!git(&scratch, &clone, &["log", "--format=%B"]).to_lowercase().contains("migration"));

        // b reads it in the clear: the document in the digest, the pointer's item by its real name
        let (out, j) = sync_json(&b, "b");
        out.ok();
        let docs = j["sync"]["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 1, "{j:#}");
        assert_eq!(docs[0]["content"], text);
        assert_eq!(docs[0]["title"], "Migration plan");
        let m = &messages(&j)[0];
        assert_eq!(m["pointer"]["items"][0]["name"], "Migration plan.md", "{j:#}");
        let dest = b.path().join("got");
        let out = handoff(&b, "b", &["--json", "fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]);
        out.ok();
        let path = out.json()["fetched"][0]["path"].as_str().unwrap().to_string();
        assert!(path.ends_with(".md"), "{path}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        // someone with push access alters one character of latest.md: b's sync says so, shows no text
        let latest = clone.join("latest.md");
        let stored = std::fs::read_to_string(&latest).unwrap();
        let mut lines: Vec<String> = stored.lines().map(String::from).collect();
        let n = lines.len() - 2;
        let mut chars: Vec<char> = lines[n].chars().collect();
        chars[1] = if chars[1] == 'A' { 'B' } else { 'A' };
        lines[n] = chars.into_iter().collect();
        std::fs::write(&latest, lines.join("\n") + "\n").unwrap();
        git(&scratch, &clone, &["commit", "-q", "-am", "edit"]);
        git(&scratch, &clone, &["push", "-q", "origin", "main"]);
        let (out, j) = sync_json(&b, "b");
        assert_eq!(out.code(), 65, "{j:#}");
        let notes = j["sync"]["notes"].to_string();
        assert!(notes.contains("could not be decrypted") && notes.contains("latest.md"), "{notes}");
        assert!(j["sync"]["documents"].as_array().unwrap().iter().all(|d| d["content"].is_null()), "{j:#}");
    }
}

#[test]
fn an_encrypted_file_on_the_droplet_is_ciphertext_and_fetch_yields_the_same_bytes() {
    let sshd = crate::support::sshd::Sshd::start();
    let bus = BusServer::start();
    let dir = sshd.server_dir("drop");
    let on_droplet = |m: &str| {
        let mut env = Env::new();
        bus.write_env_file(&env);
        sshd.setup_client(&mut env, "droplet-test");
        env.write_config(&format!("[droplet]\nhost = \"droplet-test\"\ndir = \"{}\"\n", dir.display()));
        make_key(&env, m);
        env
    };
    let (a, b) = (on_droplet("a"), on_droplet("b"));
    handoff(&a, "a", &["sync"]).ok();
    let bytes: Vec<u8> = (0..150_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = a.path().join("crash dump; $(reboot).bin");
    std::fs::write(&file, &bytes).unwrap();
    let out =
        handoff(&a, "a", &["send", "--encrypt", "--to", "b", "--via", "droplet", "--file", file.to_str().unwrap()]);
    out.ok();
    // read directly on the server: one file, a neutral name, age ciphertext, no plaintext run
    let mut stored = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                stored.push(e.path());
            }
        }
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    let name = stored[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".age") && !name.contains("crash"), "{name}");
    let content = std::fs::read(&stored[0]).unwrap();
    assert!(content.starts_with(b"age-encryption.org/v1\n"));
    assert!(!content.windows(64).any(|w| w == &bytes[5000..5064]));

    let (out, j) = sync_json(&b, "b");
    out.ok();
    let m = &messages(&j)[0];
    let dest = b.path().join("got");
    let out = handoff(&b, "b", &["--json", "fetch", m["id"].as_str().unwrap(), "--out", dest.to_str().unwrap()]);
    out.ok();
    let path = out.json()["fetched"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(path.starts_with(dest.to_str().unwrap()), "{path}");
}
