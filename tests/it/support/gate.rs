//! A loopback TCP relay in front of a real server that can be closed (an outage: the port stops listening,
//! so connections are refused and nothing reaches the server) and opened again on the same port, and
//! that keeps every byte clients sent through it (to read what a mock such as Prism received, which it
//! does not log).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The relay.
pub struct Gate {
    /// The port to connect to (instead of the server's).
    pub port: u16,
    open: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Gate {
    /// Relays `127.0.0.1:<port>` → `127.0.0.1:<upstream>`, open.
    pub fn start(upstream: u16) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (o2, s2) = (open.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut listener = Some(l);
            loop {
                if !o2.load(Ordering::SeqCst) {
                    listener = None; // closed: the port refuses connections
                } else if listener.is_none() {
                    // open again on the same port (std sets SO_REUSEADDR)
                    let Ok(l) = TcpListener::bind(("127.0.0.1", port)) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let client = match l.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let slot = {
                    let mut all = s2.lock().unwrap();
                    all.push(Vec::new());
                    all.len() - 1
                };
                relay(client, server, s2.clone(), slot);
            }
        });
        Gate { port, open, sent }
    }

    /// Opens (`true`) or closes (`false`) the gate, once the port answers (or refuses) accordingly;
    /// connections already relayed are not touched.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() != open {
            assert!(std::time::Instant::now() < deadline, "the gate on port {} did not open={open}", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What clients sent, one entry per connection, in the order they connected.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.sent.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, server: TcpStream, sent: Arc<Mutex<Vec<Vec<u8>>>>, slot: usize) {
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_in, &mut c_out);
        let _ = c_out.shutdown(Shutdown::Write);
    });
}
