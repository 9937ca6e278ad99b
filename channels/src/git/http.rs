//! git's smart HTTP protocol for `http://` and `https://` remotes, on reqwest (blocking) and rustls,
//! registered with libgit2 as a custom transport.
//!
//! libgit2 is built without its own HTTPS support: with it, libgit2's global initialisation sets up
//! OpenSSL and parses the system's whole CA bundle (about 20 ms of CPU) in every process, even for
//! `file://` and `ssh://` remotes. Here the trust store is only loaded when an https remote is used.
//!
//! * The protocol (git's `http-protocol.txt`): the ref advertisement is
//!   `GET <url>/info/refs?service=git-upload-pack|git-receive-pack`; each RPC is
//!   `POST <url>/git-upload-pack|git-receive-pack` with the request libgit2 writes as the body (buffered,
//!   sent on the first read). libgit2's smart transport does the rest (pkt-lines, negotiation, packs).
//! * Credentials, as git does: a user and password in the URL first, then the git credential helper
//!   (`credential.helper` from the clone's and the user's git config) when the server answers 401; a
//!   bounded number of tries. After a success, `git credential approve` lets caching helpers keep the
//!   answer; after a refusal, `git credential reject` makes them forget it. Errors name the remote (without its password) and what was tried.
//! * Redirects, as git's default (`http.followRedirects = initial`): the first request of a connection
//!   follows them, and the RPC that follows goes to the URL it was redirected to (a renamed repository).
//! * Trust, as git's: the CA file named by `GIT_SSL_CAINFO` or git's `http.sslCAInfo` (a self-hosted
//!   server's CA) when set, else the system's CA certificates (Mozilla's list when there are none).
//!   Verification is never disabled.

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use git2::{ErrorClass, ErrorCode};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Registers the transport for `http://` and `https://` with libgit2, once per process.
///
/// Must run before any libgit2 network operation of this process (the git channel calls it from its
/// one-time initialisation, before its first libgit2 call).
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for scheme in ["http", "https"] {
            // SAFETY: `git2::transport::register` is unsafe because registering must not race with
            // libgit2 creating transports on other threads (libgit2's registry is an unsynchronised
            // vector). It runs inside `Once`, which the git channel calls before any of its libgit2
            // work starts, and nothing else in handoff uses libgit2, so no transport is being created
            // concurrently. The factory is `Send + Sync + 'static` and is never unregistered.
            let r = unsafe { git2::transport::register(scheme, |remote| Transport::smart(remote, true, Http::new())) };
            if let Err(e) = r {
                tracing::warn!(scheme, error = %e.message(), "registering the git HTTP transport failed");
            }
        }
    });
}

