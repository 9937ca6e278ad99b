//! Checks of the code's shape that the architecture promises (docs/architecture.md): channels are named in
//! their own modules and the registration list, not all over the application.

use std::path::{Path, PathBuf};

/// Every channel name on main: the bus, the embedded payload folder and the nine optional channels.
const CHANNEL_NAMES: [&str; 11] =
    ["bus", "local", "git", "drive", "droplet", "sms", "email", "slack", "discord", "imessage", "folder"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The places in `src/` (outside `src/commands/` and unit tests, comments aside) that spell a channel's
/// name as a string literal: `"sms"`, `feature = "git"`, ...
fn spellings(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files.iter().filter(|f| !f.starts_with(root.join("src/commands"))) {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test") {
                break; // unit tests come last in a file
            }
            if t.starts_with("//") {
                continue;
            }
            for name in CHANNEL_NAMES {
                let quoted = format!("\"{name}\"");
                for _ in line.matches(&quoted) {
                    out.push(format!("{}:{}: {}", f.strip_prefix(root).unwrap().display(), n + 1, t));
                }
            }
        }
    }
    out
}

#[test]
fn at_most_ten_places_in_src_spell_a_channel_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = spellings(root);
    assert!(found.len() <= 10, "{} places spell a channel's name (at most 10):\n{}", found.len(), found.join("\n"));
}

#[test]
fn the_name_count_sees_a_spelling_and_skips_comments_and_unit_tests() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("src/commands")).unwrap();
    std::fs::write(
        d.path().join("src/router.rs"),
        "let a = \"sms\"; let b = (\"drive\", \"git\");\n// \"droplet\" in a comment\n#[cfg(test)]\nmod tests { const X: &str = \"bus\"; }\n",
    )
    .unwrap();
    std::fs::write(d.path().join("src/commands/send.rs"), "let c = \"folder\";\n").unwrap();
    let found = spellings(d.path());
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("src/router.rs:1: "), "{found:?}");
}
