//! Rigs for the channels that carry documents: git over file://, ssh (a loopback sshd) and https (git's
//! smart-HTTP server behind TLS and basic auth), and email drafts in a real IMAP server (dovecot).

use super::{Can, Rig};
use crate::support::{Env, OutputExt, run};
use std::path::{Path, PathBuf};
use std::process::Command;

const DOCS: Can = Can { files: false, documents: true, pages: false, go_down: true };

#[cfg(feature = "git")]
/// `git` with no system or user config, on `args`.
fn git(args: &[&str]) -> std::process::Output {
    let mut c = Command::new("git");
    c.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null").args(args);
    run(c)
}

#[cfg(feature = "git")]
/// The documents on the bare repository's `main` (under `handoffs/`; `latest.md` is a copy of the newest).
fn documents_in(bare: &Path) -> Vec<Vec<u8>> {
    let dir = format!("--git-dir={}", bare.display());
    let o = git(&[&dir, "ls-tree", "-r", "--name-only", "main"]);
    if !o.status.success() {
        return Vec::new(); // nothing pushed yet: no branch
    }
    o.out()
        .lines()
        .filter(|p| p.starts_with("handoffs/"))
        .map(|p| {
            let o = git(&[&dir, "show", &format!("main:{p}")]);
            o.ok();
            o.stdout
        })
        .collect()
}

#[cfg(feature = "git")]
/// `[git]` with `remote`, the clone in `~/claude-handoffs`, pushing to the bare repository `bare`.
fn git_rig(mut env: Env, remote: &str, bare: PathBuf) -> Rig {
    let checkout = env.home().join("claude-handoffs");
    env.write_config(&format!(
        "[git]\nremote = {remote:?}\ncheckout = {:?}\nbranch = \"main\"\n",
        checkout.display().to_string()
    ));
    env.var("GIT_CONFIG_NOSYSTEM", "1");
    let mut rig = Rig::new("git", env, DOCS);
    let b2 = bare.clone();
    rig.stored = Box::new(move || documents_in(&b2));
    rig.corrupt = Some(Box::new(|rig: &Rig, uri: &str| corrupt_git_blob(&rig.env.home().join("claude-handoffs"), uri)));
    rig.outside = Some(Box::new(|rig: &Rig, uri: &str| {
        // beside the clone, named relative to it, at a real commit
        let commit = uri.rsplit_once('@').unwrap().1;
        let bytes = b"# not a handoff document\n".to_vec();
        std::fs::write(rig.env.home().join("secret.md"), &bytes).unwrap();
        (format!("git:../secret.md@{commit}"), bytes)
    }));
    rig.places = vec![checkout, bare];
    rig
}

#[cfg(feature = "git")]
/// Rewrites the blob `git:<path>@<commit>` names, in this machine's clone, with one byte changed (a valid
/// loose object under its old name: what a disk or a hostile process could leave).
fn corrupt_git_blob(checkout: &Path, uri: &str) {
    let (path, commit) = uri.strip_prefix("git:").unwrap().rsplit_once('@').unwrap();
    let dir = format!("--git-dir={}", checkout.join(".git").display());
    let o = git(&[&dir, "rev-parse", &format!("{commit}:{path}")]);
    o.ok();
    let oid = o.out().trim().to_string();
    let object = checkout.join(".git/objects").join(&oid[..2]).join(&oid[2..]);
    assert!(object.exists(), "the blob is a loose object in the clone: {}", object.display());
    let script = "import sys,zlib\np=sys.argv[1]\nd=bytearray(zlib.decompress(open(p,'rb').read()))\n\
                  i=len(d)//2\nd[i]^=0x01\nimport os\nos.chmod(p,0o644)\nopen(p,'wb').write(zlib.compress(bytes(d)))\n";
    let o = run({
        let mut c = Command::new("python3");
        c.args(["-c", script]).arg(&object);
        c
    });
    o.ok();
}

#[cfg(feature = "git")]
/// git over `file://` to a bare repository on this machine; the outage moves the repository away.
pub fn git_file() -> Rig {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let bare = crate::git::bare_repo(&env, &tmp.path().join("handoffs.git"));
    let mut rig = git_rig(env, &format!("file://{}", bare.display()), bare.clone());
    let away = tmp.path().join("moved-away.git");
    rig.set_up = Some(Box::new(move |up| {
        let (from, to) = if up { (&away, &bare) } else { (&bare, &away) };
        std::fs::rename(from, to).unwrap();
    }));
    rig._keep = vec![Box::new(tmp)];
    rig
}

#[cfg(feature = "git")]
/// git over ssh to a loopback sshd (an alias in the test HOME's ssh config), which can be stopped.
pub fn git_ssh() -> Rig {
    use crate::support::sshd::Sshd;
    let mut sshd = Sshd::start();
    let mut env = Env::new();
    sshd.setup_client(&mut env, "gitsrv");
    let bare = crate::git::bare_repo(&env, &sshd.server_dir("repos").join("handoffs.git"));
    let mut rig = git_rig(env, &format!("gitsrv:{}", bare.display()), bare);
    rig.set_up = Some(Box::new(move |up| if up { sshd.restart() } else { sshd.kill_all() }));
    rig
}