thread_local! {
    /// The `.git` directory of the clone the current thread is working in: its config may name a
    /// credential helper or `http.sslCAInfo`. Set by the git channel before connecting (libgit2 creates
    /// the transport on the calling thread, and the factory cannot see the remote's repository).
    static REPO: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Tells the transport which repository's git config to read for connections made on this thread.
pub(crate) fn use_repo_config(git_dir: &std::path::Path) {
    REPO.with(|r| *r.borrow_mut() = Some(git_dir.to_path_buf()));
}

/// The `.git` directory set by [`use_repo_config`] for this thread, if any.
pub(crate) fn repo_git_dir() -> Option<PathBuf> {
    REPO.with(|r| r.borrow().clone())
}

/// The git config that applies: the clone's (with the user's and the system's), or the user's.
fn git_config(repo: Option<&std::path::Path>) -> Option<git2::Config> {
    repo.and_then(|p| git2::Repository::open(p).ok())
        .and_then(|r| r.config().ok())
        .or_else(|| git2::Config::open_default().ok())
}

/// How many times a request is sent again with new credentials after a 401.
const MAX_AUTH_TRIES: usize = 3;

/// One smart-HTTP subtransport (one remote connection of libgit2).
struct Http {
    repo: Option<PathBuf>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    client: Option<Client>,
    /// The credentials the server last accepted (or that are being tried).
    creds: Option<(String, String)>,
    /// Whether `creds` came from the credential helper (then approved after a success).
    from_helper: bool,
    approved: bool,
    helper_asked: bool,
    tried: Vec<String>,
    /// Where the server redirected the first request (`.../info/refs`) to: the base every later request
    /// of this connection goes to, as git does (`http.followRedirects = initial`).
    redirected: Option<reqwest::Url>,
}

/// The remote's URL without user and password, the user, and the password.
struct Target {
    url: reqwest::Url,
    user: Option<String>,
    password: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Self, git2::Error> {
        let mut url = reqwest::Url::parse(url.trim_end_matches('/')).map_err(|e| {
            git2::Error::new(ErrorCode::GenericError, ErrorClass::Http, format!("not a usable http(s) URL: {e}"))
        })?;
        let decode = |s: &str| {
            let bytes: Vec<u8> = percent_decode(s);
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
        let password = url.password().map(decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self { url, user, password })
    }

    /// `<url>/<rest>`.
    fn join(&self, rest: &str) -> String {
        format!("{}/{rest}", self.url.as_str().trim_end_matches('/'))
    }

    fn host(&self) -> String {
        self.url.host_str().unwrap_or("").to_string()
    }
}

/// The repository URL an `.../info/refs?service=...` URL belongs to (`None` for any other URL).
fn base_of_info_refs(url: &reqwest::Url) -> Option<reqwest::Url> {
    let mut base = url.clone();
    let path = url.path().strip_suffix("/info/refs")?;
    base.set_path(path);
    base.set_query(None);
    Some(base)
}

/// `%XX` escapes decoded (other bytes kept as they are).
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

impl Http {
    fn new() -> Self {
        Self { repo: repo_git_dir(), state: Arc::new(Mutex::new(State::default())) }
    }

    fn client(&self, state: &mut State, target: &Target) -> Result<Client, git2::Error> {
        if let Some(c) = &state.client {
            return Ok(c.clone());
        }
        let mut b = Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // per request until the headers arrive, then per read of the body: an idle server
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("git/2.0 (handoff ", env!("CARGO_PKG_VERSION"), ")"));
        if target.url.scheme() == "https" {
            b = b.use_preconfigured_tls(tls_config(self.repo.as_deref())?);
        }
        let c = b.build().map_err(|e| {
            git2::Error::new(ErrorCode::GenericError, ErrorClass::Http, format!("HTTP client: {}", chain(&e)))
        })?;
        state.client = Some(c.clone());
        Ok(c)
    }

    /// Sends the request `build` makes, answering 401s with credentials (bounded).
    fn send(&self, target: &Target, build: impl Fn(&Client) -> RequestBuilder) -> Result<Response, git2::Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let client = self.client(&mut state, target)?;
        if state.creds.is_none()
            && let (Some(u), Some(p)) = (&target.user, &target.password)
        {
            state.creds = Some((u.clone(), p.clone()));
            state.tried.push("the password in the URL".into());
        }
        let shown = target.url.as_str().to_string();
        for _ in 0..=MAX_AUTH_TRIES {
            let mut req = build(&client);
            if let Some((u, p)) = &state.creds {
                req = req.basic_auth(u, Some(p));
            }
            let resp = req.send().map_err(|e| request_error(&e, &shown, &target.host()))?;
            let status = resp.status();
            if status != StatusCode::UNAUTHORIZED {
                if status.is_success() && state.from_helper && !state.approved {
                    state.approved = true;
                    if let Some((u, p)) = &state.creds {
                        credential_tell("approve", self.repo.as_deref(), target, u, p);
                    }
                }
                return check_status(resp, &shown, &state);
            }
            // 401: the next credentials, if any are left to try
            if state.helper_asked {
                break;
            }
            state.helper_asked = true;
            let user = state.creds.as_ref().map(|(u, _)| u.clone()).or_else(|| target.user.clone());
            match self.ask_helper(target, user.as_deref()) {
                Some(creds) => {
                    state.tried.push("git credential helper".into());
                    state.creds = Some(creds);
                    state.from_helper = true;
                }
                None => {
                    state.tried.push("git credential helper (none configured, or it had no answer)".into());
                    break;
                }
            }
        }
        // Credentials the helper gave and the server refused are erased from it, as git does, so a stale
        // stored password does not fail every later send.
        if state.from_helper
            && let Some((u, p)) = &state.creds
        {
            credential_tell("reject", self.repo.as_deref(), target, u, p);
        }
        Err(git2::Error::new(
            ErrorCode::Auth,
            ErrorClass::Http,
            format!(
                "authentication to {shown} failed (the server answered 401 Unauthorized; tried: {})",
                tried(&state)
            ),
        ))
    }

    /// Asks the configured credential helpers (their commands are never shown: an inline helper may hold
    /// a secret).
    fn ask_helper(&self, target: &Target, user: Option<&str>) -> Option<(String, String)> {
        let config = git_config(self.repo.as_deref())?;
        let mut h = git2::CredentialHelper::new(target.url.as_str());
        h.username(user);
        h.config(&config);
        h.execute()
    }
}

