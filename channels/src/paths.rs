//! `~` in paths written in config files: the one place handoff expands it.

use std::path::{Path, PathBuf};

/// This user's home directory: `$HOME`, else `%USERPROFILE%` (Windows); `None` when neither is set.
pub fn home_dir() -> Option<PathBuf> {
    ["HOME", "USERPROFILE"].iter().filter_map(std::env::var_os).find(|h| !h.is_empty()).map(PathBuf::from)
}

/// Expands a leading `~` (the whole first component: `~/x`, `~`; not `~user/x` or `a/~`) to `home`. The
/// rest is rebuilt component by component, so a path written with `/` (in the config, or handoff's own
/// defaults) is shown with the platform's separators (`\` on Windows). Anything else is returned as given.
pub fn expand_home(p: &Path, home: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => {
            let mut out = home.to_path_buf();
            out.extend(rest.components());
            out
        }
        Err(_) => p.to_path_buf(),
    }
}

/// [`expand_home`] with this user's [`home_dir`]; the path is returned as given when there is no home.
pub fn expand_tilde(p: &Path) -> PathBuf {
    match home_dir() {
        Some(home) => expand_home(p, &home),
        None => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_tilde_component_is_expanded() {
        let home = Path::new("/home/u");
        assert_eq!(expand_home(Path::new("~/.secrets/a.env"), home), home.join(".secrets").join("a.env"));
        assert_eq!(expand_home(Path::new("~"), home), home);
        // hostile or look-alike forms stay as written: another user's home, a tilde later on, a relative path
        for kept in ["~root/.ssh/id", "a/~/b", "/etc/~", "x", "", "~~/a"] {
            assert_eq!(expand_home(Path::new(kept), home), PathBuf::from(kept), "{kept:?}");
        }
        // `..` after the tilde is kept as a component, not resolved (the caller checks where a path leads)
        assert_eq!(expand_home(Path::new("~/../x"), home), home.join("..").join("x"));
    }
}
