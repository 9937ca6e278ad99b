//! The command line (clap definitions). Every command's `--help` carries an example.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Hand work between AI coding-agent sessions on different machines.
#[derive(Debug, Parser)]
#[command(name = "handoff", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file (default: the platform config dir's handoff/config.toml).
    #[arg(long, global = true, env = "HANDOFF_CONFIG", hide_env_values = true, value_name = "PATH", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// This machine's name (default: `machine` from the config, else the short hostname).
    #[arg(long, global = true, env = "HANDOFF_MACHINE", hide_env_values = true, value_name = "NAME", help_heading = GLOBAL)]
    pub machine: Option<String>,
    /// Machine-readable output: one JSON line on stdout (docs/json.md).
    #[arg(short = 'j', long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print nothing on stdout but JSON and what was asked for; errors still go to stderr.
    #[arg(short = 'q', long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Log to stderr (-v info, -vv debug); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Heading of the flags every command takes.
pub const GLOBAL: &str = "Global options";

/// Exit codes, shown in `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 ok · 1 failure · 2 usage · 65 input refused · 69 channel refused · 75 queued in the outbox (delivered by the next run or `handoff flush`) · 77 credentials refused · 78 config error";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message, a document or files (end of a session).
    #[command(
        after_help = "Examples:\n  handoff send --to mac-studio \"tests pass; PR ready for review\"\n  handoff send --doc notes.md --title \"Session recap\"\n  handoff send --file screenshot.png --file trace.json \"the crash, see trace\"\n  git diff | handoff send - --to any --tag diff\n  handoff send --urgent \"prod deploy is stuck\"\n  handoff send --dry-run --file big.iso"
    )]
    Send(SendArgs),
    /// Pick up what other sessions left for this machine (start of a session).
    #[command(
        after_help = "Examples:\n  handoff sync\n  handoff sync --fetch --format json\n  handoff sync --format claude-hook   # in a Claude Code SessionStart hook"
    )]
    Sync(SyncArgs),
    /// Download what a pointer message points to and verify its sha256.
    #[command(after_help = "Examples:\n  handoff fetch 42\n  handoff fetch 42 --out ~/Downloads --force")]
    Fetch(FetchArgs),
    /// Deliver what the outbox holds.
    #[command(
        after_help = "Examples:\n  handoff flush\n  handoff flush --background   # in a Claude Code SessionEnd hook: returns at once"
    )]
    Flush(FlushArgs),
    /// Check this machine's setup, one line per check.
    #[command(after_help = "Examples:\n  handoff doctor\n  handoff doctor --send-test --json")]
    Doctor(DoctorArgs),
    /// This machine's encryption key and the keys of the others (end-to-end encryption with age).
    #[command(
        after_help = "Without a subcommand: create this machine's key if missing, publish it on the bus, show it.\n\nExamples:\n  handoff keys\n  handoff keys list\n  handoff keys trust mac-studio      # accept mac-studio's changed key\n  handoff send --encrypt --to mac-studio \"the plan\""
    )]
    Keys(KeysArgs),
    /// Serve handoff to an agent over MCP (stdio): tools send, inbox, show, fetch, reply, status; with
    /// --channel, new messages are pushed into the running Claude Code session.
    #[command(
        after_help = "Examples:\n  handoff mcp                      # tools only\n  handoff mcp --channel            # and push new messages live (claude/channel)\n  handoff hooks install --mcp      # register it in the project's .mcp.json"
    )]
    Mcp(McpArgs),
    /// Wake a machine with no live session: run a command when messages arrive, or sync on a schedule.
    #[command(
        after_help = "Examples:\n  handoff watch --exec 'claude -p \"read the handoff digest on stdin and act on it\"'\n  handoff watch --exec ./on-message.sh --quiet-hours 22:00-07:00 --max-runs-per-hour 4\n  handoff watch --every 15m\n  handoff watch install --exec ./on-message.sh   # systemd user unit / launchd agent / scheduled task\n  handoff watch uninstall"
    )]
    Watch(WatchArgs),
    /// Where things stand: this machine, the bus and unread count, the outbox, the last sync, the channels.
    #[command(after_help = "Examples:\n  handoff status\n  handoff status --json")]
    Status,
    /// A received or sent message again, with its pointer items, their fetch state and its thread.
    #[command(after_help = "Examples:\n  handoff show 42\n  handoff show 42 --json")]
    Show(ShowArgs),
    /// Reply to a message: to its sender, tagged `re:ID`, so the thread can be followed.
    #[command(after_help = "Examples:\n  handoff reply 42 \"done; merged\"\n  handoff reply -m 42 \"on it\"")]
    Reply(ReplyArgs),
    /// See and manage what waits in the outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Run or manage the bus server.
    #[command(subcommand)]
    Bus(BusCommand),
    /// Housekeeping on the SSH droplet.
    #[command(subcommand)]
    Droplet(DropletCommand),
    /// hooks, log, completions, man, init, config.
    #[command(flatten)]
    Day(DayCommand),
}