fn tried(state: &State) -> String {
    if state.tried.is_empty() { "no credentials".into() } else { state.tried.join(", ") }
}

/// Any status other than 401: success, or an error of the right kind.
fn check_status(resp: Response, shown: &str, state: &State) -> Result<Response, git2::Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let (code, class, what) = match status.as_u16() {
        403 => (
            ErrorCode::Auth,
            ErrorClass::Http,
            format!("the server refused access to {shown} (403 Forbidden; tried: {})", tried(state)),
        ),
        404 | 410 => (
            ErrorCode::NotFound,
            ErrorClass::Http,
            format!("there is no git repository at {shown} ({status}): check the URL"),
        ),
        500..=599 | 408 | 429 => (ErrorCode::GenericError, ErrorClass::Net, format!("{shown} answered {status}")),
        _ => (ErrorCode::GenericError, ErrorClass::Http, format!("{shown} answered {status}")),
    };
    Err(git2::Error::new(code, class, what))
}

/// A failed request: TLS trust problems are permanent (`Ssl`), everything else is the network (`Net`).
fn request_error(e: &reqwest::Error, shown: &str, host: &str) -> git2::Error {
    let detail = chain(e);
    // rustls' error is usually reachable by downcasting; its text is the fallback
    if is_tls(e) || detail.contains("invalid peer certificate") {
        return git2::Error::new(
            ErrorCode::Certificate,
            ErrorClass::Ssl,
            format!(
                "TLS: the certificate of {host} is not trusted ({detail}). Fix: if the server uses its own CA, point \
                 git's http.sslCAInfo (`git config --global http.sslCAInfo /path/to/ca.pem`) or GIT_SSL_CAINFO at \
                 that CA's certificate"
            ),
        );
    }
    git2::Error::new(ErrorCode::GenericError, ErrorClass::Net, format!("{shown}: {detail}"))
}

/// The error and its sources, `a: b: c` (reqwest's own message alone is often just "error sending request").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// Whether a rustls error (a certificate the roots do not vouch for, a name mismatch) is in the chain.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cur = s.source();
    }
    false
}

