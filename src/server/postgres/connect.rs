//! Parsing a `postgres://` store URL safely (no password in it: that comes from `PGPASSWORD`), and the
//! TLS connector (rustls) used for `sslmode=prefer|require`.

use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A parsed PostgreSQL target: the connection config (with the password set from the environment)
/// and a printable form that never holds the password.
#[derive(Clone)]
pub struct PgTarget {
    /// Connection settings for tokio-postgres.
    pub config: tokio_postgres::Config,
    /// `postgres://user@host:port/db`, for `/health`, logs and messages.
    pub display: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// True when `s` names a PostgreSQL store (`postgres://` or `postgresql://`).
pub fn is_postgres_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("postgres://") || l.starts_with("postgresql://")
}

/// Parses `url` (`postgres://user@host:port/db?sslmode=...`). A password inside the URL is refused: it
/// would sit in process arguments and shell history. `password` (from `PGPASSWORD` in the environment
/// or the env file) is used instead.
pub fn parse_url(url: &str, password: Option<String>) -> anyhow::Result<PgTarget> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        anyhow::anyhow!(
            "the store URL is not a valid PostgreSQL URL ({e}); write it as postgres://USER@HOST:PORT/DATABASE"
        )
    })?;
    if config.get_password().is_some() {
        anyhow::bail!(
            "the store URL contains a password; remove it from the URL and put it in PGPASSWORD (in the environment or the env file): \
             a password in a command line is visible to every user of the machine"
        );
    }
    if config.get_user().is_none() {
        anyhow::bail!("the store URL names no user; write it as postgres://USER@HOST:PORT/DATABASE");
    }
    if config.get_hosts().is_empty() {
        anyhow::bail!("the store URL names no host; write it as postgres://USER@HOST:PORT/DATABASE");
    }
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        config.password(p);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("handoff-bus");
    }
    let display = display_of(&config);
    Ok(PgTarget { config, display })
}

fn display_of(c: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(s) => s.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            match c.get_ports().get(i).or(c.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        c.get_user().unwrap_or(""),
        hosts.join(","),
        c.get_dbname().unwrap_or(c.get_user().unwrap_or(""))
    )
}

/// The TLS connector: Mozilla's roots (webpki-roots) plus the certificates in the PEM file named by
/// `PGSSLROOTCERT`, if set. Used only when the URL's `sslmode` is `prefer` (the default: TLS when the
/// server offers it) or `require`; `sslmode=disable` never starts TLS. The server's certificate is always
/// verified against these roots (stricter than libpq's `require`).
pub fn tls() -> anyhow::Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").filter(|p| !p.is_empty()) {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("cannot read PGSSLROOTCERT {}: {e}", std::path::Path::new(&path).display()))?;
        roots.add_parsable_certificates(certs);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Whether the target asks for TLS at all (for messages).
pub fn wants_tls(t: &PgTarget) -> bool {
    !matches!(t.config.get_ssl_mode(), SslMode::Disable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let e = parse_url("postgres://bus:hunter2@db.example.com:5432/bus", None).unwrap_err().to_string();
        assert!(e.contains("PGPASSWORD"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_url("host=db user=bus password=hunter2", None).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn display_holds_no_password_and_names_the_database() {
        let t = parse_url("postgres://bus@127.0.0.1:6543/handoff?sslmode=disable", Some("pw".into())).unwrap();
        assert_eq!(t.display, "postgres://bus@127.0.0.1:6543/handoff");
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        assert!(!wants_tls(&t));
        assert!(parse_url("postgres://127.0.0.1/x", None).unwrap_err().to_string().contains("no user"));
        assert!(parse_url("postgres://bus@h:notaport/x", None).unwrap_err().to_string().contains("not a valid"));
    }
}
