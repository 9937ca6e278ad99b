//! The real `handoff send` against the corpus of issue 14's secret formats (tests/fixtures/secrets/
//! formats.txt): every sample refused in the text, in a `--doc`, and in a `--file` as plain text, UTF-16, a
//! .zip member and a .tar.gz member; none of the lookalikes (formats_lookalikes.txt) refused.

use crate::support::{Env, OutputExt, repo_root, run};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The bus password the corpus names (`Kn0wn-Bus-Pass`): handoff loads it from `BUS_PASS`.
const KNOWN: &str = "Kn0wn-Bus-Pass";

fn samples(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/secrets").join(file)).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("%% ") {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// `text` as four files in `dir`: plain, UTF-16LE with a BOM, inside a .zip, inside a .tar.gz.
fn four_files(dir: &Path, stem: &str, text: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let plain = dir.join(format!("{stem}.env"));
    std::fs::write(&plain, text).unwrap();
    let utf16 = dir.join(format!("{stem}-utf16.env"));
    let bytes: Vec<u8> = [0xff, 0xfe].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    std::fs::write(&utf16, bytes).unwrap();
    let zip_path = dir.join(format!("{stem}.zip"));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("README.md", opts).unwrap();
    z.write_all(b"# deploy notes\n").unwrap();
    z.start_file("config/.env", opts).unwrap();
    z.write_all(text.as_bytes()).unwrap();
    z.finish().unwrap();
    let tgz = dir.join(format!("{stem}.tar.gz"));
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&tgz).unwrap(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "project/.env", text.as_bytes()).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    vec![plain, utf16, zip_path, tgz]
}

fn send(env: &Env, args: &[&str], files: &[PathBuf]) -> std::process::Output {
    let mut c = env.handoff("a");
    c.args(["--json", "send", "--dry-run", "--to", "b"]).args(args);
    for f in files {
        c.arg("--file").arg(f);
    }
    run(c)
}

#[test]
fn every_secret_format_is_refused_in_text_doc_and_files_and_no_lookalike_is() {
    let mut env = Env::new();
    env.var("BUS_PASS", KNOWN);
    let formats = samples("formats.txt");
    assert!(formats.len() >= 20);
    for (i, (name, text)) in formats.iter().enumerate() {
        for args in [vec![text.as_str()], vec!["--doc", text.as_str()]] {
            let out = send(&env, &args, &[]);
            assert_eq!(out.code(), 65, "{name} in {:?} was not refused: {}", &args[..args.len() - 1], out.out());
        }
        let files = four_files(&env.path().join(format!("f{i}")), "deploy", text);
        let out = send(&env, &["see attached"], &files);
        assert_eq!(out.code(), 65, "{name} in files was not refused: {}", out.out());
        let findings = out.json()["findings"].to_string();
        for f in &files {
            let base = f.file_name().unwrap().to_string_lossy().to_string();
            assert!(findings.contains(&format!("--file {base}")), "{name}: nothing found in {base}: {findings}");
        }
        assert!(!out.out().contains(text.trim()), "{name}: the refusal shows the secret");
    }
    let lookalikes = samples("formats_lookalikes.txt");
    let all: String = lookalikes.iter().map(|(_, t)| t.as_str()).collect();
    let files = four_files(&env.path().join("lookalikes"), "lookalikes", &all);
    for args in [vec![all.as_str()], vec!["--doc", all.as_str()]] {
        let out = send(&env, &args, &files);
        assert_eq!(out.code(), 0, "a lookalike was refused: {}", out.out());
    }
}

#[test]
fn an_archive_too_large_to_scan_is_refused_unless_allowed() {
    let env = Env::new();
    let dir = env.path().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.tar.gz");
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    // zeros compress to almost nothing: 300 MiB unpacked, over the scan limit of 256 MiB (binary members are
    // not scanned, but they are read, and count)
    let size: u64 = 300 << 20;
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "zeros.txt", std::io::repeat(0).take_bytes(size)).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    let out = send(&env, &["the build"], std::slice::from_ref(&path));
    assert_eq!(out.code(), 65, "{}", out.out());
    assert!(out.out().contains("too large to scan"), "{}", out.out());
    let out = send(&env, &["--allow-secret", "the build"], std::slice::from_ref(&path));
    assert_eq!(out.code(), 0, "{}", out.err());
}

/// `Read::take` under a name that does not clash with `Write` in scope.
trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}

impl<R: std::io::Read> TakeBytes for R {}
