//! `handoff hooks install|uninstall`: Claude Code integration. Merges a SessionStart hook
//! (`handoff sync --format claude-hook`) and a SessionEnd hook (`handoff flush --background`) into a
//! Claude Code settings file — `~/.claude/settings.json` (`--user`, the default) or the project's
//! `.claude/settings.json` (`--project`) — without touching any other key or hook. Installing twice
//! changes nothing more; `uninstall` removes only handoff's own hooks.
//!
//! The settings shape (Claude Code's hooks contract): `hooks` → event name → a list of
//! `{ "matcher": "...", "hooks": [ { "type": "command", "command": "..." } ] }` groups.

use crate::cli::{HooksArgs, HooksCommand};
use crate::config::ConfigError;
use crate::exit;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Arguments of the SessionStart hook's command (after the program).
pub const START_ARGS: &str = "sync --format claude-hook";
/// Arguments of the SessionEnd hook's command: returns at once, the flush runs detached.
pub const END_ARGS: &str = "flush --background";
/// The line to put in CLAUDE.md for sessions where a hook did not fire.
pub const CLAUDE_MD_LINE: &str = "If no \"handoff:\" digest appeared at session start, run `handoff sync` first; before you stop, run `handoff flush`.";

/// handoff's two hooks: (event, arguments).
const OURS: [(&str, &str); 2] = [("SessionStart", START_ARGS), ("SessionEnd", END_ARGS)];

/// True when `command` is one of handoff's own hook commands (any path to the `handoff` binary).
pub fn is_ours(command: &str) -> bool {
    let c = command.trim();
    OURS.iter().any(|(_, args)| {
        c.strip_suffix(args).is_some_and(|prog| {
            let prog = prog.trim_end();
            let prog = prog.trim_matches(|ch| ch == '"' || ch == '\'');
            !prog.is_empty() && Path::new(prog).file_stem().is_some_and(|s| s == "handoff")
        })
    })
}

fn shape_err(path: &Path, what: &str) -> anyhow::Error {
    ConfigError(format!(
        "{}: {what}; Claude Code expects \"hooks\": {{ \"EventName\": [ {{ \"matcher\": \"\", \"hooks\": [ {{ \"type\": \"command\", \"command\": \"...\" }} ] }} ] }} — fix the file by hand, then run this again",
        path.display()
    ))
    .into()
}

/// Adds handoff's hooks to a parsed settings document, calling the binary `bin`. An existing handoff hook
/// with another binary path is updated in place. Returns true when anything changed.
pub fn install(settings: &mut Value, bin: &str, path: &Path) -> anyhow::Result<bool> {
    let root = settings.as_object_mut().ok_or_else(|| shape_err(path, "the top level is not a JSON object"))?;
    let hooks = root.entry("hooks").or_insert_with(|| Value::Object(Map::new()));
    let hooks = hooks.as_object_mut().ok_or_else(|| shape_err(path, "\"hooks\" is not an object"))?;
    let mut changed = false;
    for (event, args) in OURS {
        let want = format!("{bin} {args}");
        let groups = hooks.entry(event).or_insert_with(|| Value::Array(Vec::new()));
        let groups =
            groups.as_array_mut().ok_or_else(|| shape_err(path, &format!("\"hooks.{event}\" is not a list")))?;
        let mut found = false;
        for g in groups.iter_mut() {
            let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) else {
                continue;
            };
            for h in list.iter_mut() {
                let Some(cmd) = h.get("command").and_then(Value::as_str) else {
                    continue;
                };
                if is_ours(cmd) && cmd.trim().ends_with(args) {
                    if found {
                        continue;
                    }
                    found = true;
                    if cmd != want {
                        h["command"] = Value::String(want.clone());
                        changed = true;
                    }
                }
            }
        }
        if !found {
            groups.push(json!({ "matcher": "", "hooks": [ { "type": "command", "command": want } ] }));
            changed = true;
        }
    }
    Ok(changed)
}

