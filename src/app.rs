//! Process entry: parse the command line, set up logging and the runtime, run the command, map errors to
//! exit codes.

use crate::cli::{BusCommand, Cli, Command, DropletCommand};
use crate::config::{Overrides, Settings};
use crate::exit;
use clap::Parser;

/// Runs handoff and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("handoff: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_of(&e);
            if json {
                println!("{}", serde_json::json!({ "ok": false, "error": format!("{e:#}"), "exit_code": code }));
            }
            // an error may quote text from other machines: nothing raw reaches the terminal
            eprintln!("handoff: {}", handoff_channels::untrusted::body(&format!("{e:#}")));
            code
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info,handoff=info",
        _ => "debug",
    };
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
        Command::Keys(a) => crate::commands::keys::run(Settings::load(&overrides)?, a, cli.json).await,
        Command::Day(d) => crate::commands::day(d, &overrides, cli.json).await,
    }
}
