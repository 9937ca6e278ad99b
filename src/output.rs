//! Everything handoff prints on stdout goes through here ([`out!`](crate::out) and
//! [`outln!`](crate::outln)): a closed pipe (`handoff log | head -1`) stops the output quietly instead of
//! panicking, and `--json` output ([`json`]) is one compact line that always carries `ok`, `exit_code` and
//! `schema`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader went away: later output is dropped (the command still finishes its work and
/// exits with its own code).
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Version of the `--json` shapes; `schema` is `handoff.<shape>.v<VERSION>`, the name of its JSON Schema
/// file in `docs/schema/`.
pub const VERSION: u32 = 1;

/// Set by `-q`: text for people is not printed (JSON and what was asked for, like a completion script, are).
static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: drop the text for people from now on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Writes text for people to stdout (nothing under `-q`); a closed pipe ends all further output quietly.
pub fn write(args: std::fmt::Arguments<'_>) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    emit(args);
}

/// Writes to stdout whatever `-q` says; a closed pipe ends all further output quietly.
fn emit(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        stop_on(&e);
    }
}

/// Writes raw bytes to stdout (a completion script, a man page); a closed pipe ends output quietly.
pub fn write_bytes(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        stop_on(&e);
    }
}

/// Flushes stdout (before the process exits); a closed pipe is not an error.
pub fn flush() {
    if !CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
    {
        stop_on(&e);
    }
}

fn stop_on(e: &std::io::Error) {
    // Whatever the error (a closed pipe, a full disk behind a redirect), printing more cannot help; a
    // closed pipe is the reader having seen enough, which is not a failure of the command.
    CLOSED.store(true, Ordering::Relaxed);
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("handoff: cannot write to stdout: {e}");
    }
}

/// True once stdout was found closed.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// The `schema` value of a shape: `handoff.<shape>.v1`.
pub fn schema(shape: &str) -> String {
    format!("handoff.{shape}.v{VERSION}")
}

/// Prints one compact JSON line for shape `shape`: `value`'s fields plus `ok` (= `code` is 0), `exit_code`
/// and `schema`, which always lead.
pub fn json(shape: &str, code: i32, value: serde_json::Value) {
    let mut map = serde_json::Map::new();
    map.insert("ok".into(), serde_json::Value::Bool(code == crate::exit::OK));
    map.insert("exit_code".into(), code.into());
    map.insert("schema".into(), schema(shape).into());
    if let serde_json::Value::Object(fields) = value {
        for (k, v) in fields {
            if !map.contains_key(&k) {
                map.insert(k, v);
            }
        }
    }
    emit(format_args!("{}\n", serde_json::Value::Object(map)));
}

/// Like `print!`, through [`write`]: a closed stdout never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}

/// Like `println!`, through [`write`]: a closed stdout never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}
