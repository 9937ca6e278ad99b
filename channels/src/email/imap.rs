//! The IMAP connection of the email channel: TCP, TLS (always verified, against the system's CAs —
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` name others — or Mozilla's list where there are none), the greeting
//! and the login, each failure sorted into transient (retry later), auth (wrong password) or permanent.

use crate::ChannelError;
use async_imap::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long connecting (TCP + TLS + greeting) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one IMAP command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A logged-in IMAP session.
pub type ImapSession = Session<TlsStream<TcpStream>>;

/// Where the server is: from `imaps://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name (or IP address), as the certificate must name it.
    pub host: String,
    /// Port (993 by default).
    pub port: u16,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Server {
    /// Parses `[email] imap`. Only `imaps://` (TLS from the first byte): a login never crosses the
    /// network in the clear.
    pub fn parse(url: &str) -> Result<Self, ChannelError> {
        let bad = |why: &str| {
            ChannelError::permanent(format!(
                "[email] imap = {:?}: {why}; write it like \"imaps://imap.gmail.com:993\"",
                crate::untrusted::inline(url)
            ))
        };
        let rest = url.strip_prefix("imaps://").ok_or_else(|| bad("only imaps:// (TLS) is supported"))?;
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains(['/', '@', '?', '#']) || hostport.contains(char::is_whitespace) {
            return Err(bad("expected just a host and an optional port"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h.trim_matches(['[', ']']).to_string(), p.parse::<u16>().map_err(|_| bad("the port is not a number"))?)
            }
            _ => (hostport.to_string(), 993),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self { host, port })
    }
}

fn tls_config() -> Result<rustls::ClientConfig, ChannelError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if roots.add_parsable_certificates(native.certs).0 == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ChannelError::permanent(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Sorts an IMAP failure: connection trouble is transient, a `NO`/`BAD` answer permanent.
pub fn imap_error(server: &Server, what: &str, e: async_imap::error::Error) -> ChannelError {
    use async_imap::error::Error as E;
    let msg = format!("IMAP server {server}: {what}: {}", crate::untrusted::inline(&e.to_string()));
    match e {
        E::Io(_) | E::ConnectionLost => ChannelError::transient(msg),
        _ => ChannelError::permanent(msg),
    }
}

/// Runs one IMAP step within [`COMMAND_TIMEOUT`] (a silent server is transient).
pub async fn timed<T>(
    server: &Server,
    what: &str,
    f: impl std::future::Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ChannelError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| imap_error(server, what, e)),
        Err(_) => Err(ChannelError::transient(format!(
            "IMAP server {server}: no answer to {what} within {}s",
            COMMAND_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects, checks the certificate, reads the greeting and logs in.
pub async fn login(server: &Server, user: &str, password: &str) -> Result<ImapSession, ChannelError> {
    let connect = async {
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| ChannelError::from(e).context(format!("cannot reach the IMAP server {server}")))?;
        let name = rustls::pki_types::ServerName::try_from(server.host.clone())
            .map_err(|e| ChannelError::permanent(format!("[email] imap host {}: {e}", server.host)))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?)).connect(name, tcp).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                ChannelError::permanent(format!(
                    "IMAP server {server}: TLS refused: {e} (handoff always verifies the certificate; a private CA \
                     goes in SSL_CERT_FILE)"
                ))
            } else {
                ChannelError::from(e).context(format!("IMAP server {server}: TLS"))
            }
        })?;
        let mut client = async_imap::Client::new(tls);
        match client.read_response().await {
            Ok(Some(_)) => Ok(client),
            Ok(None) => Err(ChannelError::transient(format!("IMAP server {server} closed the connection at once"))),
            Err(e) => Err(ChannelError::from(e).context(format!("IMAP server {server}: greeting"))),
        }
    };
    let client = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ChannelError::transient(format!(
                "IMAP server {server}: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, client.login(user, password)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err((async_imap::error::Error::No(_), _))) => Err(ChannelError::auth(format!(
            "the IMAP server {server} refused the login of {}: check HANDOFF_IMAP_PASSWORD (for Gmail, an app \
             password) and [email] user",
            crate::untrusted::inline(user)
        ))),
        Ok(Err((e, _))) => Err(imap_error(server, "login", e)),
        Err(_) => Err(ChannelError::transient(format!("IMAP server {server}: no answer to the login"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            Server::parse("imaps://imap.gmail.com").unwrap(),
            Server { host: "imap.gmail.com".into(), port: 993 }
        );
        assert_eq!(Server::parse("imaps://127.0.0.1:1993/").unwrap(), Server { host: "127.0.0.1".into(), port: 1993 });
        for bad in ["imap://h:143", "imaps://", "imaps://u:p@h", "imaps://h:x", "imaps://h/INBOX"] {
            let e = Server::parse(bad).unwrap_err();
            assert!(e.message.contains("[email] imap"), "{bad}: {e}");
        }
    }
}