/// `handoff show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A bus message id (received or sent) or an outbox job id.
    #[arg(value_name = "ID", add = crate::complete::message_ids())]
    pub id: String,
}

/// `handoff reply`.
#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// The message replied to (instead of the first positional argument).
    #[arg(short = 'm', long = "message", value_name = "ID", add = crate::complete::message_ids())]
    pub message: Option<String>,
    /// The message replied to (completed from received messages); with -m, the TEXT.
    #[arg(value_name = "ID", add = crate::complete::message_ids())]
    pub first: String,
    /// The reply; `-` reads it from stdin.
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
    /// Also page a human (as `send --urgent`).
    #[arg(long)]
    pub urgent: bool,
}

/// `handoff outbox ...`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// The jobs waiting, oldest first, with what is left and the last error.
    #[command(after_help = "Examples:\n  handoff outbox list\n  handoff outbox list --json")]
    List,
    /// Try one job again now (a step that failed for good is tried again too).
    #[command(after_help = "Example:\n  handoff outbox retry 01a20c85aa0374aca1539a8ac7d2ace7")]
    Retry(OutboxIdArgs),
    /// Discard one job: nothing of it will be delivered.
    #[command(after_help = "Example:\n  handoff outbox drop 01a20c85aa0374aca1539a8ac7d2ace7")]
    Drop(OutboxIdArgs),
}

/// The job an `outbox` subcommand acts on.
#[derive(Debug, Args)]
pub struct OutboxIdArgs {
    /// The job id (`handoff outbox list` shows them).
    #[arg(value_name = "JOB")]
    pub id: String,
}

/// `handoff droplet ...`.
#[derive(Debug, Subcommand)]
pub enum DropletCommand {
    /// Remove payloads handoff put on the droplet that are older than a given age (nothing else is touched).
    #[command(
        after_help = "Examples:\n  handoff droplet prune --older-than 7d\n  handoff droplet prune --older-than 36h --dry-run --json"
    )]
    Prune(PruneArgs),
}

/// `handoff droplet prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Age above which handoff's payloads are removed: `7d`, `36h`, `90min`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: std::time::Duration,
    /// List what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write an age such as 7d, 36h or 90min"))
}

/// `handoff send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The message text, `-` to read stdin; with --doc, a markdown file (or `-`).
    pub text: Option<String>,
    /// Recipient machine, or `any` for every machine.
    #[arg(short = 't', long, default_value = "any", value_name = "NAME", add = crate::complete::machine_names())]
    pub to: String,
    /// Send to a machine never seen before even though its name resembles a known one.
    #[arg(long)]
    pub new_machine: bool,
    /// A file to send (repeatable).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Send the text as a long-form document (git).
    #[arg(long)]
    pub doc: bool,
    /// Title of the document or summary of the handoff.
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Page a human by SMS after the bus message.
    #[arg(long)]
    pub urgent: bool,
    /// Files need a lasting copy (drive) rather than the droplet.
    #[arg(long)]
    pub keep: bool,
    /// A tag for the bus message (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Force one channel: bus, git, drive, droplet, local.
    #[arg(long, value_name = "CHANNEL")]
    pub via: Option<String>,
    /// Print the plan without sending anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Encrypt end to end (age) to the recipient's key and this machine's own: the bus, drive, droplet
    /// and git hold only ciphertext. Config `encrypt = "always"` makes it the default.
    #[arg(long)]
    pub encrypt: bool,
    /// Send the text, never encrypted, even when the config says `encrypt = "always"`.
    #[arg(long, conflicts_with = "encrypt")]
    pub no_encrypt: bool,
    /// Send even though the secret scanner found a private key, token, password or loaded secret in it.
    #[arg(long)]
    pub allow_secret: bool,
}

