//! `handoff watch install` / `uninstall`: `handoff watch` as a user service that starts at login and
//! restarts on failure: a systemd user unit on Linux, a launchd agent on macOS, a scheduled task on
//! Windows. The service runs this binary by its absolute path with the options given to `install`.

use crate::cli::{WatchRun, WatchServiceArgs};
use crate::config::Overrides;
use crate::exit;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd unit's file name (and the launchd label's / scheduled task's stem).
pub const UNIT: &str = "handoff-watch.service";
/// The launchd agent's label.
pub const LAUNCHD_LABEL: &str = "dev.handoff.watch";
/// The scheduled task's name.
pub const TASK: &str = "handoff-watch";

/// The command line the service runs: this binary, the config and machine, `watch` and its options.
pub fn service_argv(exe: &Path, o: &Overrides, run: &WatchRun) -> anyhow::Result<Vec<String>> {
    let mut argv = vec![exe.display().to_string()];
    if let Some(c) = &o.config {
        argv.extend(["--config".to_string(), std::path::absolute(c)?.display().to_string()]);
    }
    if let Some(m) = &o.machine {
        argv.extend(["--machine".to_string(), m.clone()]);
    }
    argv.push("watch".into());
    if let Some(cmd) = &run.exec {
        argv.extend(["--exec".to_string(), cmd.clone()]);
    }
    if let Some(every) = run.every {
        argv.extend(["--every".to_string(), humantime::format_duration(every).to_string()]);
    }
    if let Some(q) = &run.quiet_hours {
        super::QuietHours::parse(q)?;
        argv.extend(["--quiet-hours".to_string(), q.clone()]);
    }
    argv.extend(["--max-runs-per-hour".to_string(), run.max_runs_per_hour.to_string()]);
    argv.extend(["--poll".to_string(), humantime::format_duration(run.poll).to_string()]);
    if let Some(bad) = argv.iter().find(|a| a.chars().any(char::is_control)) {
        return Err(exit::with_code(
            exit::USAGE,
            anyhow::anyhow!("{bad:?} holds a control character (a newline?); a service command line cannot"),
        ));
    }
    Ok(argv)
}

/// One argument quoted for a systemd `ExecStart=` line: double quotes, `\` and `"` escaped, `%` and `$`
/// doubled (systemd would expand them).
fn systemd_quote(a: &str) -> String {
    let mut out = String::from("\"");
    for c in a.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The systemd user unit.
pub fn systemd_unit(argv: &[String], data_dir: Option<&str>) -> String {
    let exec = argv.iter().map(|a| systemd_quote(a)).collect::<Vec<_>>().join(" ");
    let env = data_dir
        .map(|d| format!("Environment={}\n", systemd_quote(&format!("HANDOFF_DATA_DIR={d}"))))
        .unwrap_or_default();
    format!(
        "# Written by `handoff watch install`; removed by `handoff watch uninstall`.\n\
         [Unit]\n\
         Description=handoff watch: act on new handoff messages for this machine\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         {env}\
         Restart=on-failure\n\
         RestartSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The launchd agent (property list).
pub fn launchd_plist(argv: &[String], data_dir: Option<&str>, log: &Path) -> String {
    let args = argv.iter().map(|a| format!("    <string>{}</string>\n", xml_escape(a))).collect::<String>();
    let env = data_dir
        .map(|d| {
            format!(
                "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>HANDOFF_DATA_DIR</key>\n    <string>{}</string>\n  </dict>\n",
                xml_escape(d)
            )
        })
        .unwrap_or_default();
    let log = xml_escape(&log.display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  <string>{LAUNCHD_LABEL}</string>\n  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n{env}  <key>RunAtLoad</key>\n  <true/>\n  <key>KeepAlive</key>\n  <true/>\n  <key>StandardErrorPath</key>\n  <string>{log}</string>\n</dict>\n</plist>\n"
    )
}

/// One argument quoted for a Windows command line (the scheduled task's `/TR`).
fn windows_quote(a: &str) -> String {
    if !a.is_empty() && !a.contains([' ', '\t', '"']) {
        return a.to_string();
    }
    format!("\"{}\"", a.replace('"', "\\\""))
}

/// Where the service file goes on this platform (None on Windows: the task lives in Task Scheduler).
fn service_file(home: &Path) -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        Some(home.join("Library/LaunchAgents").join(format!("{LAUNCHD_LABEL}.plist")))
    } else if cfg!(windows) {
        None
    } else {
        let base = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".config"));
        Some(base.join("systemd/user").join(UNIT))
    }
}

