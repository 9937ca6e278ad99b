//! `handoff bus serve`, `handoff bus import` and `handoff bus migrate`.

use crate::cli::{ImportArgs, MigrateArgs, ServeArgs};
use crate::config::{Dirs, read_env_file};
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
    let env_path = given.clone().unwrap_or_else(|| handoff_channels::env_file::default_bus_env_file(&dirs.home));
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
    let twilio = if a.twilio_webhook { Some(twilio_settings(&a, &file, &env_path)?) } else { None };
    crate::config::validate_machine(&a.twilio_human)
        .map_err(|e| exit::with_code(exit::USAGE, anyhow::anyhow!("--twilio-human: {e}")))?;
    let spec = store_spec(a.store.as_deref(), a.data)?;
    let store = open_serving_store(&spec, lookup(&file, "PGPASSWORD")).await?;
    let twilio_url = twilio.as_ref().map(|t| t.url.clone());
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| exit::with_code(exit::CONFIG, anyhow::anyhow!("cannot listen on {}: {e}", a.listen)))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "handoff bus listening on http://{addr} (store {})", store.describe())?;
        // stdout's first line is what scripts read; the rest is for the person starting it
        eprintln!("handoff: web inbox at http://{addr}/inbox");
        if let Some(t) = &twilio_url {
            eprintln!("handoff: twilio webhook on; paste {t} into Twilio's console (A message comes in, HTTP POST)");
        }
        out.flush()?;
    }
    let settings = ServeSettings {
        user,
        password,
        max_wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        trusted_proxies: a.trusted_proxy.clone(),
        human: a.twilio_human.clone(),
        public_url: a.public_url.clone(),
        twilio,
    };
    launch_with_tcp_listener(settings, store, listener, shutdown_signal()).await?;
    Ok(exit::OK)
}

/// `--twilio-webhook`'s settings: the webhook URL from `--public-url`, the checked `--twilio-allow`
/// numbers, and the auth token from `TWILIO_TOKEN` (environment, else the env file).
fn twilio_settings(
    a: &ServeArgs,
    file: &HashMap<String, String>,
    env_path: &std::path::Path,
) -> anyhow::Result<crate::server::twilio::WebhookSettings> {
    use crate::server::twilio::{PATH, WebhookSettings, check_number};
    let usage = |e: anyhow::Error| exit::with_code(exit::USAGE, e);
    let public = a.public_url.as_deref().unwrap_or_default().trim_end_matches('/');
    let base = public.strip_suffix(PATH).unwrap_or(public);
    let parsed = url::Url::parse(base).map_err(|e| {
        usage(anyhow::anyhow!("--public-url {base:?} is not a URL ({e}); e.g. https://bus.example.com"))
    })?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.query().is_some() || !parsed.username().is_empty() {
        return Err(usage(anyhow::anyhow!(
            "--public-url must be the http(s) URL the server is reached at, without credentials or query, e.g. https://bus.example.com"
        )));
    }
    let allow = a.twilio_allow.iter().map(|n| check_number(n).map_err(usage)).collect::<anyhow::Result<Vec<_>>>()?;
    let token = lookup(file, "TWILIO_TOKEN").ok_or_else(|| {
        exit::with_code(
            exit::CONFIG,
            anyhow::anyhow!(
                "--twilio-webhook needs the Twilio auth token to check signatures: set TWILIO_TOKEN in the environment or in {}",
                env_path.display()
            ),
        )
    })?;
    Ok(WebhookSettings { token, url: format!("{base}{PATH}"), allow, human: a.twilio_human.clone() })
}

/// Imports the original's JSON-lines file into the embedded store or PostgreSQL.
pub async fn import(a: ImportArgs, json: bool) -> anyhow::Result<i32> {
    let (_, file) = env_file(a.env_file.clone())?;
    let spec = store_spec(a.store.as_deref(), a.data)?;
    let store = bulk::open(&spec, lookup(&file, "PGPASSWORD")).await?;
    let r = crate::server::import::import_jsonl(&a.file, store.as_ref()).await?;
    let code = if r.bad_lines.is_empty() { exit::OK } else { exit::DATA };
    if json {
        crate::output::json("bus_import", code, serde_json::to_value(&r)?);
    } else {
        crate::outln!(
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
    Ok(code)
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
        crate::output::json("bus_migrate", exit::OK, serde_json::json!({ "migrate": r, "identical_counts": agree }));
    } else {
        crate::outln!(
            "copied {} messages ({} already there) and {} read marks from {} to {}",
            r.messages,
            r.skipped,
            r.acks,
            r.from,
            r.to
        );
        crate::outln!(
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
