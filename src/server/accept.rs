//! The bus server's accept loop: what costs a client nothing to hold is shed, so connections that never
//! send a request cannot lock real clients out.
//!
//! - A request head must arrive within [`HEAD_TIMEOUT`], on a new connection and between the requests of a
//!   kept-alive one (hyper's `header_read_timeout` runs whenever the connection waits for a request head),
//!   so an idle keep-alive connection closes after the same bounded time.
//! - At most `max` connections are open at once (`HANDOFF_BUS_MAX_CONNECTIONS`). At the cap, a new
//!   connection is admitted by closing the connection that has been idle (no request in progress) the
//!   longest; only when every connection has a request in progress does the new one wait.
//! - On shutdown no more connections are accepted, idle ones close at once and requests in progress finish.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long a client may take to send a request head (and how long a kept-alive connection may sit idle).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shed connection may take to finish writing what it was writing before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One open connection, as the shedder sees it.
struct Slot {
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// Since when it has had none (or since it opened).
    idle_since: Arc<Mutex<Instant>>,
    /// Asks it to close (gracefully: a response being written still goes out, within [`CLOSE_GRACE`]).
    close: Arc<Notify>,
    /// Its place under the cap, given back the moment it is shed (not when its socket is finally gone), so
    /// a connection that trickles a request head cannot hold a newcomer back.
    _permit: OwnedSemaphorePermit,
}

/// The open connections, for shedding the one idle the longest.
#[derive(Default)]
struct Slots {
    next: u64,
    open: HashMap<u64, Slot>,
}

impl Slots {
    /// Asks the connection idle the longest to close; false when every one has a request in progress.
    fn shed_one_idle(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            .filter(|(_, s)| s.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, s)| *s.idle_since.lock().unwrap_or_else(|e| e.into_inner()))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.open.remove(&id)) {
            Some(slot) => {
                slot.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` with at most `max` connections until `shutdown` completes, then lets requests
/// in progress finish and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(max));
    let slots = Arc::new(Mutex::new(Slots::default()));
    let request_ended = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: log, back off, go on
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // at the cap: close the longest-idle connection to make room; while every connection has a request
        // in progress, wait for one to close or to finish its request (and become idle)
        let permit = loop {
            if let Ok(p) = permits.clone().try_acquire_owned() {
                break Some(p);
            }
            if slots.lock().unwrap_or_else(|e| e.into_inner()).shed_one_idle() {
                tracing::debug!(%peer, "at the connection cap: closed the longest-idle connection");
            }
            tokio::select! {
                () = &mut shutdown => break None,
                p = permits.clone().acquire_owned() => break Some(p.expect("the semaphore is never closed")),
                () = request_ended.notified() => {}
            }
        };
        let Some(permit) = permit else { break };
        let _ = stream.set_nodelay(true);
        let busy = Arc::new(AtomicUsize::new(0));
        let idle_since = Arc::new(Mutex::new(Instant::now()));
        let close = Arc::new(Notify::new());
        let id = {
            let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
            s.next += 1;
            let id = s.next;
            let slot =
                Slot { busy: busy.clone(), idle_since: idle_since.clone(), close: close.clone(), _permit: permit };
            s.open.insert(id, slot);
            id
        };
        let tower = TowerToHyperService::new(app.clone());
        let ended = request_ended.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            busy.fetch_add(1, Ordering::SeqCst);
            let done = RequestDone { busy: busy.clone(), idle_since: idle_since.clone(), ended: ended.clone() };
            let call = hyper::service::Service::call(&tower, req);
            async move {
                let r = call.await;
                drop(done);
                r
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let (slots, mut stopping) = (slots.clone(), stop_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(conn);
            // shed: close now (what is being written gets CLOSE_GRACE); server stopping: requests in
            // progress finish, idle connections close
            let asked = async {
                tokio::select! {
                    () = close.notified() => true,
                    _ = stopping.wait_for(|stop| *stop) => false,
                }
            };
            tokio::select! {
                r = conn.as_mut() => log_end(r),
                shed = asked => {
                    conn.as_mut().graceful_shutdown();
                    if !shed {
                        log_end(conn.await);
                    } else if let Ok(r) = tokio::time::timeout(CLOSE_GRACE, conn).await {
                        log_end(r);
                    }
                }
            }
            // gives its permit back, unless shedding already did
            slots.lock().unwrap_or_else(|e| e.into_inner()).open.remove(&id);
        });
    }
    drop(listener);
    // idle connections close now, requests in progress finish; every connection returns its permit
    let _ = stop_tx.send(true);
    let _all = permits.acquire_many(max as u32).await;
    Ok(())
}

/// Marks the end of a request on its connection (also when the request is dropped half way).
struct RequestDone {
    busy: Arc<AtomicUsize>,
    idle_since: Arc<Mutex<Instant>>,
    /// Wakes an accept waiting at the cap: this connection may be idle now.
    ended: Arc<Notify>,
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.busy.fetch_sub(1, Ordering::SeqCst);
        self.ended.notify_one();
    }
}

fn log_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_shed_and_busy_ones_never() {
        let mut s = Slots::default();
        let now = Instant::now();
        let permits = Arc::new(Semaphore::new(3));
        let mk = |busy: usize, idle_for: u64| Slot {
            busy: Arc::new(AtomicUsize::new(busy)),
            idle_since: Arc::new(Mutex::new(now - Duration::from_secs(idle_for))),
            close: Arc::new(Notify::new()),
            _permit: permits.clone().try_acquire_owned().unwrap(),
        };
        s.open.insert(1, mk(1, 100));
        s.open.insert(2, mk(0, 5));
        s.open.insert(3, mk(0, 50));
        assert_eq!(permits.available_permits(), 0);
        assert!(s.shed_one_idle());
        assert!(!s.open.contains_key(&3), "the longest idle goes first");
        assert_eq!(permits.available_permits(), 1, "its place under the cap is given back at once");
        assert!(s.shed_one_idle());
        assert!(!s.shed_one_idle(), "a connection with a request in progress is never shed");
        assert!(s.open.contains_key(&1));
    }
}