/// Runs a service manager command; a failure is returned as text (the file is written either way).
fn manage(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    match Command::new(program).args(args.iter().map(OsString::from)).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`{shown}` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("cannot run `{shown}`: {e}")),
    }
}

/// `handoff watch install`.
pub fn install(o: &Overrides, run: &WatchRun, svc: &WatchServiceArgs, json: bool) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?.canonicalize()?;
    let argv = service_argv(&exe, o, run)?;
    let dirs = crate::config::Dirs::platform()?;
    let data_env = std::env::var("HANDOFF_DATA_DIR").ok();
    let path = service_file(&dirs.home);
    let mut notes = Vec::new();
    if let Some(p) = &path {
        let text = if cfg!(target_os = "macos") {
            launchd_plist(&argv, data_env.as_deref(), &dirs.data.join("logs/watch.log"))
        } else {
            systemd_unit(&argv, data_env.as_deref())
        };
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        handoff_channels::fsutil::write_atomic_private(p, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if !svc.no_enable {
        let result = if cfg!(target_os = "macos") {
            let p = path.as_ref().expect("a plist on macOS").display().to_string();
            let _ = manage("launchctl", &["unload", &p]);
            manage("launchctl", &["load", "-w", &p])
        } else if cfg!(windows) {
            let tr = argv.iter().map(|a| windows_quote(a)).collect::<Vec<_>>().join(" ");
            manage("schtasks", &["/Create", "/F", "/TN", TASK, "/SC", "ONLOGON", "/TR", &tr])
        } else {
            manage("systemctl", &["--user", "daemon-reload"])
                .and_then(|()| manage("systemctl", &["--user", "enable", "--now", UNIT]))
        };
        if let Err(e) = result {
            notes.push(format!("written but not started: {e}"));
        }
    }
    if json {
        println!("{}", serde_json::json!({ "ok": true, "service": path, "command": argv, "notes": notes }));
    } else {
        match &path {
            Some(p) => println!("wrote {}", p.display()),
            None => println!("scheduled task {TASK}"),
        }
        for n in &notes {
            println!("note: {n}");
        }
    }
    Ok(exit::OK)
}

/// `handoff watch uninstall`.
pub fn uninstall(svc: &WatchServiceArgs, json: bool) -> anyhow::Result<i32> {
    let dirs = crate::config::Dirs::platform()?;
    let path = service_file(&dirs.home);
    if !svc.no_enable {
        // stopping something that is not running is fine
        let _ = if cfg!(target_os = "macos") {
            manage("launchctl", &["unload", "-w", &path.as_ref().expect("plist").display().to_string()])
        } else if cfg!(windows) {
            manage("schtasks", &["/Delete", "/F", "/TN", TASK])
        } else {
            manage("systemctl", &["--user", "disable", "--now", UNIT])
        };
    }
    let removed = match &path {
        Some(p) => match std::fs::remove_file(p) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(anyhow::anyhow!("cannot remove {}: {e}", p.display())),
        },
        None => true,
    };
    if !svc.no_enable && !cfg!(windows) && !cfg!(target_os = "macos") {
        let _ = manage("systemctl", &["--user", "daemon-reload"]);
    }
    if json {
        println!("{}", serde_json::json!({ "ok": true, "service": path, "removed": removed }));
    } else if let Some(p) = &path {
        if removed {
            println!("removed {}", p.display());
        } else {
            println!("{} does not exist (nothing to remove)", p.display());
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quoting_keeps_the_command_one_argument_and_unexpanded() {
        assert_eq!(systemd_quote(r#"say "hi" $HOME 100% \n"#), r#""say \"hi\" $$HOME 100%% \\n""#);
        let unit = systemd_unit(&["/bin/handoff".into(), "watch".into(), "--exec".into(), "a; b".into()], None);
        assert!(unit.contains("ExecStart=\"/bin/handoff\" \"watch\" \"--exec\" \"a; b\"\n"), "{unit}");
    }

    #[test]
    fn plist_escapes_xml() {
        let p = launchd_plist(&["/bin/handoff".into(), "a<b&c".into()], Some("/d"), Path::new("/l"));
        assert!(p.contains("<string>a&lt;b&amp;c</string>"), "{p}");
        assert!(p.contains("<key>HANDOFF_DATA_DIR</key>"), "{p}");
    }

    #[test]
    fn windows_quoting() {
        assert_eq!(windows_quote("plain"), "plain");
        assert_eq!(windows_quote("two words"), "\"two words\"");
        assert_eq!(windows_quote("a\"b"), "\"a\\\"b\"");
    }
}
