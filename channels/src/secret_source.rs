//! Where the newer channels (email, slack, discord) read a secret: an environment variable, else a
//! `KEY=value` line of an env file named in their config section (read by [`crate::env_file::read`]).
//! Never the TOML itself.

use crate::ChannelError;
use std::path::Path;

/// The value of `var`: from the environment when set and not empty, else from `env_file` (when given).
/// `Ok(None)` when neither has it. An env file that others can read, or that cannot be read, is an error
/// naming `section` (e.g. `[slack] env_file`) and the fix.
pub fn lookup(var: &str, env_file: Option<&Path>, section: &str) -> Result<Option<String>, ChannelError> {
    if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let Some(path) = env_file else { return Ok(None) };
    let path = crate::paths::expand_tilde(path);
    Ok(crate::env_file::read(&path, section)?.remove(var).filter(|v| !v.is_empty()))
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
