//! Safe names for stored payloads: whatever the user's file is called, what lands on a store is one plain
//! file name inside the target directory.

/// Longest stored name, in bytes.
pub const MAX_NAME_LEN: usize = 120;

/// Turns any file name into one safe path component: no separators, no `..`, no control characters, no
/// leading `-` or `.`, no shell metacharacters; non-empty. Letters (any script), digits, `.`, `_`, `-`, `+`
/// and `=` are kept; everything else becomes `_`.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut out: String = base
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '=') { c } else { '_' })
        .collect();
    while out.starts_with(['.', '-']) {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() || out.chars().all(|c| c == '_') && base.is_empty() {
        out = "file".into();
    }
    if out.len() > MAX_NAME_LEN {
        let mut cut = MAX_NAME_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// True when `rel` is a relative path that stays inside its base directory (no `..`, not absolute).
pub fn stays_inside(rel: &str) -> bool {
    let p = std::path::Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_plain_component() {
        for (given, want) in [
            ("report.pdf", "report.pdf"),
            ("a b.png", "a_b.png"),
            ("../../etc/passwd", "passwd"),
            ("/abs/x.txt", "x.txt"),
            ("$(rm -rf ~).txt", "__rm_-rf___.txt"),
            ("`id`;x", "_id__x"),
            ("-rf", "_rf"),
            ("..", "_."),
            (".hidden", "_hidden"),
            ("quote'\"", "quote__"),
            ("new\nline", "new_line"),
            ("", "file"),
            ("é日本.txt", "é日本.txt"),
        ] {
            assert_eq!(safe_file_name(given), want, "for {given:?}");
        }
        assert!(safe_file_name(&"x".repeat(500)).len() <= MAX_NAME_LEN);
    }

    #[test]
    fn inside_check_refuses_escapes() {
        assert!(stays_inside("2026/11/a.png"));
        assert!(!stays_inside("../a"));
        assert!(!stays_inside("/etc/passwd"));
        assert!(!stays_inside("a/../../b"));
        assert!(!stays_inside(""));
    }
}
