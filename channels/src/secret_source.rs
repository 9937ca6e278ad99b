//! Where the newer channels (email, slack, discord) read a secret: an environment variable, else a
//! `KEY=value` line of an env file named in their config section (the bus's env file format). Never the
//! TOML itself.

use crate::ChannelError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `~/x` → `$HOME/x`; anything else unchanged.
pub fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// The value of `var`: from the environment when set and not empty, else from `env_file` (when given).
/// `Ok(None)` when neither has it. An env file that others can read, or that cannot be read, is an error
/// naming `section` (e.g. `[slack] env_file`) and the fix.
pub fn lookup(var: &str, env_file: Option<&Path>, section: &str) -> Result<Option<String>, ChannelError> {
    if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let Some(path) = env_file else { return Ok(None) };
    let path = expand_home(path);
    Ok(read_env_file(&path, section)?.remove(var).filter(|v| !v.is_empty()))
}

/// Reads an env file: `KEY=value` lines, `export ` prefixes, matching quotes, `#` comments. Refuses a
/// file that others can read (group or other mode bits; on Windows its ACL), as ssh does with keys.
pub fn read_env_file(path: &Path, section: &str) -> Result<HashMap<String, String>, ChannelError> {
    if let Ok(a) = crate::private_file::access(path)
        && !a.private
    {
        return Err(ChannelError::permanent(format!(
            "{section} {} holds secrets but is readable by others ({}); fix it with: {}",
            path.display(),
            a.detail,
            crate::private_file::make_private_command(path)
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ChannelError::permanent(format!("cannot read {section} {}: {e}", path.display())))?;
    let mut out = HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let unquoted = [('"', '"'), ('\'', '\'')]
                .iter()
                .find_map(|(a, b)| v.strip_prefix(*a).and_then(|r| r.strip_suffix(*b)))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), unquoted.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_then_the_private_file_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.env");
        std::fs::write(&p, "# c\nexport HANDOFF_TEST_SECRET_A='q v'\nOTHER=1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup("HANDOFF_TEST_SECRET_A", Some(&p), "[x] env_file").unwrap().as_deref(), Some("q v"));
        assert_eq!(lookup("HANDOFF_TEST_SECRET_MISSING", Some(&p), "[x] env_file").unwrap(), None);
        assert_eq!(lookup("HANDOFF_TEST_SECRET_MISSING", None, "[x] env_file").unwrap(), None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = lookup("HANDOFF_TEST_SECRET_A", Some(&p), "[x] env_file").unwrap_err();
        assert!(e.message.contains("chmod 600") && e.message.contains("[x] env_file"), "{e}");
    }
}
