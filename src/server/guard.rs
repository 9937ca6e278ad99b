//! The bus server's defences against abuse: the cap on concurrent connections (enforced, with idle
//! connections shed at the cap, by [`super::accept`]), a cap on the size of request headers (431), and a
//! per-client-address limit on failed authentication attempts (429 with `Retry-After`), so a password cannot
//! be guessed at speed.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default cap on connections open at once (`HANDOFF_BUS_MAX_CONNECTIONS` overrides it); at the cap the
/// longest-idle connection is closed to admit a new one, and only when all are busy does a client wait.
pub const MAX_CONNECTIONS: usize = 1024;
/// Largest total size of a request's header names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Failed authentication attempts one client address may make per [`AUTH_WINDOW`] before it gets 429s.
pub const AUTH_FAILURES_ALLOWED: u32 = 20;
/// The window of [`AUTH_FAILURES_ALLOWED`].
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses remembered at most (the oldest windows are dropped first when full).
const MAX_TRACKED: usize = 10_000;

/// The connection cap from `HANDOFF_BUS_MAX_CONNECTIONS`, else [`MAX_CONNECTIONS`].
pub fn max_connections() -> usize {
    std::env::var("HANDOFF_BUS_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(MAX_CONNECTIONS)
}

/// 431 for a request whose headers add up to more than [`MAX_HEADER_BYTES`].
pub async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        let body = axum::Json(serde_json::json!({ "error": format!("request headers over {MAX_HEADER_BYTES} bytes") }));
        return (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, body).into_response();
    }
    next.run(req).await
}

/// The client's address: the TCP peer, or — when the peer is a trusted proxy — the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy (the left part of the header is client-supplied
/// and can be forged; only what trusted proxies appended is believed).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Counts failed authentication attempts per client address in fixed windows.
#[derive(Default)]
pub struct AuthLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthLimiter {
    /// When `ip` has used up its failures in the current window: how long until it may try again.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (start, n) = *map.get(&ip)?;
        let left = AUTH_WINDOW.checked_sub(start.elapsed())?;
        (n >= AUTH_FAILURES_ALLOWED).then_some(left)
    }

    /// Records a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (start, _)| start.elapsed() < AUTH_WINDOW);
            let oldest = map.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k);
            if let Some(oldest) = oldest.filter(|_| map.len() >= MAX_TRACKED) {
                map.remove(&oldest);
            }
        }
        let e = map.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= AUTH_WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_others_are_not() {
        let l = AuthLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..AUTH_FAILURES_ALLOWED - 1 {
            l.failed(a);
        }
        assert!(l.blocked(a).is_none());
        l.failed(a);
        assert!(l.blocked(a).is_some_and(|d| d <= AUTH_WINDOW));
        assert!(l.blocked(b).is_none());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let lb: IpAddr = "10.0.0.9".parse().unwrap();
        let client: IpAddr = "203.0.113.5".parse().unwrap();
        // no trusted proxy: the header is ignored
        assert_eq!(client_ip(proxy, Some("203.0.113.5"), &[]), proxy);
        // the peer is trusted: its last appended hop is the client
        assert_eq!(client_ip(proxy, Some("203.0.113.5"), &[proxy]), client);
        // a client forging the left part of the header does not get to choose its address
        assert_eq!(client_ip(proxy, Some("1.2.3.4, 203.0.113.5"), &[proxy]), client);
        // two trusted proxies in a row are skipped
        assert_eq!(client_ip(proxy, Some("203.0.113.5, 10.0.0.9"), &[proxy, lb]), client);
        // garbage stops the walk at the last good hop
        assert_eq!(client_ip(proxy, Some("203.0.113.5, junk"), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
        // an untrusted peer's header is ignored even if it names a trusted proxy
        assert_eq!(client_ip(client, Some("127.0.0.1"), &[proxy]), client);
    }
}
