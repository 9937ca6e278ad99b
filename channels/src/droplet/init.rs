//! The droplet's part in `handoff init`: `--droplet-host` (one of `~/.ssh/config`'s hosts, listed and
//! picked on a terminal) and `--droplet-dir`; before writing, init checks that the host answers ssh.

use super::{DropletConfig, NAME};
use crate::ChannelError;
use crate::init::{InitChoice, InitFlags, InitPlace, InitProbe, InitSection, toml_string};

/// The droplet's flags of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct DropletInitFlags {
    /// SSH host (or ~/.ssh/config alias) of the droplet.
    #[arg(long, value_name = "HOST")]
    pub droplet_host: Option<String>,
    /// Directory on the droplet.
    #[arg(long, value_name = "DIR", default_value = "/opt/claude-bus-files")]
    pub droplet_dir: String,
}

impl InitFlags for DropletInitFlags {
    const LISTED_IN_PLAN: bool = true;

    fn choose(&self, place: &InitPlace<'_>) -> Result<InitChoice, ChannelError> {
        let hosts = std::fs::read_to_string(place.home.join(".ssh/config")).map(|t| ssh_hosts(&t)).unwrap_or_default();
        match place.pick("ssh hosts (droplet for transient files)", &hosts, &hosts, self.droplet_host.clone())? {
            Some(host) => {
                let toml =
                    format!("[{NAME}]\nhost = {}\ndir = {}\n", toml_string(&host), toml_string(&self.droplet_dir));
                let plan = serde_json::json!({ "host": host, "dir": self.droplet_dir });
                Ok(InitChoice { section: Some(InitSection { toml, plan: Some(plan) }), notes: Vec::new() })
            }
            None if !hosts.is_empty() => Ok(InitChoice {
                section: None,
                notes: vec![format!(
                    "ssh hosts found: {}; pass --droplet-host HOST to use one as the droplet",
                    hosts.join(", ")
                )],
            }),
            None => Ok(InitChoice::default()),
        }
    }
}

/// What init checks before writing `[droplet]`: the host answers ssh and the directory is writable.
pub(super) fn probe(config: &DropletConfig) -> InitProbe {
    InitProbe::Health { label: format!("droplet host {}", crate::untrusted::inline(&config.host)) }
}

/// Host aliases in an ssh config (no wildcards, no negations).
pub fn ssh_hosts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let mut parts = l.splitn(2, |c: char| c.is_whitespace() || c == '=');
        if !parts.next().is_some_and(|k| k.eq_ignore_ascii_case("host")) {
            continue;
        }
        for h in parts.next().unwrap_or("").split_whitespace() {
            if !h.contains(['*', '?', '!']) && !out.iter().any(|x| x == h) {
                out.push(h.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_hosts_skip_patterns() {
        let t = "Host droplet bus-box\n  HostName 1.2.3.4\nHost *\n  ForwardAgent no\nhost=gh !bad\nMatch all\n";
        assert_eq!(ssh_hosts(t), vec!["droplet", "bus-box", "gh"]);
    }
}
