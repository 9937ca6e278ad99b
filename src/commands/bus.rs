//! `handoff bus serve`, `handoff bus import` and `handoff bus migrate`.

use crate::cli::{ImportArgs, MigrateArgs, ServeArgs};
use crate::config::{DEFAULT_ENV_FILE, Dirs, read_env_file};
use crate::exit;
use crate::server::bulk::{self, StoreSpec};
use crate::server::postgres::{PgBusStore, connect};
use crate::server::store::{BusStore, SqliteBusStore};
use crate::server::{ServeSettings, launch_with_tcp_listener, shutdown_signal};
use std::collections::HashMap;
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

/// The env file's variables (`--env-file`, else `~/.secrets/claude-bus.env` when present) and its path.
fn env_file(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, HashMap<String, String>)> {
    let dirs = Dirs::platform()?;
    let env_path = given.clone().unwrap_or_else(|| dirs.home.join(DEFAULT_ENV_FILE));
    let file = if env_path.exists() {
        read_env_file(&env_path)?
    } else if given.is_some() {
        return Err(exit::with_code(exit::CONFIG, anyhow::anyhow!("env file {} does not exist", env_path.display())));
    } else {
        Default::default()
    };
    Ok((env_path, file.into_iter().collect()))
}

fn lookup(file: &HashMap<String, String>, k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| file.get(k).cloned())
}

/// `--store`/`--data` → a store; a bad spec or a password in a URL is a configuration error.
fn store_spec(store: Option<&str>, data: Option<PathBuf>) -> anyhow::Result<StoreSpec> {
    match store {
        Some(s) => {
            let spec = StoreSpec::parse(s).map_err(|e| exit::with_code(exit::CONFIG, e))?;
            if let StoreSpec::Postgres(url) = &spec {
                // refuse a password in the URL before anything else happens
                connect::parse_url(url, None).map_err(|e| exit::with_code(exit::CONFIG, e))?;
            }
            Ok(spec)
        }
        None => Ok(StoreSpec::Sqlite(data_dir(data)?)),
    }
}

async fn open_serving_store(spec: &StoreSpec, pg_password: Option<String>) -> anyhow::Result<Arc<dyn BusStore>> {
    Ok(match spec {
        StoreSpec::Sqlite(dir) => {
            crate::config::private_dir(dir)
                .map_err(|e| anyhow::anyhow!("cannot create the data dir {}: {e}", dir.display()))?;
            Arc::new(SqliteBusStore::open(dir)?)
        }
        StoreSpec::Postgres(url) => {
            let target = connect::parse_url(url, pg_password).map_err(|e| exit::with_code(exit::CONFIG, e))?;
            Arc::new(PgBusStore::open(target).await.map_err(|e| exit::with_code(exit::UNAVAILABLE, e))?)
        }
    })
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    let (env_path, file) = env_file(a.env_file.clone())?;
    let password = lookup(&file, "BUS_PASS").ok_or_else(|| {
        exit::with_code(
            exit::CONFIG,
            anyhow::anyhow!(
                "no bus password: set BUS_PASS in the environment or in {} (never on the command line)",
                env_path.display()
            ),
        )
    })?;
    let user = lookup(&file, "BUS_USER").unwrap_or_else(|| "claude".into());
    let spec = store_spec(a.store.as_deref(), a.data)?;
    let store = open_serving_store(&spec, lookup(&file, "PGPASSWORD")).await?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| exit::with_code(exit::CONFIG, anyhow::anyhow!("cannot listen on {}: {e}", a.listen)))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "handoff bus listening on http://{addr} (store {})", store.describe())?;
        out.flush()?;
    }
    let settings = ServeSettings {
        user,
        password,
        max_wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        trusted_proxies: a.trusted_proxy.clone(),
    };
    launch_with_tcp_listener(settings, store, listener, shutdown_signal()).await?;
    Ok(exit::OK)
}

/// Imports the original's JSON-lines file into the embedded store or PostgreSQL.
pub async fn import(a: ImportArgs, json: bool) -> anyhow::Result<i32> {
    let (_, file) = env_file(a.env_file.clone())?;
    let spec = store_spec(a.store.as_deref(), a.data)?;
    let store = bulk::open(&spec, lookup(&file, "PGPASSWORD")).await?;
    let r = crate::server::import::import_jsonl(&a.file, store.as_ref()).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "imported {} messages ({} already present, {} read marks) into {}",
            r.imported,
            r.skipped,
            r.acks,
            store.describe()
        );
        for b in &r.bad_lines {
            eprintln!("handoff: skipped {b}");
        }
    }
    Ok(if r.bad_lines.is_empty() { exit::OK } else { exit::DATA })
}

/// Copies a whole bus between stores and checks that both now hold the same counts.
pub async fn migrate(a: MigrateArgs, json: bool) -> anyhow::Result<i32> {
    let (_, file) = env_file(a.env_file.clone())?;
    let from = store_spec(Some(&a.from), None)?;
    let to = store_spec(Some(&a.to), None)?;
    if from == to {
        return Err(exit::with_code(exit::USAGE, anyhow::anyhow!("--from and --to name the same store")));
    }
    if let StoreSpec::Sqlite(dir) = &from
        && !dir.join("bus.sqlite").exists()
    {
        return Err(exit::with_code(
            exit::CONFIG,
            anyhow::anyhow!("no embedded bus store in {} (no bus.sqlite there)", dir.display()),
        ));
    }
    let pw = lookup(&file, "PGPASSWORD");
    let src = bulk::open(&from, pw.clone()).await.map_err(|e| exit::with_code(exit::UNAVAILABLE, e))?;
    let dst = bulk::open(&to, pw).await.map_err(|e| exit::with_code(exit::UNAVAILABLE, e))?;
    let r = bulk::migrate(src.as_ref(), dst.as_ref()).await?;
    let agree = r.source_counts == r.target_counts;
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "migrate": r, "identical_counts": agree }))?);
    } else {
        println!(
            "copied {} messages ({} already there) and {} read marks from {} to {}",
            r.messages, r.skipped, r.acks, r.from, r.to
        );
        println!(
            "source: {} messages, {} read marks; target: {} messages, {} read marks{}",
            r.source_counts.0,
            r.source_counts.1,
            r.target_counts.0,
            r.target_counts.1,
            if agree { "" } else { " (the target held other messages before)" }
        );
    }
    Ok(exit::OK)
}
