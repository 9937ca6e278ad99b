//! A small Twilio-shaped HTTP server for what Twilio's OpenAPI spec cannot express (error bodies, 401,
//! 429 then success, 500): plain `std` sockets on loopback, one thread, scripted replies. It checks basic
//! auth and the account in the path like Twilio does, records every request, and answers a created
//! Message (201, a fresh `SM…` SID) unless a scripted reply is queued.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A test account SID (`AC` + 32 hex digits).
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "tw-test-token-5e1f";
/// An API key of the account (`SK` + 32 hex digits), accepted instead of the Account SID.
pub const API_KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
/// The API key's secret.
pub const API_KEY_SECRET: &str = "tw-test-key-secret-77a0";

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// Twilio's error JSON: `{"code", "message", "more_info", "status"}`.
    pub fn twilio_error(status: u16, code: u64, message: &str) -> Self {
        let body = serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        });
        Reply { status, body: body.to_string(), headers: Vec::new() }
    }

    /// Adds a header (e.g. `Retry-After`).
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// `Authorization` header value.
    pub authorization: Option<String>,
    /// `Content-Type` header value.
    pub content_type: Option<String>,
    /// The form fields of a POST body, in order.
    pub form: Vec<(String, String)>,
    /// What the stub answered.
    pub status: u16,
}

impl Request {
    /// The first form field named `k`.
    pub fn field(&self, k: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    always: Option<Reply>,
    per_number: Vec<(String, Reply)>,
    requests: Vec<Request>,
    next_sid: u64,
    /// Messages created, as Twilio would list them.
    created: Vec<serde_json::Value>,
    /// How many more created messages get no answer (the connection is cut, as if the answer was lost).
    lose: u32,
}

/// The running stub; stops when dropped.
pub struct TwilioStub {
    /// `http://127.0.0.1:PORT` — use as `[sms] base_url`.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TwilioStub {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let _ = serve(stream, &st);
                }
            }
        });
        TwilioStub { url: format!("http://{addr}"), state, stop, addr, thread: Some(thread) }
    }

    /// Queues replies given to the next requests, in order (then the normal behaviour resumes).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Answers every request with `reply` from now on (`None` = normal behaviour again).
    pub fn always(&self, reply: Option<Reply>) {
        self.state.lock().unwrap().always = reply;
    }

    /// Answers every Message to `to` with `reply` (`None` = stop doing so).
    pub fn fail_number(&self, to: &str, reply: Option<Reply>) {
        let mut s = self.state.lock().unwrap();
        s.per_number.retain(|(n, _)| n != to);
        if let Some(r) = reply {
            s.per_number.push((to.to_string(), r));
        }
    }

    /// The next `n` messages are created but their answers lost (connection closed without a reply).
    pub fn lose_answers(&self, n: u32) {
        self.state.lock().unwrap().lose = n;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The POSTs to the Messages resource that were answered 201 (the texts that "went out").
    pub fn sent(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json") && r.status == 201)
            .collect()
    }
}

impl Drop for TwilioStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `Authorization` header value for `user:secret`.
pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
}

fn basic_auth_ok(header: Option<&str>) -> bool {
    let header = header.map(str::trim);
    header == Some(basic(ACCOUNT_SID, AUTH_TOKEN).as_str())
        || header == Some(basic(API_KEY_SID, API_KEY_SECRET).as_str())
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    if method.is_empty() {
        return Ok(()); // the wake-up connection
    }
    let (mut len, mut authorization, mut content_type) = (0usize, None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse().unwrap_or(0),
                "authorization" => authorization = Some(v),
                "content-type" => content_type = Some(v),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let form: Vec<(String, String)> = form_urlencoded(&String::from_utf8_lossy(&body));

    let reply = {
        let mut s = state.lock().unwrap();
        let reply = if let Some(r) = s.always.clone() {
            r
        } else if let Some(r) = s.script.pop_front() {
            r
        } else if let Some((_, r)) = s.per_number.iter().find(|(n, _)| form.iter().any(|(k, v)| k == "To" && v == n)) {
            r.clone()
        } else {
            let (route, query) = path.split_once('?').unwrap_or((&path, ""));
            normal(&mut s, &method, route, &form_urlencoded(query), authorization.as_deref(), &form)
        };
        let lost = method == "POST" && reply.status == 201 && s.lose > 0;
        if lost {
            s.lose -= 1;
        }
        s.requests.push(Request { method, path, authorization, content_type, form, status: reply.status });
        if lost {
            return Ok(()); // dropping the stream closes the connection unanswered
        }
        reply
    };
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(reply.body.as_bytes())?;
    out.flush()
}

/// What Twilio does for a well-formed request: 401 without the right credentials, 404 for another
/// account, 400 (code 21211/21604/21602) for a bad To or missing Body, else 201 with a Message; lists
/// the created Messages (newest first, filtered by `To`) and answers the Account.
fn normal(
    s: &mut State,
    method: &str,
    path: &str,
    query: &[(String, String)],
    auth: Option<&str>,
    form: &[(String, String)],
) -> Reply {
    if !basic_auth_ok(auth) {
        return Reply::twilio_error(401, 20003, "Authenticate");
    }
    let messages = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
    let account = format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json");
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (method, path) {
        ("POST", p) if p == messages => {
            let to = field("To").unwrap_or_default();
            if to.is_empty() {
                return Reply::twilio_error(400, 21604, "A 'To' phone number is required.");
            }
            if !to.starts_with('+') || to.len() < 9 {
                return Reply::twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
            }
            if field("Body").unwrap_or_default().is_empty() {
                return Reply::twilio_error(400, 21602, "Message body is required.");
            }
            s.next_sid += 1;
            let sid = format!("SM{:032x}", s.next_sid);
            let body = serde_json::json!({
                "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": field("From"),
                "messaging_service_sid": field("MessagingServiceSid"), "body": field("Body"),
                "status": "queued", "num_segments": "1", "direction": "outbound-api",
                "api_version": "2010-04-01", "error_code": null, "error_message": null,
            });
            s.created.push(body.clone());
            Reply { status: 201, body: body.to_string(), headers: Vec::new() }
        }
        ("GET", p) if p == messages => {
            let to = query.iter().find(|(k, _)| k == "To").map(|(_, v)| v.as_str());
            let list: Vec<&serde_json::Value> =
                s.created.iter().rev().filter(|m| to.is_none_or(|t| m["to"] == t)).collect();
            let body = serde_json::json!({"messages": list, "page": 0, "page_size": 20, "start": 0, "end": list.len()});
            Reply { status: 200, body: body.to_string(), headers: Vec::new() }
        }
        ("GET", p) if p == account => {
            let body = serde_json::json!({"sid": ACCOUNT_SID, "status": "active", "type": "Full", "friendly_name": "stub", "auth_token": AUTH_TOKEN});
            Reply { status: 200, body: body.to_string(), headers: Vec::new() }
        }
        _ => Reply::twilio_error(404, 20404, &format!("The requested resource {path} was not found")),
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn form_urlencoded(s: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}
