//! Process entry: parse the command line, set up logging and the runtime, run the command, map errors to
//! exit codes.

use crate::cli::{BusCommand, Cli, Command, DropletCommand};
use crate::config::{Overrides, Settings};
use crate::exit;
use clap::Parser;

/// Runs handoff and returns the process exit code.
pub fn main() -> i32 {
    quiet_on_closed_stdout();
    if matches!(subcommand_word(std::env::args_os()).as_deref(), Some("send" | "reply")) {
        // the secret scan comes first in a send: its detectors compile while the command line and the
        // config are read (a guess from the first word: one that misses costs a send a few milliseconds)
        crate::secrets::warm_up();
    }
    // `COMPLETE=bash handoff` prints the dynamic completion script; the shell then calls back here
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let e = with_not_built_tip(e, handoff_channels::ChannelSections::built);
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            if code != exit::OK && wants_json(std::env::args_os()) {
                let text = e.render().to_string();
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad command line");
                let error = first.trim_start_matches("error: ").trim();
                crate::output::json("error", code, serde_json::json!({ "error": error }));
            }
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    crate::output::set_quiet(cli.quiet);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("handoff: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let json = cli.json;
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_of(&e);
            if json {
                crate::output::json("error", code, serde_json::json!({ "error": format!("{e:#}") }));
            }
            // an error may quote text from other machines: nothing raw reaches the terminal
            eprintln!("handoff: {}", handoff_channels::untrusted::body(&format!("{e:#}")));
            code
        }
    };
    crate::output::flush();
    // Work the command gave up waiting for (a channel call cut short by the send deadline, blocking on a
    // server that hangs) must not hold the process: the runtime's drop would wait for it however long it
    // takes. After half a second it is left behind, as if killed, which every write of handoff survives.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// A flag of a channel this build lacks (`init --git-remote` without the git feature) is unknown to
/// clap: the error gets a tip naming the cargo feature that has it. `built` says whether a channel is.
fn with_not_built_tip(mut e: clap::Error, built: impl Fn(&str) -> bool) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use handoff_channels::ChannelSections;
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return e };
    let flag = arg.strip_prefix("--").unwrap_or("").split('=').next().unwrap_or("");
    let Some(name) =
        ChannelSections::NAMES.iter().find(|n| !built(n) && (flag == **n || flag.starts_with(&format!("{n}-"))))
    else {
        return e;
    };
    let tip = format!(
        "this build of handoff has no {name} channel; rebuild it with `--features {}`",
        ChannelSections::feature(name).unwrap_or(name)
    );
    let mut tips = match e.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(tips)) => tips.clone(),
        _ => Vec::new(),
    };
    tips.push(tip.into());
    e.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    e
}

/// True when the raw command line asks for JSON (`--json` or `-j`), for errors clap found before it
/// could parse the flag itself.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1).take_while(|a| a != "--").any(|a| {
        let a = a.to_string_lossy();
        a == "--json" || (a.starts_with('-') && !a.starts_with("--") && a[1..].contains('j'))
    })
}

/// The subcommand's word as it stands on the command line: the first argument that is neither an option
/// nor the value of `--config` / `--machine`.
fn subcommand_word(args: impl Iterator<Item = std::ffi::OsString>) -> Option<String> {
    let mut args = args.skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        if a == "--config" || a == "--machine" {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a.into_owned());
        }
    }
    None
}

/// A last guard for output written outside [`crate::output`] (a library printing on its own): a panic
/// about a closed stdout ends the process quietly instead of with a stack trace.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") || msg.contains("Broken pipe") {
            std::process::exit(exit::OK);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // Logs are for -v and RUST_LOG only: what a user must know is said once, plainly, by the command.
    let default = match verbose {
        0 => "off",
        1 => "info,handoff=info",
        _ => "debug",
    };
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none_or(|v| v.is_empty()) {
        // nothing is logged: no subscriber at all (building one costs a command about half a millisecond)
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let overrides = Overrides { config: cli.config.clone(), machine: cli.machine.clone() };
    match cli.command {
        Command::Bus(BusCommand::Serve(a)) => crate::commands::bus::serve(a).await,
        Command::Bus(BusCommand::Import(a)) => crate::commands::bus::import(a, cli.json).await,
        Command::Bus(BusCommand::Migrate(a)) => crate::commands::bus::migrate(a, cli.json).await,
        Command::Send(a) => crate::commands::send::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Sync(a) => crate::commands::sync::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Fetch(a) => crate::commands::fetch::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Flush(a) => crate::commands::flush::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Doctor(a) => crate::commands::doctor::run(&overrides, a, cli.json).await,
        Command::Droplet(DropletCommand::Prune(a)) => {
            crate::commands::droplet::prune(Settings::load(&overrides)?, a, cli.json).await
        }
        Command::Mcp(a) => crate::commands::mcp::run(overrides, a).await,
        Command::Watch(a) => crate::commands::watch::run(&overrides, a, cli.json).await,
        Command::Status => crate::commands::status::run(Settings::load(&overrides)?, cli.json).await,
        Command::Show(a) => crate::commands::show::run(Settings::load(&overrides)?, a, cli.json),
        Command::Reply(a) => crate::commands::reply::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Outbox(c) => crate::commands::outbox::run(Settings::load(&overrides)?, c, cli.json).await,
        Command::Keys(a) => crate::commands::keys::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Day(d) => crate::commands::day(d, &overrides, cli.json).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip_for(args: &[&str], built: impl Fn(&str) -> bool) -> String {
        let e = Cli::try_parse_from([&["handoff"], args].concat()).unwrap_err();
        with_not_built_tip(e, built).render().to_string()
    }

    #[test]
    fn a_flag_of_a_channel_not_built_gets_a_tip_naming_its_feature() {
        let name = handoff_channels::ChannelSections::NAMES[0];
        let flag = format!("--{name}-no-such-flag");
        let shown = tip_for(&["init", &flag], |_| false);
        assert!(shown.contains("unexpected argument") && shown.contains(&flag), "{shown}");
        assert!(shown.contains(&format!("tip: this build of handoff has no {name} channel")), "{shown}");
        assert!(shown.contains(&format!("--features {name}")), "{shown}");
        let shown = tip_for(&["init", &format!("--{name}=x")], |_| false);
        assert!(shown.contains("rebuild"), "{shown}");
        // a built channel, a flag of no channel, a look-alike name: clap's own error, untouched
        assert!(!tip_for(&["init", &flag], |_| true).contains("rebuild"));
        assert!(!tip_for(&["init", "--bogus"], |_| false).contains("rebuild"));
        assert!(!tip_for(&["init", &format!("--{name}x")], |_| false).contains("rebuild"));
    }

    #[test]
    fn the_subcommand_word_skips_options_and_the_values_of_config_and_machine() {
        let word =
            |args: &[&str]| subcommand_word(std::iter::once("handoff").chain(args.iter().copied()).map(Into::into));
        assert_eq!(word(&["send", "hi"]).as_deref(), Some("send"));
        assert_eq!(word(&["-v", "--json", "reply", "--to", "x"]).as_deref(), Some("reply"));
        assert_eq!(word(&["--config", "send", "sync"]).as_deref(), Some("sync"));
        assert_eq!(word(&["--machine", "reply", "--config=c.toml", "send"]).as_deref(), Some("send"));
        assert_eq!(word(&["-q", "--config"]), None);
    }
}