/// `handoff mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Also declare the `claude/channel` capability and push each new message for this machine into the
    /// session as it arrives (long-polling the bus).
    #[arg(long)]
    pub channel: bool,
}

/// `handoff watch`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WatchArgs {
    /// Install or remove the watcher as a user service.
    #[command(subcommand)]
    pub command: Option<WatchCommand>,
    /// What to watch for and do.
    #[command(flatten)]
    pub run: WatchRun,
}

/// How `handoff watch` runs (also what `watch install` puts in the service).
#[derive(Debug, Clone, Args)]
pub struct WatchRun {
    /// Command run (through the shell) once per batch of new messages, the digest on its stdin.
    #[arg(long, value_name = "CMD", conflicts_with = "every", required_unless_present = "every")]
    pub exec: Option<String>,
    /// Instead of watching: run `sync` every DUR (`15m`, `1h`).
    #[arg(long, value_name = "DUR", value_parser = parse_age)]
    pub every: Option<std::time::Duration>,
    /// Do not run the command in this local-time window (`22:00-07:00`); messages wait until it ends.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub quiet_hours: Option<String>,
    /// Run the command at most this many times an hour; messages beyond wait for the next run.
    #[arg(long, value_name = "N", default_value = "12")]
    pub max_runs_per_hour: u32,
    /// Longest wait of one long-poll of the bus.
    #[arg(long, value_name = "DUR", value_parser = parse_age, default_value = "25s")]
    pub poll: std::time::Duration,
}

/// `handoff watch install|uninstall`.
#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Write and enable a user service running `handoff watch` with these options: a systemd user unit
    /// (Linux), a launchd agent (macOS) or a scheduled task (Windows).
    #[command(
        after_help = "Examples:\n  handoff watch install --exec ./on-message.sh --quiet-hours 22:00-07:00\n  handoff watch install --every 15m\n  handoff watch install --exec ./on-message.sh --no-enable   # only write the unit"
    )]
    Install(WatchInstallArgs),
    /// Stop and remove the service `watch install` wrote.
    #[command(
        after_help = "Examples:\n  handoff watch uninstall\n  handoff watch uninstall --no-enable   # only remove the file"
    )]
    Uninstall(WatchServiceArgs),
}

/// `handoff watch install`.
#[derive(Debug, Args)]
pub struct WatchInstallArgs {
    /// What the service runs.
    #[command(flatten)]
    pub run: WatchRun,
    /// Where the service lives.
    #[command(flatten)]
    pub service: WatchServiceArgs,
}

/// Where `watch install` writes.
#[derive(Debug, Clone, Args)]
pub struct WatchServiceArgs {
    /// Only write (or remove) the service file; do not call systemctl / launchctl / schtasks.
    #[arg(long)]
    pub no_enable: bool,
}

/// `handoff keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// What to do (default: create if missing, publish when new, show).
    #[command(subcommand)]
    pub command: Option<KeysCommand>,
}

/// `handoff keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print this machine's public key (`age1...`).
    #[command(after_help = "Examples:\n  handoff keys show\n  handoff keys show --json")]
    Show,
    /// The keys of other machines this machine knows, where each came from, and held-back changes.
    #[command(after_help = "Examples:\n  handoff keys list\n  handoff keys list --json")]
    List,
    /// Post this machine's public key on the bus (to `any`) again.
    #[command(after_help = "Example:\n  handoff keys publish")]
    Publish,
    /// Accept a machine's changed key (or pin a key given here, checked with its owner out of band).
    #[command(
        after_help = "Examples:\n  handoff keys trust mac-studio\n  handoff keys trust mac-studio age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
    )]
    Trust {
        /// The machine.
        #[arg(value_name = "MACHINE")]
        peer: String,
        /// Its public key (`age1...`); default: the changed key sync reported.
        recipient: Option<String>,
    },
}