#[cfg(feature = "git")]
/// git over https (TLS with a test CA trusted in `~/.gitconfig`, basic auth from a credential helper).
pub fn git_https() -> Rig {
    use crate::support::git_http::GitHttpServer;
    const USER: &str = "handoff-bot";
    const TOKEN: &str = "ghp_suite-token-only-in-the-helper";
    let mut server = GitHttpServer::start(USER, TOKEN);
    let bare = server.bare_repo("handoffs.git");
    let env = Env::new();
    let store =
        env.write_secret_file("git-credentials", &format!("https://{USER}:{TOKEN}@localhost:{}\n", server.port));
    std::fs::write(
        env.home().join(".gitconfig"),
        format!(
            "[credential]\n\thelper = store --file {}\n[http]\n\tsslCAInfo = {}\n",
            store.display(),
            server.ca().display()
        ),
    )
    .unwrap();
    let mut rig = git_rig(env, &server.url("handoffs.git"), bare);
    rig.set_up = Some(Box::new(move |up| if up { server.restart() } else { server.stop() }));
    rig
}

/// Email drafts in a real IMAP server (dovecot on loopback, its self-signed certificate trusted through
/// `SSL_CERT_FILE`); the outage stops the server. A draft wraps the document in MIME, so the store is
/// compared by count and the bytes by `fetch`.
#[cfg(feature = "email")]
pub fn email() -> Rig {
    use crate::support::dovecot::{Dovecot, PASSWORD, USER};
    let imap = std::rc::Rc::new(std::cell::RefCell::new(Dovecot::start()));
    let mut env = Env::new();
    env.write_config(&format!(
        "[email]\nimap = \"{}\"\nuser = \"{USER}\"\ndrafts = \"Drafts\"\nto = [\"{USER}\"]\n",
        imap.borrow().url
    ));
    env.var("SSL_CERT_FILE", imap.borrow().ca().display().to_string()).var("HANDOFF_IMAP_PASSWORD", PASSWORD);
    let cfg = std::fs::read_to_string(env.path().join("config/handoff/config.toml")).unwrap();
    env.write_config(&format!("{cfg}\n[route]\npage = [\"email\"]\n"));
    let mut rig = Rig::new("email", env, Can { pages: true, ..DOCS });
    rig.stored_verbatim = false;
    let (i1, i2, i3, i4) = (imap.clone(), imap.clone(), imap.clone(), imap.clone());
    // documents and pages are both drafts: the store is the documents, the pages are read apart
    let drafts_of = |imap: &Dovecot, kind: &str| -> Vec<String> {
        let header = format!("{}: {kind}", handoff_channels::email::draft::KIND_HEADER);
        imap.drafts().into_iter().map(|(_, raw)| raw).filter(|raw| raw.lines().any(|l| l == header)).collect()
    };
    rig.stored = Box::new(move || drafts_of(&i1.borrow(), "document").into_iter().map(String::into_bytes).collect());
    rig.pages = Some(Box::new(move || {
        drafts_of(&i4.borrow(), "page")
            .iter()
            .map(|raw| {
                let d = handoff_channels::email::draft::parse(raw.as_bytes()).expect("a handoff draft");
                String::from_utf8(d.content).unwrap()
            })
            .collect()
    }));
    rig.corrupt = Some(Box::new(move |_: &Rig, uri: &str| corrupt_draft(&i2.borrow().path().join("home"), uri)));
    rig.outside = Some(Box::new(|_: &Rig, uri: &str| {
        // the same draft named through another folder of the mailbox
        let key = uri.strip_prefix("email:").unwrap();
        (format!("email:../INBOX/{key}"), b"x".to_vec())
    }));
    rig.set_up = Some(Box::new(move |up| if up { i3.borrow_mut().restart() } else { i3.borrow_mut().stop() }));
    rig.places = vec![imap.borrow().path().join("home")];
    rig._keep = vec![Box::new(imap)];
    rig
}

/// Changes one character of the document attachment of the draft `email:<key>` on the server's disk, as
/// a mail client editing the draft would (the old message replaced by a new one with the same headers).
#[cfg(feature = "email")]
fn corrupt_draft(mail_home: &Path, uri: &str) {
    let key = uri.strip_prefix("email:").unwrap();
    let drafts = mail_home.join(crate::support::dovecot::USER).join("Maildir/.Drafts");
    let files =
        ["new", "cur"].iter().flat_map(|sub| std::fs::read_dir(drafts.join(sub)).into_iter().flatten().flatten());
    let mut hits = files
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|raw| raw.contains(&format!("X-Handoff-Key: {key}"))));
    let path = hits.next().unwrap_or_else(|| panic!("no draft with key {key} in {}", drafts.display()));
    let mut raw = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    // the middle of the attachment's body (between its headers and the closing boundary), however it is
    // encoded: a lowercase letter there (never part of a quoted-printable `=XX`) changed to another keeps
    // the encoding valid and the size the same
    let part = text.find("Content-Disposition: attachment").expect("the document rides as an attachment");
    // Maildir files may hold LF or CRLF line ends
    let blank = text[part..].find("\n\n").or_else(|| text[part..].find("\n\r\n")).unwrap();
    let start = part + blank + 2;
    let end = start + text[start..].find("\n--").unwrap();
    let mut at = (start + end) / 2;
    while !raw[at].is_ascii_lowercase() {
        at += 1;
    }
    assert!(at < end, "no letter in the attachment's body");
    raw[at] = if raw[at] == b'a' { b'b' } else { b'a' };
    // as a mail client edits a draft: the old message goes, the changed one arrives as a new message
    std::fs::remove_file(&path).unwrap();
    std::fs::write(drafts.join("new").join(format!("{}.edited.localhost", std::process::id())), raw).unwrap();
}
