//! `handoff bus serve`: a drop-in replacement for the original Flask bus (SPEC §5) — same routes, JSON
//! shapes and status codes — with durable group-committed storage, bounded inputs, idempotency keys and
//! long-polling as extras old clients never need to know about.

pub mod accept;
pub mod bulk;
mod bulk_sqlite;
pub mod guard;
pub mod import;
pub mod inbox;
pub mod postgres;
mod routes;
pub mod store;
pub mod twilio;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use store::BusStore;

/// Everything the server needs besides its store and listener.
#[derive(Clone)]
pub struct ServeSettings {
    /// Basic-auth user (the original uses `claude`).
    pub user: String,
    /// Basic-auth password (from `BUS_PASS` or the env file, never argv).
    pub password: String,
    /// Longest long-poll wait a client may ask for (`wait=` on `/messages`).
    pub max_wait: Duration,
    /// Longest time one request may take.
    pub request_timeout: Duration,
    /// Reverse proxies (nginx) whose `X-Forwarded-For` is believed: behind them, the client address
    /// (for the failed-login limiter and logs) is the last forwarded hop that is not itself a trusted
    /// proxy. From any other peer the header is ignored, so it cannot be forged.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The person who reads the web inbox and answers pages: `from` of what they write, `reader` of
    /// what they mark read (`--twilio-human`, default `human`).
    pub human: String,
    /// The URL the server is reached at from outside (`--public-url`), when a proxy stands in front.
    pub public_url: Option<String>,
    /// Twilio's inbound-SMS webhook, when enabled (`--twilio-webhook`).
    pub twilio: Option<twilio::WebhookSettings>,
}

impl std::fmt::Debug for ServeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeSettings")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("human", &self.human)
            .field("twilio", &self.twilio)
            .finish()
    }
}

/// Largest request body accepted (a 64 KiB `body` plus JSON overhead and escaping).
pub const MAX_REQUEST: usize = 512 * 1024;

/// Serves the bus on `listener` until `shutdown` completes, then finishes in-flight requests and returns.
/// Tests bind port 0 and pass their own shutdown future (as atuin's server does).
pub async fn launch_with_tcp_listener(
    settings: ServeSettings,
    store: Arc<dyn BusStore>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // the inbox's event streams end when shutdown starts, or they would hold the graceful shutdown open
    let (stopping, stop_watch) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let app = routes::router(settings, store, stop_watch);
    accept::serve(listener, app, guard::max_connections(), shutdown).await
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