/// Output format of `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncFormat {
    /// For people.
    Text,
    /// Machine-readable.
    Json,
    /// The JSON a Claude Code SessionStart hook injects as context.
    ClaudeHook,
}

/// `handoff sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Also download what new pointers point to.
    #[arg(long)]
    pub fetch: bool,
    /// Output format (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: SyncFormat,
    /// Where `--fetch` puts downloads (default: the data directory's `inbox/<message id>/`, as for `fetch`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Time budget of `--format claude-hook` (default: `[budget] hook`, 5s); what does not fit is left to
    /// a background run or the next sync and named first in the context.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub budget: Option<std::time::Duration>,
}

/// `handoff fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A bus message id, or a pointer body (the `handoff-pointer/v1 {...}` line).
    #[arg(add = crate::complete::message_ids())]
    pub target: String,
    /// Directory to write into (default: the data directory's `inbox/<message id>/`, as for `sync --fetch`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `handoff flush`.
#[derive(Debug, Args)]
pub struct FlushArgs {
    /// Start the flush as a detached background process and return at once (for hooks with a short
    /// time limit); its output goes to the data dir's `logs/flush.log`.
    #[arg(long)]
    pub background: bool,
    /// Retry only, never mark a job failed (the background flush a hook starts).
    #[arg(long, hide = true)]
    pub implicit: bool,
}

/// `handoff doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also post a message on a scratch tag and acknowledge it (a full bus round trip).
    #[arg(long)]
    pub send_test: bool,
}

/// `handoff bus ...`.
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Run the bus server (a drop-in for the original Flask bus). The password comes from BUS_PASS or the env file.
    #[command(
        after_help = "Examples:\n  BUS_PASS=... handoff bus serve --listen 127.0.0.1:8765\n  handoff bus serve --env-file ~/.secrets/claude-bus.env --data /var/lib/handoff-bus"
    )]
    Serve(ServeArgs),
    /// Load the original bus's JSON-lines data file into the embedded store or PostgreSQL.
    #[command(
        after_help = "Examples:\n  handoff bus import /opt/claude-bus/bus.jsonl --data /var/lib/handoff-bus\n  PGPASSWORD=... handoff bus import bus.jsonl --store postgres://bus@db.internal:5432/bus"
    )]
    Import(ImportArgs),
    /// Copy a whole bus from one store to another (embedded <-> PostgreSQL), keeping ids, order,
    /// timestamps and read state. Re-runnable: messages already in the target are skipped.
    #[command(
        after_help = "Stores: sqlite:DIR (the embedded store's data directory) or postgres://USER@HOST:PORT/DB\n(the password comes from PGPASSWORD, in the environment or the env file; never in the URL).\n\nExamples:\n  handoff bus migrate --from sqlite:/var/lib/handoff-bus --to postgres://bus@db.internal:5432/bus\n  handoff bus migrate --from postgres://bus@db.internal/bus --to sqlite:/var/lib/handoff-bus-copy"
    )]
    Migrate(MigrateArgs),
}

/// `handoff bus migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Store to copy from: sqlite:DIR or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// Store to copy into: sqlite:DIR or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Env file that may hold PGPASSWORD (default: ~/.secrets/claude-bus.env when present).
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

