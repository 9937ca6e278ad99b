//! A loopback TCP relay that can lose an answer: it forwards both ways until the client has sent
//! `after` bytes, then keeps relaying the request but drops what the server answers, lets the server work for a moment and closes
//! both sides — the "request arrived, answer lost" failure a retry must survive without a duplicate.
//! With `after = None` it only relays.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The relay.
pub struct TcpCut {
    /// The port to connect to.
    pub port: u16,
    cut_after: Arc<Mutex<Option<u64>>>,
    /// How many connections were cut.
    pub cuts: Arc<AtomicU64>,
}

impl TcpCut {
    /// Relays `127.0.0.1:<port>` → `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut_after = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicU64::new(0));
        let (c2, k2) = (cut_after.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let after = *c2.lock().unwrap();
                relay(client, server, after, k2.clone());
            }
        });
        TcpCut { port, cut_after, cuts }
    }

    /// From now on, cut each connection once its client has sent `bytes` (None: relay only).
    pub fn cut_after(&self, bytes: Option<u64>) {
        *self.cut_after.lock().unwrap() = bytes;
    }
}

fn relay(client: TcpStream, server: TcpStream, after: Option<u64>, cuts: Arc<AtomicU64>) {
    let cutting = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (flag, c_all, s_all) = (cutting.clone(), client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n as u64;
            if after.is_some_and(|a| sent >= a) && !flag.swap(true, Ordering::SeqCst) {
                // from now on the server's answers are dropped; the request keeps flowing, the server
                // has a moment to act on it, then both sides are closed
                let (c, s, k) = (c_all.try_clone().unwrap(), s_all.try_clone().unwrap(), cuts.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    k.fetch_add(1, Ordering::SeqCst);
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = s.shutdown(Shutdown::Both);
                });
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match s_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if cutting.load(Ordering::SeqCst) {
                continue; // the answer is lost
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Write);
    });
}
