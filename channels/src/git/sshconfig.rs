//! The part of `~/.ssh/config` that decides where an ssh remote really is: libgit2's ssh transport does
//! not read it, so a remote written with a host alias (`droplet:handoffs.git`, `ssh://gh/you/x.git`) would
//! not resolve. For the remote's host this applies `HostName`, `Port`, `User` and `IdentityFile` from the
//! first matching `Host` blocks (first value wins, as in ssh). `Match` blocks and `Include` are not
//! evaluated; host keys are still checked against `~/.ssh/known_hosts` under the real host name and port.

use std::path::{Path, PathBuf};

/// Where an ssh remote points after `~/.ssh/config` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The URL to give libgit2 (unchanged when the config says nothing about the host).
    pub url: String,
    /// Keys named by `IdentityFile` for this host, to try before the default ones.
    pub identity_files: Vec<PathBuf>,
}

/// The parts of an ssh remote URL.
#[derive(Debug, PartialEq, Eq)]
struct SshUrl {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    /// Path as written: absolute (`/srv/x.git`) or relative to the login's home (`x.git`).
    path: String,
}

fn parse(url: &str) -> Option<SshUrl> {
    if let Some(rest) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("git+ssh://")) {
        let (authority, path) = rest.split_at(rest.find('/')?);
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h.to_string(), Some(p.parse().ok()?)),
            _ => (hostport.to_string(), None),
        };
        let path = path.strip_prefix("/~/").map(str::to_string).unwrap_or_else(|| path.to_string());
        return Some(SshUrl { user, host, port, path });
    }
    if url.contains("://") {
        return None;
    }
    let (authority, path) = url.split_once(':')?;
    if authority.contains('/') || authority.len() < 2 {
        return None;
    }
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h.to_string()),
        None => (None, authority.to_string()),
    };
    Some(SshUrl { user, host, port: None, path: path.to_string() })
}

/// `*` and `?` globbing, as in ssh's `Host` patterns.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

fn host_matches(patterns: &[&str], host: &str) -> bool {
    if patterns.iter().any(|p| p.strip_prefix('!').is_some_and(|n| glob(n, host))) {
        return false;
    }
    patterns.iter().any(|p| !p.starts_with('!') && glob(p, host))
}

#[derive(Default)]
struct Block {
    hostname: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_files: Vec<String>,
}

fn read_config(text: &str, host: &str) -> Block {
    let mut out = Block::default();
    let mut active = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (&line[..i], line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '=').trim()),
            None => (line, ""),
        };
        let value = value.trim_matches('"');
        match key.to_ascii_lowercase().as_str() {
            "host" => active = host_matches(&value.split_whitespace().collect::<Vec<_>>(), host),
            "match" => active = false,
            _ if !active => {}
            "hostname" if out.hostname.is_none() => out.hostname = Some(value.replace("%h", host)),
            "port" if out.port.is_none() => out.port = value.parse().ok(),
            "user" if out.user.is_none() => out.user = Some(value.to_string()),
            "identityfile" => out.identity_files.push(value.to_string()),
            _ => {}
        }
    }
    out
}

fn expand(path: &str, home: &Path, host: &str, user: &str) -> PathBuf {
    let p = path.replace("%d", &home.display().to_string()).replace("%h", host).replace("%r", user).replace("%%", "%");
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    }
}

/// Applies `~/.ssh/config` (under `home`) to an ssh remote URL; other URLs come back unchanged.
pub(crate) fn resolve(url: &str, home: Option<&Path>) -> Resolved {
    let unchanged = Resolved { url: url.to_string(), identity_files: Vec::new() };
    let (Some(parsed), Some(home)) = (parse(url), home) else {
        return unchanged;
    };
    let Ok(text) = std::fs::read_to_string(home.join(".ssh/config")) else {
        return unchanged;
    };
    let block = read_config(&text, &parsed.host);
    let user = parsed.user.clone().or(block.user.clone());
    let local_user = std::env::var("USER").unwrap_or_default();
    let identity_files = block
        .identity_files
        .iter()
        .map(|f| expand(f, home, &parsed.host, user.as_deref().unwrap_or(&local_user)))
        .collect();
    if block.hostname.is_none() && block.port.is_none() && block.user.is_none() {
        return Resolved { url: url.to_string(), identity_files };
    }
    let host = block.hostname.unwrap_or(parsed.host);
    let port = parsed.port.or(block.port);
    let path = if parsed.path.starts_with('/') { parsed.path } else { format!("/~/{}", parsed.path) };
    let url = format!(
        "ssh://{}{host}{}{path}",
        user.map(|u| format!("{u}@")).unwrap_or_default(),
        port.map(|p| format!(":{p}")).unwrap_or_default()
    );
    Resolved { url, identity_files }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_config(text: &str, url: &str) -> Resolved {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), text).unwrap();
        let mut r = resolve(url, Some(home.path()));
        for f in &mut r.identity_files {
            *f = f.strip_prefix(home.path()).map(|p| PathBuf::from("~").join(p)).unwrap_or(f.clone());
        }
        r
    }

    const CONFIG: &str = "Host droplet\n  HostName 127.0.0.1\n  Port 2222\n  User ops\n  IdentityFile ~/.ssh/id_droplet\n\n\
                          Host *.corp !bad.corp\n  User corp\n\nHost *\n  Port 22\n  IdentityFile ~/.ssh/id_%h\n";

    #[test]
    fn aliases_resolve_to_host_port_user_and_keys() {
        let r = with_config(CONFIG, "droplet:handoffs.git");
        assert_eq!(r.url, "ssh://ops@127.0.0.1:2222/~/handoffs.git");
        assert_eq!(r.identity_files, [PathBuf::from("~/.ssh/id_droplet"), PathBuf::from("~/.ssh/id_droplet")]);
        let r = with_config(CONFIG, "ssh://me@droplet/srv/h.git");
        assert_eq!(r.url, "ssh://me@127.0.0.1:2222/srv/h.git", "the URL's user wins over the config's");
        assert_eq!(with_config(CONFIG, "git@x.corp:a/b.git").url, "ssh://git@x.corp:22/~/a/b.git");
        assert_eq!(with_config(CONFIG, "bad.corp:a.git").url, "ssh://bad.corp:22/~/a.git");
        assert_eq!(with_config(CONFIG, "https://h/x.git").url, "https://h/x.git");
        assert_eq!(with_config("", "git@github.com:a/b.git").url, "git@github.com:a/b.git");
    }

    #[test]
    fn url_forms_parse() {
        assert_eq!(
            parse("ssh://git@h:2200/x.git"),
            Some(SshUrl { user: Some("git".into()), host: "h".into(), port: Some(2200), path: "/x.git".into() })
        );
        assert_eq!(parse("hh:x.git"), Some(SshUrl { user: None, host: "hh".into(), port: None, path: "x.git".into() }));
        assert_eq!(parse("/srv/x.git"), None);
        assert_eq!(parse("C:/x"), None);
    }
}
