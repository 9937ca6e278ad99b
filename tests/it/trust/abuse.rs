//! The real `handoff bus serve` under abuse: failed-login rate limiting, header and connection caps, and a
//! fuzz run of 100k random and malformed requests over raw TCP that must never see a 5xx and must leave the
//! server healthy with its data intact.

use crate::support::bus::{PASSWORD, USER};
use crate::support::handoff_bin;
use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A bus server started with extra environment (the harness's BusServer takes none).
struct Server {
    child: Child,
    addr: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start(vars: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Command::new(handoff_bin());
        c.args(["bus", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(tmp.path().join("data"))
            .env("HOME", tmp.path())
            .env("BUS_PASS", PASSWORD)
            .env("BUS_USER", USER)
            .env_remove("BUS_URL")
            .env_remove("HANDOFF_BUS_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("address announced");
        let addr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
        Server { child, addr, _tmp: tmp }
    }

    fn conn(&self, from: &str) -> Conn {
        Conn { server: self.addr, from: from.parse().unwrap(), stream: None }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auth() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")))
}

/// A keep-alive HTTP/1.1 connection from a chosen loopback source address.
struct Conn {
    server: SocketAddr,
    from: IpAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn connect(&mut self) -> &mut BufReader<TcpStream> {
        if self.stream.is_none() {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::new(self.from, 0).into()).unwrap();
            s.connect_timeout(&self.server.into(), Duration::from_secs(5)).unwrap();
            let t: TcpStream = s.into();
            t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            t.set_nodelay(true).unwrap();
            self.stream = Some(BufReader::new(t));
        }
        self.stream.as_mut().unwrap()
    }

    /// Sends raw bytes, returns the status (None: the server closed the connection without answering) and
    /// the body.
    fn send(&mut self, raw: &[u8]) -> (Option<u16>, Vec<u8>) {
        let r = self.connect();
        if r.get_mut().write_all(raw).is_err() {
            self.stream = None;
            return (None, Vec::new());
        }
        match read_response(self.stream.as_mut().unwrap(), raw.starts_with(b"HEAD ")) {
            Ok(Some((status, body, close))) => {
                if close {
                    self.stream = None;
                }
                (Some(status), body)
            }
            Ok(None) => {
                self.stream = None;
                (None, Vec::new())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!(
                    "the server did not answer within 20 s: {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(300)])
                )
            }
            Err(_) => {
                self.stream = None;
                (None, Vec::new())
            }
        }
    }
}

/// Reads one response (`head`: the answer to a HEAD request, which has no body whatever its headers say).
fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> std::io::Result<Option<(u16, Vec<u8>, bool)>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut len, mut close, mut chunked) = (0usize, false, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if l == "connection: close" {
            close = true;
        } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if head {
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
            if n == 0 {
                break;
            }
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some((status, body, close)))
}

fn request(method: &str, path: &str, auth: Option<&str>, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: bus\r\nContent-Length: {}\r\n{extra}", body.len());
    if let Some(a) = auth {
        h.push_str(&format!("Authorization: {a}\r\n"));
    }
    h.push_str("\r\n");
    let mut v = h.into_bytes();
    v.extend_from_slice(body);
    v
}

#[test]
fn failed_logins_are_rate_limited_per_address_with_429() {
    let s = Server::start(&[]);
    let mut bad = s.conn("127.0.0.5");
    let wrong = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("claude:guess"));
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(bad.send(&request("GET", "/health", Some(&wrong), "", b"")).0.unwrap());
    }
    assert!(statuses[..20].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    // blocked even with the right password: guessing cannot go on
    let (st, _) = bad.send(&request("GET", "/health", Some(&auth()), "", b""));
    assert_eq!(st, Some(429));
    // another address is not affected
    let mut good = s.conn("127.0.0.6");
    assert_eq!(good.send(&request("GET", "/health", Some(&auth()), "", b"")).0, Some(200));
}

#[test]
fn oversized_headers_get_431_and_at_the_connection_cap_idle_connections_make_room_busy_ones_do_not() {
    let s = Server::start(&[("HANDOFF_BUS_MAX_CONNECTIONS", "3")]);
    let mut c = s.conn("127.0.0.1");
    let big = format!("X-Junk: {}\r\n", "a".repeat(20_000));
    assert_eq!(c.send(&request("GET", "/health", Some(&auth()), &big, b"")).0, Some(431));
    drop(c);
    // three busy connections (long-polls in progress) take the cap: a fourth waits until one is done
    let poll = request("GET", "/messages?to=nobody&wait=3", Some(&auth()), "", b"");
    let mut busy: Vec<Conn> = (0..3).map(|_| s.conn("127.0.0.1")).collect();
    for b in &mut busy {
        b.connect().get_mut().write_all(&poll).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut fourth = s.conn("127.0.0.1");
    let r = fourth.connect();
    r.get_mut().write_all(&request("GET", "/health", Some(&auth()), "", b"")).unwrap();
    r.get_mut().set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        r.get_mut().peek(&mut byte).is_err(),
        "a fourth connection was served while three requests were in progress"
    );
    r.get_mut().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (st, _, _) = read_response(r, false).unwrap().unwrap();
    assert_eq!(st, 200, "served once a long-poll ended");
    // the cap is full of idle keep-alive connections: a new client gets in at once, the longest-idle one
    // is closed to make room
    drop(busy);
    drop(fourth);
    std::thread::sleep(Duration::from_millis(300));
    let mut idle: Vec<Conn> = (0..3).map(|_| s.conn("127.0.0.1")).collect();
    for i in &mut idle {
        assert_eq!(i.send(&request("GET", "/health", Some(&auth()), "", b"")).0, Some(200));
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    let mut newcomer = s.conn("127.0.0.1");
    assert_eq!(newcomer.send(&request("GET", "/health", Some(&auth()), "", b"")).0, Some(200));
    assert!(t.elapsed() < Duration::from_secs(3), "the newcomer waited {:?}", t.elapsed());
    let oldest = idle[0].stream.as_mut().unwrap().get_mut();
    oldest.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let closed = match oldest.read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    assert!(closed, "the longest-idle connection was closed to make room");
}

/// One random request of the fuzz run.
fn random_request(rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let pick = |n: u64, r: u64| (r % n) as usize;
    const METHODS: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW"];
    const PATHS: [&str; 24] = [
        "/health",
        "/post",
        "/messages",
        "/messages?limit=-1",
        "/messages?limit=99999999999999999999999",
        "/messages?limit=0",
        "/messages?limit=abc",
        "/messages?since=-5&to=fuzz",
        "/messages?since=%FF%FE&to=%00",
        "/messages?wait=NaN",
        "/messages?wait=-1",
        "/messages?wait=1e400",
        "/messages?wait=0&unread_by=fuzz",
        "/messages?to=../../etc&from=%2e%2e",
        "/messages?unread_by=a%20b&limit=500",
        "/ack/1",
        "/ack/",
        "/ack/%00%01",
        "/ack/99999999999999999999999999",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/",
        "//post",
        "/post?x=1",
        "*",
    ];
    let method = METHODS[pick(METHODS.len() as u64, next())];
    let path = PATHS[pick(PATHS.len() as u64, next())].to_string();
    let n = next();
    let body: Vec<u8> = match pick(14, next()) {
        0 => br#"{"from":"fuzz","to":"any","body":"hello","tags":["a"]}"#.to_vec(),
        1 => b"{not json".to_vec(),
        2 => vec![0xff, 0xfe, b'{', 0xc3, 0x28, b'}'],
        3 => br#"{"from":"fuzz","body":"x","tags":[1,2,3]}"#.to_vec(),
        4 => br#"{"from":-1e308,"body":18446744073709551616999}"#.to_vec(),
        5 => br#"{"reader":"fuzz"}"#.to_vec(),
        6 => br#"{"reader":12}"#.to_vec(),
        7 => "[".repeat(5000).into_bytes(),
        8 => format!(r#"{{"from":"fuzz","body":"{}"}}"#, "x".repeat(70_000)).into_bytes(),
        9 => br#"{"from":"a b c","to":"../x","body":"y"}"#.to_vec(),
        10 => br#"{"from":"fuzz","body":"\ud800 lone surrogate"}"#.to_vec(),
        11 => (0..(n % 300)).map(|i| (i as u8).wrapping_mul(37)).collect(),
        12 => br#"null"#.to_vec(),
        _ => Vec::new(),
    };
    let auth_header = auth();
    match pick(40, next()) {
        // a request line or headers hyper must reject
        0 => b"GET /health HTTP/1.1\r\nHost: bus\r\nContent-Length: -5\r\n\r\n".to_vec(),
        1 => b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 garbage TLS hello\r\n\r\n".to_vec(),
        2 => format!("GET /health HTTP/1.1\r\nHost: bus\r\nAuthorization: {auth_header}\r\nContent-Length: 99999999999999999999\r\n\r\n").into_bytes(),
        3 => format!("POST /post HTTP/1.1\r\nHost: bus\r\nAuthorization: {auth_header}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").into_bytes(),
        4 => format!("GET /health HTTP/1.1\r\nHost: bus\r\nAuthorization: {auth_header}\r\nX-Big: {}\r\n\r\n", "b".repeat(17_000)).into_bytes(),
        5 => b"GET /health HTTP/1.1\r\nHost: bus\r\nAuthorization: Basic \xff\xfe\r\n\r\n".to_vec(),
        _ => request(method, &path, Some(&auth_header), "Content-Type: application/json\r\n", &body),
    }
}

#[test]
fn fuzz_100k_random_and_malformed_requests_never_get_a_5xx_and_leave_the_data_intact() {
    let total: usize = std::env::var("HANDOFF_FUZZ_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let threads = 4;
    let s = Server::start(&[]);
    let mut c = s.conn("127.0.0.1");
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = format!(r#"{{"from":"keeper","to":"any","body":"precious {i}"}}"#);
        let (st, b) = c.send(&request("POST", "/post", Some(&auth()), "", body.as_bytes()));
        assert_eq!(st, Some(200));
        ids.push(serde_json::from_slice::<serde_json::Value>(&b).unwrap()["id"].clone());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let results: Vec<(usize, usize, Vec<String>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let s = &s;
                sc.spawn(move || {
                    let mut conn = s.conn("127.0.0.3");
                    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    let (mut sent, mut closed, mut bad) = (0, 0, Vec::new());
                    while sent < total / threads && Instant::now() < deadline {
                        let raw = random_request(&mut rng);
                        let (st, body) = conn.send(&raw);
                        sent += 1;
                        match st {
                            None => closed += 1,
                            Some(code) if code >= 500 || code == 0 => bad.push(format!(
                                "{code} for {:?}: {}",
                                String::from_utf8_lossy(&raw[..raw.len().min(200)]),
                                String::from_utf8_lossy(&body)
                            )),
                            Some(_) => {}
                        }
                    }
                    (sent, closed, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sent: usize = results.iter().map(|r| r.0).sum();
    let closed: usize = results.iter().map(|r| r.1).sum();
    let bad: Vec<&String> = results.iter().flat_map(|r| r.2.iter()).collect();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz: {sent} requests in {secs:.1} s ({:.0}/s), {closed} answered by closing the connection",
        sent as f64 / secs
    );
    assert!(bad.is_empty(), "{} 5xx answers, first: {:?}", bad.len(), &bad[..bad.len().min(5)]);
    assert_eq!(sent, total, "the fuzz run did not finish in time");
    // healthy, and the messages posted before are all there, unchanged
    let mut c = s.conn("127.0.0.1");
    let (st, b) = c.send(&request("GET", "/health", Some(&auth()), "", b""));
    assert_eq!(st, Some(200), "{}", String::from_utf8_lossy(&b));
    let (st, b) = c.send(&request("GET", "/messages?from=keeper&limit=500", Some(&auth()), "", b""));
    assert_eq!(st, Some(200));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let got: Vec<(serde_json::Value, String)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].clone(), m["body"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(serde_json::Value, String)> =
        ids.iter().enumerate().map(|(i, id)| (id.clone(), format!("precious {i}"))).collect();
    assert_eq!(got, want);
}
