//! A throwaway certificate authority for the TLS servers tests start (the https git server, dovecot):
//! `ca.pem` to trust, and a server certificate it signs (rustls does not accept a CA as a server's own
//! certificate, so a single self-signed certificate would not do). Made with the `openssl` CLI.

use super::tool;
use std::path::Path;
use std::process::Command;

/// `openssl <args>` (split on whitespace) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new(tool("openssl")).current_dir(dir).args(args.split_whitespace()).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes `ca.pem` (+ `ca.key`) and `<name>.pem` / `<name>.key`, a server certificate for `san` (e.g.
/// `DNS:localhost` or `IP:127.0.0.1,DNS:localhost`) signed by that CA, into `dir`.
pub fn issue(dir: &Path, name: &str, san: &str) {
    openssl(
        dir,
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
         -subj /CN=handoff-test-CA -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    openssl(
        dir,
        &format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key -out {name}.csr -subj /CN=handoff-test"
        ),
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 2 -extfile {name}.ext"
        ),
    );
}