/// rustls trusting the CA file named by `GIT_SSL_CAINFO` or `http.sslCAInfo` (instead of the system's
/// CAs, as git does), else the system's CA certificates (Mozilla's list if there are none).
fn tls_config(repo: Option<&std::path::Path>) -> Result<rustls::ClientConfig, git2::Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let err = |m: String| git2::Error::new(ErrorCode::GenericError, ErrorClass::Ssl, m);
    let mut roots = rustls::RootCertStore::empty();
    let ca_file = std::env::var_os("GIT_SSL_CAINFO")
        .filter(|v| !v.is_empty())
        .map(|v| (PathBuf::from(v), "GIT_SSL_CAINFO"))
        .or_else(|| {
            let config = git_config(repo)?;
            config.get_path("http.sslCAInfo").ok().map(|p| (p, "http.sslCAInfo"))
        });
    match ca_file {
        // as git does: the named file replaces the system's CAs
        Some((path, from)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| err(format!("{from} = {}: cannot read its certificates: {e}", path.display())))?;
            if roots.add_parsable_certificates(certs).0 == 0 {
                return Err(err(format!("{from} = {}: no PEM certificate in it", path.display())));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            if roots.add_parsable_certificates(native.certs).0 == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `git credential approve` (caching helpers keep credentials that worked) or `reject` (helpers forget
/// credentials the server refused); best effort, as git does. Run in the clone, when there is one, so the
/// helpers it configures are the ones told.
fn credential_tell(action: &str, repo: Option<&std::path::Path>, target: &Target, user: &str, password: &str) {
    let mut input = format!("protocol={}\nhost={}", target.url.scheme(), target.host());
    if let Some(port) = target.url.port() {
        input.push_str(&format!(":{port}"));
    }
    input.push_str(&format!("\nusername={user}\npassword={password}\n\n"));
    let mut git = std::process::Command::new("git");
    if let Some(dir) = repo.filter(|d| d.is_dir()) {
        git.current_dir(dir);
    }
    let child = git
        .args(["credential", action])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let _ = child.wait();
    }
}

impl SmartSubtransport for Http {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let target = Target::parse(url)?;
        let service = match action {
            Service::UploadPackLs | Service::UploadPack => "git-upload-pack",
            Service::ReceivePackLs | Service::ReceivePack => "git-receive-pack",
        };
        match action {
            Service::UploadPackLs | Service::ReceivePackLs => {
                let url = target.join(&format!("info/refs?service={service}"));
                let resp = self.send(&target, |c| c.get(&url))?;
                if resp.url().as_str() != url
                    && let Some(base) = base_of_info_refs(resp.url())
                {
                    tracing::debug!("{} redirected to {base}", target.url);
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).redirected = Some(base);
                }
                let kind = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                let expected = format!("application/x-{service}-advertisement");
                if kind != Some(expected.as_str()) {
                    return Err(git2::Error::new(
                        ErrorCode::GenericError,
                        ErrorClass::Http,
                        format!(
                            "{} is not a git smart-HTTP server (it answered {} instead of {expected}): check the URL",
                            target.url,
                            kind.unwrap_or("no content type")
                        ),
                    ));
                }
                Ok(Box::new(Stream::Reading(resp)))
            }
            Service::UploadPack | Service::ReceivePack => Ok(Box::new(Stream::Writing {
                http: Http { repo: self.repo.clone(), state: self.state.clone() },
                target: match self.state.lock().unwrap_or_else(|p| p.into_inner()).redirected.clone() {
                    Some(url) => Target { url, ..target },
                    None => target,
                },
                service,
                body: Vec::new(),
            })),
        }
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// A response being read, or an RPC request being written (POSTed on the first read).
enum Stream {
    Reading(Response),
    Writing { http: Http, target: Target, service: &'static str, body: Vec<u8> },
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Stream::Writing { http, target, service, body } = self {
            let url = target.join(service);
            let body = std::mem::take(body);
            let (req_type, accept) =
                (format!("application/x-{service}-request"), format!("application/x-{service}-result"));
            let resp = http
                .send(target, |c| {
                    c.post(&url)
                        .header(reqwest::header::CONTENT_TYPE, &req_type)
                        .header(reqwest::header::ACCEPT, &accept)
                        .body(body.clone())
                })
                .map_err(|e| io::Error::other(e.message().to_string()))?;
            *self = Stream::Reading(resp);
        }
        match self {
            Stream::Reading(resp) => resp.read(buf),
            Stream::Writing { .. } => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Writing { body, .. } => {
                body.extend_from_slice(data);
                Ok(data.len())
            }
            _ => Err(io::Error::other("git HTTP transport: write after the request was sent")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_loses_its_credentials_and_keeps_them_decoded() {
        let t = Target::parse("https://me:p%40ss@example.com:8443/team/h.git/").unwrap();
        assert_eq!(t.url.as_str(), "https://example.com:8443/team/h.git");
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("me"), Some("p@ss")));
        assert_eq!(
            t.join("info/refs?service=git-upload-pack"),
            "https://example.com:8443/team/h.git/info/refs?service=git-upload-pack"
        );
        let t = Target::parse("http://example.com/h.git").unwrap();
        assert_eq!((t.user, t.password), (None, None));
    }
}
