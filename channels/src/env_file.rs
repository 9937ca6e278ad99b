//! Env files (`KEY=value` lines), as the original bus's `claude-bus.env` and a Twilio env file are
//! written: the one parser handoff has for them, and the conventional bus env file's path.

use crate::ChannelError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The conventional bus env file (`BUS_URL`, `BUS_USER`, `BUS_PASS`), as the original bus set it up.
/// Also the default place the email channel reads its password from.
pub const DEFAULT_BUS_ENV_FILE: &str = "~/.secrets/claude-bus.env";

/// [`DEFAULT_BUS_ENV_FILE`] under `home` (native separators).
pub fn default_bus_env_file(home: &Path) -> PathBuf {
    crate::paths::expand_home(Path::new(DEFAULT_BUS_ENV_FILE), home)
}

/// Reads an env file: `KEY=value` lines, optional `export `, optional matching quotes, `#` comments and
/// blank lines. Refuses a file that others can read, as ssh does with keys: group or other mode bits on
/// Unix, its ACL on Windows ([`crate::private_file`]). A line that is not `KEY=value` is an error naming
/// the file and the line. `what` names the file in errors (`the bus env file`, `[sms] env_file`).
pub fn read(path: &Path, what: &str) -> Result<BTreeMap<String, String>, ChannelError> {
    let cannot = |e: std::io::Error| ChannelError::permanent(format!("cannot read {what} {}: {e}", path.display()));
    let access = crate::private_file::access(path).map_err(cannot)?;
    if !access.private {
        return Err(ChannelError::permanent(format!(
            "{what} {} holds secrets but is readable by others ({}); fix it with: {}",
            path.display(),
            access.detail,
            crate::private_file::make_private_command(path)
        )));
    }
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    parse(&text)
        .map_err(|line| ChannelError::permanent(format!("{what} {} line {line}: expected KEY=VALUE", path.display())))
}

/// Parses env-file text; `Err(line)` names the first line (1-based) that is not `KEY=value`.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut out = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(n + 1);
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(n + 1);
        }
        let v = v.trim();
        let v = ['"', '\''].iter().find_map(|q| v.strip_prefix(*q).and_then(|s| s.strip_suffix(*q))).unwrap_or(v);
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_format_parses_and_a_broken_line_is_named() {
        let m = parse("# bus\nexport BUS_USER=claude\n  BUS_PASS=\"p w\"\nTOKEN='a=b'\nEMPTY=\n\n").unwrap();
        assert_eq!(m["BUS_USER"], "claude");
        assert_eq!(m["BUS_PASS"], "p w");
        assert_eq!(m["TOKEN"], "a=b", "only the first = splits");
        assert_eq!(m["EMPTY"], "");
        assert_eq!(m.len(), 4);
        // a lone quote or mismatched quotes are kept as written, not half-stripped
        let m = parse("A=\"\nB='x\"\n").unwrap();
        assert_eq!((m["A"].as_str(), m["B"].as_str()), ("\"", "'x\""));
        assert_eq!(parse("A=1\nBROKEN\n"), Err(2));
        assert_eq!(parse("=no key\n"), Err(1));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.env");
        std::fs::write(&p, "K=v\nnot a line\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&p, "the test env file").unwrap_err();
        assert!(e.message.contains("chmod 600") && e.message.contains("the test env file"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read(&p, "the test env file").unwrap_err();
        assert!(e.message.contains("line 2: expected KEY=VALUE"), "{e}");
        let e = read(&d.path().join("missing.env"), "the test env file").unwrap_err();
        assert!(e.message.starts_with("cannot read the test env file"), "{e}");
    }

    #[test]
    fn the_default_is_under_home() {
        let p = default_bus_env_file(Path::new("/h"));
        assert_eq!(p, Path::new("/h").join(".secrets").join("claude-bus.env"));
    }
}
