//! `handoff hooks install --mcp` / `uninstall --mcp`: registers `handoff mcp` as an MCP server for Claude
//! Code, by this binary's absolute path, in the project's `.mcp.json` (`--project`) or the user's
//! `~/.claude.json`. Idempotent; every other server and key is kept.

use super::hooks::{read_settings, write_settings};
use crate::cli::HooksArgs;
use crate::config::ConfigError;
use crate::exit;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The server's name in `mcpServers` (Claude Code shows it; `--channels server:handoff` names it).
pub const SERVER_NAME: &str = "handoff";

/// The file `--mcp` edits: `.mcp.json` of the project, else the user's `.claude.json`.
pub fn mcp_config_path(project: bool, dir: Option<&Path>, home: &Path) -> anyhow::Result<PathBuf> {
    if project {
        return Ok(super::hooks::project_dir(dir)?.join(".mcp.json"));
    }
    let base = std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| home.to_path_buf());
    Ok(base.join(".claude.json"))
}

/// The server entry: this binary by absolute path, `mcp` (and `--channel`).
pub fn server_entry(command: &str, channel: bool) -> Value {
    let mut args = vec!["mcp"];
    if channel {
        args.push("--channel");
    }
    json!({ "type": "stdio", "command": command, "args": args, "env": {} })
}

/// Puts `entry` under `mcpServers.handoff`; returns whether anything changed.
pub fn register(v: &mut Value, entry: Value, path: &Path) -> anyhow::Result<bool> {
    let shape =
        || ConfigError(format!("{} is not a JSON object with an `mcpServers` object; fix it by hand", path.display()));
    let root = v.as_object_mut().ok_or_else(shape)?;
    let servers = root.entry("mcpServers").or_insert_with(|| Value::Object(Map::new()));
    let servers = servers.as_object_mut().ok_or_else(shape)?;
    if servers.get(SERVER_NAME) == Some(&entry) {
        return Ok(false);
    }
    servers.insert(SERVER_NAME.into(), entry);
    Ok(true)
}

/// Removes `mcpServers.handoff`; returns whether it was there.
pub fn unregister(v: &mut Value) -> bool {
    v.get_mut("mcpServers").and_then(|s| s.as_object_mut()).and_then(|s| s.shift_remove(SERVER_NAME)).is_some()
}

/// Runs `hooks install|uninstall --mcp`.
pub fn run(install: bool, a: &HooksArgs, home: &Path, json: bool) -> anyhow::Result<i32> {
    let path = mcp_config_path(a.project, a.dir.as_deref(), home)?;
    let (mut v, _) = read_settings(&path)?;
    let changed = if install {
        let command = match &a.bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.canonicalize()?.display().to_string(),
        };
        register(&mut v, server_entry(&command, a.channel), &path)?
    } else {
        unregister(&mut v)
    };
    if changed {
        write_settings(&path, &v)?;
    }
    let entry = v.get("mcpServers").and_then(|s| s.get(SERVER_NAME)).cloned();
    if json {
        println!(
            "{}",
            json!({ "ok": true, "action": if install { "install" } else { "uninstall" }, "file": path, "changed": changed, "server": entry })
        );
    } else if install {
        println!(
            "{} the MCP server `{SERVER_NAME}` in {}{}",
            if changed { "registered" } else { "already registered (nothing changed):" },
            path.display(),
            if a.channel {
                "\nto let it push messages into a session: claude --dangerously-load-development-channels server:handoff"
            } else {
                ""
            }
        );
    } else if changed {
        println!("removed the MCP server `{SERVER_NAME}` from {}", path.display());
    } else {
        println!("no MCP server `{SERVER_NAME}` in {} (nothing changed)", path.display());
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_keeps_other_servers_and_is_idempotent() {
        let mut v = json!({ "mcpServers": { "other": { "command": "x" } }, "keep": 1 });
        let p = Path::new(".mcp.json");
        assert!(register(&mut v, server_entry("/opt/handoff", true), p).unwrap());
        assert!(!register(&mut v, server_entry("/opt/handoff", true), p).unwrap());
        assert_eq!(v["mcpServers"]["other"]["command"], "x");
        assert_eq!(v["mcpServers"]["handoff"]["args"], json!(["mcp", "--channel"]));
        assert!(unregister(&mut v));
        assert!(!unregister(&mut v));
        assert_eq!(v["keep"], 1);
        assert!(register(&mut json!([1]), server_entry("/h", false), p).is_err());
        assert!(register(&mut json!({ "mcpServers": 3 }), server_entry("/h", false), p).is_err());
    }
}