/// `handoff bus serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765", value_name = "ADDR")]
    pub listen: String,
    /// Data directory (default: the platform data dir's `bus/`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Env file with BUS_USER / BUS_PASS (default: ~/.secrets/claude-bus.env when present).
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Where messages live: sqlite:DIR (the default, embedded) or postgres://USER@HOST:PORT/DB for
    /// several replicas on one database (password from PGPASSWORD, never in the URL).
    #[arg(long, value_name = "STORE", env = "HANDOFF_BUS_STORE", conflicts_with = "data")]
    pub store: Option<String>,
    /// Address of a reverse proxy (nginx) whose X-Forwarded-For names the real client (repeatable;
    /// comma-separated in the env var). Without it the header is ignored.
    #[arg(long, value_name = "IP", env = "HANDOFF_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Take Twilio's inbound-SMS webhook at POST /twilio/sms: a person's text answer to a page becomes
    /// a bus message (needs --public-url, --twilio-allow, and TWILIO_TOKEN in the environment or env file).
    #[arg(long, requires_all = ["public_url", "twilio_allow"])]
    pub twilio_webhook: bool,
    /// The server's public URL as Twilio and browsers reach it (e.g. https://bus.example.com behind
    /// nginx); the webhook URL to paste into Twilio's console is this plus /twilio/sms.
    #[arg(long, value_name = "URL", env = "HANDOFF_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A phone number (E.164) whose texts the webhook takes (repeatable: the people the machines page).
    #[arg(long, value_name = "NUMBER")]
    pub twilio_allow: Vec<String>,
    /// The person's name on the bus: `from` of their SMS answers and of what they write in /inbox.
    #[arg(long, visible_alias = "human", value_name = "NAME", default_value = "human")]
    pub twilio_human: String,
}

/// `handoff bus import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The original bus's data file (one JSON message per line).
    pub file: PathBuf,
    /// Data directory of the server to import into (default as for `bus serve`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Store to import into instead: sqlite:DIR or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "STORE", conflicts_with = "data")]
    pub store: Option<String>,
    /// Env file that may hold PGPASSWORD (default: ~/.secrets/claude-bus.env when present).
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

/// Commands that fit handoff into people's day: hooks, history, set-up, completions (flattened into
/// [`Command`]).
#[derive(Debug, Subcommand)]
pub enum DayCommand {
    /// Install or remove handoff's Claude Code hooks (SessionStart: sync; SessionEnd: background flush).
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// The local history of what this machine sent and received.
    #[command(
        after_help = "Examples:\n  handoff log\n  handoff log --with mac-studio --since 2d\n  handoff log --channel drive --show sent --json"
    )]
    Log(LogArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  handoff completions bash > ~/.local/share/bash-completion/completions/handoff\n  handoff completions zsh > \"${fpath[1]}/_handoff\"\n  handoff completions fish > ~/.config/fish/completions/handoff.fish\n  handoff completions powershell >> $PROFILE"
    )]
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    #[command(after_help = "Examples:\n  handoff man | man -l -\n  handoff man > ~/.local/share/man/man1/handoff.1")]
    Man,
    /// Write a config file from what this machine already has (bus env file, rclone.conf, ssh config, git remote).
    #[command(after_help = init_examples(handoff_channels::ChannelSections::built))]
    Init(Box<InitArgs>),
    /// The config file's reference.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `handoff config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the annotated example config: every key, explained (built into this binary).
    #[command(after_help = "Examples:\n  handoff config example\n  handoff config example > handoff.example.toml")]
    Example,
}

/// `handoff hooks ...`.
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Merge the hooks into Claude Code's settings.json (idempotent; other hooks and keys are kept).
    #[command(
        after_help = "Examples:\n  handoff hooks install            # ~/.claude/settings.json\n  handoff hooks install --project  # .claude/settings.json of this project"
    )]
    Install(HooksArgs),
    /// Remove handoff's hooks (and only them) from Claude Code's settings.json.
    #[command(after_help = "Example:\n  handoff hooks uninstall --project")]
    Uninstall(HooksArgs),
}

