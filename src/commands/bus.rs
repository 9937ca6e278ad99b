//! `handoff bus serve` and `handoff bus import`.

use crate::cli::{ImportArgs, ServeArgs};
use crate::config::{DEFAULT_ENV_FILE, Dirs, read_env_file};
use crate::exit;
use crate::server::store::{BusStore, SqliteBusStore};
use crate::server::{ServeSettings, launch_with_tcp_listener, shutdown_signal};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(d) => d,
        None => Dirs::platform()?.data.join("bus"),
    })
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::platform()?;
    let env_path = a.env_file.clone().unwrap_or_else(|| dirs.home.join(DEFAULT_ENV_FILE));
    let file = if env_path.exists() { read_env_file(&env_path)? } else if a.env_file.is_some() {
        return Err(exit::with_code(exit::CONFIG, anyhow::anyhow!("env file {} does not exist", env_path.display())));
    } else {
        Default::default()
    };
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| file.get(k).cloned());
    let password = get("BUS_PASS").ok_or_else(|| {
        exit::with_code(
            exit::CONFIG,
            anyhow::anyhow!("no bus password: set BUS_PASS in the environment or in {} (never on the command line)", env_path.display()),
        )
    })?;
    let user = get("BUS_USER").unwrap_or_else(|| "claude".into());
    let data = data_dir(a.data)?;
    std::fs::create_dir_all(&data).map_err(|e| anyhow::anyhow!("cannot create the data dir {}: {e}", data.display()))?;
    let store: Arc<dyn BusStore> = Arc::new(SqliteBusStore::open(&data)?);
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| exit::with_code(exit::CONFIG, anyhow::anyhow!("cannot listen on {}: {e}", a.listen)))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "handoff bus listening on http://{addr} (store {})", store.describe())?;
        out.flush()?;
    }
    let settings = ServeSettings { user, password, max_wait: Duration::from_secs(30), request_timeout: Duration::from_secs(60) };
    launch_with_tcp_listener(settings, store, listener, shutdown_signal()).await?;
    Ok(exit::OK)
}

/// Imports the original's JSON-lines file.
pub fn import(a: ImportArgs, json: bool) -> anyhow::Result<i32> {
    let data = data_dir(a.data)?;
    let r = crate::server::import::import_jsonl(&a.file, &data)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("imported {} messages ({} already present, {} read marks) into {}", r.imported, r.skipped, r.acks, data.display());
        for b in &r.bad_lines {
            eprintln!("handoff: skipped {b}");
        }
    }
    Ok(if r.bad_lines.is_empty() { exit::OK } else { exit::DATA })
}
