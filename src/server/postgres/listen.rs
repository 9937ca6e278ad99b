//! LISTEN/NOTIFY: a dedicated connection per replica listens on `bus_messages` and wakes this replica's
//! long-pollers when any replica commits a post. It reconnects by itself (with backoff) when the database
//! goes away, and wakes everyone after reconnecting, since a notification may have been missed meanwhile.

use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Runs until aborted.
pub(super) async fn listen_loop(config: tokio_postgres::Config, tls: MakeRustlsConnect, notify: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                let driver = tokio::spawn(async move {
                    while let Some(m) = stream.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(_)) => {
                                if tx.send(()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "bus LISTEN connection lost");
                                break;
                            }
                        }
                    }
                });
                if client.batch_execute("LISTEN bus_messages").await.is_ok() {
                    backoff = Duration::from_millis(100);
                    notify.notify_waiters();
                    while rx.recv().await.is_some() {
                        notify.notify_waiters();
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::debug!(error = %e, "bus LISTEN connection failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