/// Removes handoff's hooks (and only them) from a parsed settings document; containers that become empty
/// because of the removal are removed too, so install + uninstall gives back the original. Returns how
/// many hook entries were removed.
pub fn uninstall(settings: &mut Value) -> usize {
    let Some(root) = settings.as_object_mut() else {
        return 0;
    };
    let Some(hooks) = root.get_mut("hooks").and_then(Value::as_object_mut) else {
        return 0;
    };
    let mut removed = 0;
    let mut empty_events = Vec::new();
    for (event, groups) in hooks.iter_mut() {
        let Some(groups) = groups.as_array_mut() else {
            continue;
        };
        let before = removed;
        groups.retain_mut(|g| {
            let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) else {
                return true;
            };
            let n = list.len();
            list.retain(|h| !h.get("command").and_then(Value::as_str).is_some_and(is_ours));
            let gone = n - list.len();
            removed += gone;
            !(gone > 0 && list.is_empty())
        });
        if removed > before && groups.is_empty() {
            empty_events.push(event.clone());
        }
    }
    for e in &empty_events {
        hooks.shift_remove(e);
    }
    if removed > 0 && hooks.is_empty() {
        root.shift_remove("hooks");
    }
    removed
}

/// The project a project-scope install edits: `--dir`, else `$CLAUDE_PROJECT_DIR`, else the current
/// directory. Shared by the hooks' settings and the MCP server's `.mcp.json`.
pub fn project_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match (dir, std::env::var_os("CLAUDE_PROJECT_DIR")) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => std::env::current_dir()?,
    })
}

/// The settings file a scope means.
pub fn settings_path(project: bool, dir: Option<&Path>, home: &Path) -> anyhow::Result<PathBuf> {
    if project {
        return Ok(project_dir(dir)?.join(".claude").join("settings.json"));
    }
    let base = std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".claude"));
    Ok(base.join("settings.json"))
}

pub(crate) fn read_settings(path: &Path) -> anyhow::Result<(Value, Option<String>)> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok((Value::Object(Map::new()), Some(text))),
        Ok(text) => {
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                ConfigError(format!("{} is not valid JSON ({e}); fix it by hand, nothing was changed", path.display()))
            })?;
            Ok((v, Some(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Value::Object(Map::new()), None)),
        Err(e) => Err(ConfigError(format!("cannot read {}: {e}", path.display())).into()),
    }
}