/// Which settings file `hooks` edits.
#[derive(Debug, Clone, Args)]
pub struct HooksArgs {
    /// The project's `.claude/settings.json` (in --dir, else $CLAUDE_PROJECT_DIR, else the current dir).
    #[arg(long, conflicts_with = "user")]
    pub project: bool,
    /// The user's `~/.claude/settings.json` (or $CLAUDE_CONFIG_DIR's); the default.
    #[arg(long)]
    pub user: bool,
    /// Project directory for --project.
    #[arg(long, value_name = "DIR", requires = "project")]
    pub dir: Option<PathBuf>,
    /// Program the hooks run (default: `handoff` when it is this binary on PATH, else this binary's path).
    #[arg(long, value_name = "PROGRAM")]
    pub bin: Option<String>,
    /// Register `handoff mcp` as an MCP server instead (the project's `.mcp.json` with --project, else the
    /// user's `~/.claude.json`), by this binary's absolute path; other servers are kept.
    #[arg(long)]
    pub mcp: bool,
    /// With --mcp: register it with `--channel` (pushes new messages into the session).
    #[arg(long, requires = "mcp")]
    pub channel: bool,
}

/// Which side of the history `log` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogDirection {
    /// Both.
    All,
    /// What this machine sent.
    Sent,
    /// What this machine received.
    Received,
}

/// `handoff log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only what was exchanged with this machine (sent to it or received from it).
    #[arg(long = "with", value_name = "MACHINE", add = crate::complete::machine_names())]
    pub with: Option<String>,
    /// Only entries that went over this channel: bus, git, drive, droplet, sms, local.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Only entries newer than an age (`2d`, `36h`) or an RFC 3339 time.
    #[arg(long, value_name = "AGE|TIME")]
    pub since: Option<String>,
    /// Sent, received or both.
    #[arg(long, value_enum, default_value = "all")]
    pub show: LogDirection,
    /// At most this many entries (the newest).
    #[arg(long, value_name = "N", default_value = "50")]
    pub limit: usize,
}

/// `handoff completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `handoff init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write (default: the platform config file, or --config).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Replace an existing config file.
    #[arg(long)]
    pub force: bool,
    /// Never ask: take flags and what was found (the default when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Name of this machine (default: the short hostname).
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Bus env file with BUS_USER / BUS_PASS / BUS_URL (default: ~/.secrets/claude-bus.env when present).
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Bus URL (default: BUS_URL from the env file).
    #[arg(long, value_name = "URL")]
    pub bus_url: Option<String>,
    /// No bus: the embedded local store.
    #[arg(long)]
    pub no_bus: bool,
    /// Each built channel's own flags (`--git-remote`, `--drive-remote`, `--slack`, ...), declared in its
    /// module and listed by the registration in the channels crate.
    #[command(flatten)]
    pub channels: handoff_channels::ChannelInitFlags,
    /// Page channels for --urgent, in order (repeatable: --page sms --page slack).
    #[arg(long, value_name = "CHANNEL")]
    pub page: Vec<String>,
    /// Write without checking that the git remote exists and the droplet host answers (an offline set-up).
    #[arg(long)]
    pub no_check: bool,
}

/// `handoff init --help`'s examples, naming only the flags of channels this build has (`built`).
fn init_examples(built: impl Fn(&str) -> bool) -> String {
    let mut from_machine = vec!["handoff init --env-file ~/.secrets/claude-bus.env"];
    if built("drive") {
        from_machine.push("--drive-remote gdrive");
    }
    if built("droplet") {
        from_machine.push("--droplet-host droplet");
    }
    from_machine.push("--yes");
    let mut out =
        format!("Examples:\n  handoff init                     # asks on a terminal\n  {}", from_machine.join(" "));
    if built("git") {
        out.push_str("\n  handoff init --git-remote git@github.com:you/claude-handoffs.git --force");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_examples_name_only_the_flags_of_channels_this_build_has() {
        let none = super::init_examples(|_| false);
        assert!(none.contains("handoff init --env-file ~/.secrets/claude-bus.env --yes"), "{none}");
        assert!(["--drive-remote", "--droplet-host", "--git-remote"].iter().all(|f| !none.contains(f)), "{none}");
        let all = super::init_examples(|_| true);
        for flag in ["--drive-remote gdrive", "--droplet-host droplet", "--git-remote git@"] {
            assert!(all.contains(flag), "{all}");
        }
        let only_git = super::init_examples(|c| c == "git");
        assert!(only_git.contains("--git-remote") && !only_git.contains("--drive-remote"), "{only_git}");
    }
}