pub(crate) fn write_settings(path: &Path, v: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    handoff_channels::fsutil::write_atomic_private(path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The program the hooks call: `--bin`, else this binary's absolute path (Claude Code runs hooks with a
/// PATH that may not hold the directory `handoff` was installed in).
fn default_bin() -> String {
    match std::env::current_exe().ok().and_then(|p| p.canonicalize().ok()) {
        Some(me) => command_word(&me.display().to_string(), cfg!(windows)),
        None => "handoff".into(),
    }
}

/// A program path as the first word of a hook's command line. On Windows: without the `\\?\` prefix that
/// `canonicalize` adds, and with `/` separators, which cmd.exe, PowerShell and Git Bash (what Claude Code
/// runs hooks with) all accept, where Bash would eat `\`. Quoted when it holds a space.
fn command_word(path: &str, windows: bool) -> String {
    let p = if windows {
        let p = path.strip_prefix(r"\\?\UNC\").map(|r| format!(r"\\{r}")).unwrap_or_else(|| path.to_string());
        let p = p.strip_prefix(r"\\?\").map(str::to_string).unwrap_or(p);
        p.replace('\\', "/")
    } else {
        path.to_string()
    };
    if p.contains(' ') { format!("\"{p}\"") } else { p }
}

/// Runs `handoff hooks ...`.
pub fn run(cmd: HooksCommand, home: &Path, json: bool) -> anyhow::Result<i32> {
    let (install_it, a): (bool, HooksArgs) = match cmd {
        HooksCommand::Install(a) => (true, a),
        HooksCommand::Uninstall(a) => (false, a),
    };
    if a.mcp {
        return super::hooks_mcp::run(install_it, &a, home, json);
    }
    let path = settings_path(a.project, a.dir.as_deref(), home)?;
    let (mut v, existed) = read_settings(&path)?;
    let (changed, removed) = if install_it {
        let bin = a.bin.clone().unwrap_or_else(default_bin);
        (install(&mut v, &bin, &path)?, 0)
    } else {
        let n = uninstall(&mut v);
        (n > 0, n)
    };
    // uninstall leaves no empty settings file (and no empty `.claude` folder) behind
    let deleted = !install_it && changed && v.as_object().is_some_and(|o| o.is_empty());
    if deleted {
        std::fs::remove_file(&path).map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    } else if changed {
        write_settings(&path, &v)?;
    }
    let hooks: Vec<Value> = OURS
        .iter()
        .map(|(event, _)| {
            let cmds: Vec<&str> = v["hooks"][event]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["hooks"].as_array())
                .flatten()
                .filter_map(|h| h["command"].as_str())
                .filter(|c| is_ours(c))
                .collect();
            json!({ "event": event, "commands": cmds })
        })
        .collect();
    if json {
        crate::output::json(
            "hooks",
            exit::OK,
            json!({ "action": if install_it { "install" } else { "uninstall" }, "settings": path, "changed": changed, "removed": removed, "deleted": deleted, "hooks": hooks, "claude_md_line": CLAUDE_MD_LINE }),
        );
    } else if install_it {
        if changed {
            crate::outln!("installed handoff's SessionStart and SessionEnd hooks in {}", path.display());
        } else {
            crate::outln!("handoff's hooks are already in {} (nothing changed)", path.display());
        }
        crate::outln!("if a hook does not fire, put this line in CLAUDE.md:\n  {CLAUDE_MD_LINE}");
    } else if removed > 0 {
        crate::outln!(
            "removed {removed} handoff hook(s) from {}{}",
            path.display(),
            if deleted { " (nothing else was in it: the file is gone)" } else { "" }
        );
    } else if existed.is_some() {
        crate::outln!("no handoff hooks in {} (nothing changed)", path.display());
    } else {
        crate::outln!("{} does not exist (nothing to remove)", path.display());
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_become_a_command_word_every_windows_shell_runs() {
        assert_eq!(command_word(r"\\?\C:\Users\me\bin\handoff.exe", true), "C:/Users/me/bin/handoff.exe");
        assert_eq!(
            command_word(r"\\?\C:\Program Files\handoff\handoff.exe", true),
            "\"C:/Program Files/handoff/handoff.exe\""
        );
        assert_eq!(command_word(r"\\?\UNC\nas\tools\handoff.exe", true), "//nas/tools/handoff.exe");
        assert!(is_ours(&format!("{} {START_ARGS}", command_word(r"\\?\C:\x y\handoff.exe", true))));
        assert_eq!(command_word("/usr/local/bin/handoff", false), "/usr/local/bin/handoff");
        assert_eq!(command_word("/opt/my tools/handoff", false), "\"/opt/my tools/handoff\"");
    }

    #[test]
    fn recognises_its_own_commands_only() {
        assert!(is_ours("handoff sync --format claude-hook"));
        assert!(is_ours("/usr/local/bin/handoff flush --background"));
        assert!(is_ours("\"C:/Program Files/handoff/handoff.exe\" flush --background"));
        assert!(!is_ours("handoff sync"));
        assert!(!is_ours("myhandoff sync --format claude-hook"));
        assert!(!is_ours("echo handoff flush --background; rm x"));
        assert!(!is_ours("flush --background"));
    }

    #[test]
    fn install_then_uninstall_round_trips() {
        let orig = json!({
            "model": "opus",
            "hooks": { "SessionStart": [ { "matcher": "startup", "hooks": [ { "type": "command", "command": "echo hi" } ] } ],
                       "PreToolUse": [ { "matcher": "Bash", "hooks": [ { "type": "command", "command": "lint" } ] } ] },
            "permissions": { "allow": ["Bash(ls)"] }
        });
        let p = Path::new("settings.json");
        let mut v = orig.clone();
        assert!(install(&mut v, "handoff", p).unwrap());
        let once = v.clone();
        assert!(!install(&mut v, "handoff", p).unwrap());
        assert_eq!(v, once);
        assert_eq!(v["hooks"]["SessionStart"].as_array().unwrap().len(), 2);
        assert_eq!(v["hooks"]["SessionEnd"][0]["hooks"][0]["command"], "handoff flush --background");
        // a new binary path replaces the old one instead of adding a second hook
        assert!(install(&mut v, "/opt/bin/handoff", p).unwrap());
        assert_eq!(v["hooks"]["SessionStart"].as_array().unwrap().len(), 2);
        assert_eq!(uninstall(&mut v), 2);
        assert_eq!(v, orig);
        assert_eq!(serde_json::to_string(&v).unwrap(), serde_json::to_string(&orig).unwrap(), "key order kept");
    }

    #[test]
    fn empty_settings_round_trip_and_bad_shapes_are_refused() {
        let mut v = json!({});
        install(&mut v, "handoff", Path::new("s.json")).unwrap();
        uninstall(&mut v);
        assert_eq!(v, json!({}));
        let mut bad = json!({ "hooks": [] });
        let e = install(&mut bad, "handoff", Path::new("s.json")).unwrap_err().to_string();
        assert!(e.contains("\"hooks\" is not an object") && e.contains("s.json"), "{e}");
        assert_eq!(bad, json!({ "hooks": [] }), "nothing changed");
    }
}
