//! rclone remote types → opendal services, or the reason the transfer must go through the rclone binary.
//!
//! The mapping is a pure function of the remote's config and the path inside it, so it is unit-tested without
//! any network. Which types go where, and why:
//!
//! | rclone type | how | notes |
//! |---|---|---|
//! | `local` | opendal `fs` | |
//! | `s3` (all providers) | opendal `s3` | bucket = first path segment; `env_auth` loads the usual AWS sources |
//! | `webdav` | opendal `webdav` | one request per upload: above `single_request_max` → rclone; `bearer_token_command`, Nextcloud/ownCloud chunking → rclone |
//! | `sftp` | the system `ssh` + SFTP ([`crate::ssh`], shared with the droplet; pipelined, flat memory) | `host`, `port`, `user`, `key_file`, `known_hosts_file` map onto ssh (as in rclone, `~/.ssh/config` is not read; without `known_hosts_file` the user's known_hosts, a new host added, a changed key refused); password-only login, `key_pem`, `key_file_pass`, custom `ssh` → rclone (ssh takes none of these non-interactively) |
//! | `drive` | opendal `gdrive` | token issued to rclone's own OAuth client (empty `client_id`), shared drives (`team_drive`), `root_folder_id`, service accounts → rclone; one request per upload |
//! | `dropbox`, `onedrive` | opendal | only with the user's own `client_id` (rclone's built-in client cannot be refreshed by anyone else); SharePoint libraries → rclone |
//! | `azureblob` | opendal `azblob` | account key or SAS URL; MSI/env auth → rclone |
//! | `google cloud storage` | opendal `gcs` | service account file/JSON or anonymous; user OAuth tokens → rclone |
//! | `alias` | resolved to its target remote | |
//! | `b2`, `swift`, `crypt`, `union`, … | rclone | opendal's b2 needs a bucket id rclone.conf does not hold; swift needs a pre-issued token; the rest are rclone-only layers |

use super::rclone_conf::{RcloneConf, Remote};
use crate::ChannelError;

/// Options handed to an opendal service (values may be secrets: never printed).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Options(pub Vec<(String, String)>);

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SECRET: [&str; 10] = [
            "password",
            "secret_access_key",
            "session_token",
            "access_token",
            "refresh_token",
            "client_secret",
            "token",
            "account_key",
            "sas_token",
            "credential",
        ];
        let shown: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| if SECRET.contains(&k.as_str()) { format!("{k}=<redacted>") } else { format!("{k}={v}") })
            .collect();
        f.debug_list().entries(shown).finish()
    }
}

impl Options {
    fn set(&mut self, k: &str, v: impl Into<String>) {
        self.0.push((k.to_string(), v.into()));
    }
    /// The value of an option, if set.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

/// How to reach one remote path through opendal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpendalPlan {
    /// opendal scheme (`s3`, `webdav`, `sftp`, `fs`, `gdrive`, …).
    pub scheme: &'static str,
    /// Service options.
    pub options: Options,
    /// The path of the object inside the operator's root.
    pub path: String,
    /// True when the service uploads in one request (it then holds the whole payload in memory).
    pub one_shot: bool,
}

/// How to reach one path of an rclone `sftp` remote through the system `ssh` and SFTP (the session the
/// droplet uses): rclone.conf's connection keys mapped onto ssh's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpPlan {
    /// `host`.
    pub host: String,
    /// `port` (ssh's default, or the ssh config's, when unset).
    pub port: Option<u16>,
    /// `user` (ssh's default, or the ssh config's, when unset).
    pub user: Option<String>,
    /// `key_file`, with `~/` expanded.
    pub key_file: Option<String>,
    /// `known_hosts_file`, with `~/` expanded: host keys are checked strictly against it. Without it, the
    /// user's own known_hosts: a new host's key is added on first contact, a changed key refused.
    pub known_hosts_file: Option<String>,
    /// The path on the server (relative paths start at the login directory, as in rclone).
    pub path: String,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferRoute {
    /// Through opendal.
    Opendal(OpendalPlan),
    /// Through the system ssh and SFTP.
    Sftp(SftpPlan),
    /// Through the installed rclone binary, for this reason.
    Rclone {
        /// Why opendal cannot do it (said in the receipt and in errors).
        reason: String,
    },
}

fn rclone(reason: impl Into<String>) -> Result<TransferRoute, ChannelError> {
    Ok(TransferRoute::Rclone { reason: reason.into() })
}

/// Joins remote path pieces with single slashes.
pub fn join(a: &str, b: &str) -> String {
    match (a.trim_end_matches('/'), b.trim_start_matches('/')) {
        ("", b) => b.to_string(),
        (a, "") => a.to_string(),
        (a, b) => format!("{a}/{b}"),
    }
}

fn split_bucket<'a>(remote: &Remote, path: &'a str, what: &str) -> Result<(&'a str, &'a str), ChannelError> {
    let p = path.trim_start_matches('/');
    let (bucket, rest) = p.split_once('/').unwrap_or((p, ""));
    if bucket.is_empty() {
        return Err(ChannelError::permanent(format!(
            "remote {:?} is of type {}: the drive folder must start with a {what} name, e.g. folder = \"my-{what}/claude-handoffs\"",
            remote.name,
            remote.kind()
        )));
    }
    if !valid_bucket_name(bucket) {
        return Err(ChannelError::refused(format!(
            "{:?} is not a valid {what} name (3-63 lower-case letters, digits, '.', '-' or '_', starting and ending \
             with a letter or digit, not an IP address); a {what} name goes into the host name of every request, \
             so nothing else is sent",
            crate::untrusted::inline(bucket)
        )));
    }
    Ok((bucket, rest))
}

/// A bucket or container name by S3's rules (which GCS and Azure's are within, GCS adding `_`): it becomes
/// part of a host name, so anything else (`:`, `#`, `@`, a bare number that parses as an IP) could send a
/// signed request to another host.
pub fn valid_bucket_name(b: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        && edge_ok(b.chars().next())
        && edge_ok(b.chars().last())
        && !b.contains("..")
        && !b.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Decides how to reach `path` on `remote`. `conf` resolves `alias` remotes; `size` is the payload size for
/// uploads (`None` for downloads), compared with `single_request_max` where a service's own limits need it
/// (the channel itself sends large uploads of one-request services to rclone).
pub fn plan(
    conf: &RcloneConf,
    remote: &Remote,
    path: &str,
    size: Option<u64>,
    single_request_max: u64,
) -> Result<TransferRoute, ChannelError> {
    plan_depth(conf, remote, path, size, single_request_max, 0)
}

fn plan_depth(
    conf: &RcloneConf,
    remote: &Remote,
    path: &str,
    size: Option<u64>,
    single_max: u64,
    depth: usize,
) -> Result<TransferRoute, ChannelError> {
    let kind = remote.kind();
    let mut o = Options::default();
    let plan = match kind {
        "" => {
            return Err(ChannelError::permanent(format!(
                "remote {:?} in rclone.conf has no `type`; fix it with `rclone config`",
                remote.name
            )));
        }
        "alias" => {
            let target = remote.get("remote").ok_or_else(|| {
                ChannelError::permanent(format!("alias remote {:?} has no `remote` key", remote.name))
            })?;
            if depth > 8 {
                return Err(ChannelError::permanent(format!("alias remote {:?} loops", remote.name)));
            }
            return match target.split_once(':') {
                Some((name, sub)) if !name.is_empty() && !name.contains('/') => {
                    let inner = conf.remote(name)?;
                    plan_depth(conf, inner, &join(sub, path), size, single_max, depth + 1)
                }
                _ => {
                    // An alias of a local path.
                    let local = Remote {
                        name: remote.name.clone(),
                        values: [("type".to_string(), "local".to_string())].into(),
                    };
                    plan_depth(conf, &local, &join(target, path), size, single_max, depth + 1)
                }
            };
        }
        "local" => {
            let p = std::path::Path::new(path);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().map_err(ChannelError::from)?.join(p)
            };
            let abs = abs.to_string_lossy().replace('\\', "/");
            o.set("root", "/");
            OpendalPlan { scheme: "fs", options: o, path: abs.trim_start_matches('/').to_string(), one_shot: false }
        }
        "s3" => {
            let (bucket, rest) = split_bucket(remote, path, "bucket")?;
            o.set("bucket", bucket);
            let region = remote.get("region").unwrap_or("us-east-1");
            o.set("region", if region == "other-v2-signature" { "us-east-1" } else { region });
            if let Some(ep) = remote.get("endpoint") {
                o.set("endpoint", if ep.contains("://") { ep.to_string() } else { format!("https://{ep}") });
            }
            if remote.flag("env_auth", false) {
                // opendal loads the AWS environment, profile and instance credentials itself.
            } else {
                o.set("disable_config_load", "true");
                match (remote.get("access_key_id"), remote.get("secret_access_key")) {
                    (Some(id), Some(secret)) => {
                        o.set("access_key_id", id);
                        o.set("secret_access_key", secret);
                        if let Some(t) = remote.get("session_token") {
                            o.set("session_token", t);
                        }
                    }
                    _ => o.set("allow_anonymous", "true"),
                }
            }
            let provider = remote.get("provider").unwrap_or("AWS");
            let virtual_default = matches!(provider, "AWS" | "Alibaba" | "Netease" | "TencentCOS" | "ChinaMobile");
            if !remote.flag("force_path_style", !virtual_default) {
                o.set("enable_virtual_host_style", "true");
            }
            OpendalPlan { scheme: "s3", options: o, path: rest.to_string(), one_shot: false }
        }
        "webdav" => {
            let url = remote
                .get("url")
                .ok_or_else(|| ChannelError::permanent(format!("webdav remote {:?} has no `url`", remote.name)))?;
            if remote.get("bearer_token_command").is_some() {
                return rclone("the webdav remote gets its token from bearer_token_command");
            }
            if matches!(remote.get("vendor"), Some("nextcloud" | "owncloud" | "infinitescale"))
                && size.is_some_and(|s| s > single_max)
            {
                return rclone("large uploads to Nextcloud/ownCloud use their chunked upload, which rclone implements");
            }
            let (endpoint, base) = split_url(url).ok_or_else(|| {
                ChannelError::permanent(format!(
                    "webdav remote {:?} has a `url` that is not http(s)://host/…: {url:?}",
                    remote.name
                ))
            })?;
            o.set("endpoint", endpoint);
            o.set("root", if base.is_empty() { "/".to_string() } else { base });
            if let Some(u) = remote.get("user") {
                o.set("username", u);
            }
            if let Some(p) = remote.revealed("pass")? {
                o.set("password", p);
            }
            if let Some(t) = remote.get("bearer_token") {
                o.set("token", t);
            }
            OpendalPlan { scheme: "webdav", options: o, path: path.trim_start_matches('/').to_string(), one_shot: true }
        }
        "sftp" => return sftp_plan(remote, path),
        "drive" => {
            if remote.get("team_drive").is_some() {
                return rclone(
                    "the Drive remote is a shared drive (team_drive), which opendal's gdrive does not address",
                );
            }
            if remote.get("root_folder_id").is_some() {
                return rclone(
                    "the Drive remote starts at a root_folder_id, which opendal's gdrive (path-based) cannot start from",
                );
            }
            if remote.get("service_account_file").is_some() || remote.get("service_account_credentials").is_some() {
                return rclone("the Drive remote uses a service account, which opendal's gdrive does not support");
            }
            if remote.get("client_id").is_none() {
                return rclone(
                    "the Drive token was issued to rclone's own OAuth client (client_id is empty), so only rclone can refresh it",
                );
            }
            oauth(remote, &mut o)?;
            o.set("root", "/");
            OpendalPlan { scheme: "gdrive", options: o, path: path.trim_start_matches('/').to_string(), one_shot: true }
        }
        "dropbox" | "onedrive" => {
            if remote.get("client_id").is_none() {
                return rclone(format!(
                    "the {kind} token was issued to rclone's own OAuth client (client_id is empty), so only rclone can refresh it"
                ));
            }
            if kind == "onedrive"
                && (remote.get("drive_type") == Some("documentLibrary") || remote.get("drive_id").is_some())
            {
                return rclone(
                    "the OneDrive remote points at a specific drive or SharePoint library, which opendal's onedrive does not address",
                );
            }
            let one_shot = kind == "dropbox";
            oauth(remote, &mut o)?;
            o.set("root", "/");
            OpendalPlan {
                scheme: if kind == "dropbox" { "dropbox" } else { "onedrive" },
                options: o,
                path: path.trim_start_matches('/').to_string(),
                one_shot,
            }
        }
        "azureblob" => {
            if remote.flag("env_auth", false)
                || remote.flag("use_msi", false)
                || remote.get("service_principal_file").is_some()
            {
                return rclone("the Azure remote authenticates through the environment or a managed identity");
            }
            let (container, rest) = split_bucket(remote, path, "container")?;
            o.set("container", container);
            if let Some(sas) = remote.get("sas_url") {
                let (base, query) = sas.split_once('?').unwrap_or((sas, ""));
                let (endpoint, _) = split_url(base).ok_or_else(|| {
                    ChannelError::permanent(format!("azureblob remote {:?} has a bad sas_url", remote.name))
                })?;
                o.set("endpoint", endpoint);
                o.set("sas_token", query);
            } else {
                let account = remote.get("account").ok_or_else(|| {
                    ChannelError::permanent(format!("azureblob remote {:?} has no `account`", remote.name))
                })?;
                o.set("account_name", account);
                o.set(
                    "endpoint",
                    remote
                        .get("endpoint")
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net")),
                );
                if let Some(k) = remote.get("key") {
                    o.set("account_key", k);
                }
            }
            OpendalPlan { scheme: "azblob", options: o, path: rest.to_string(), one_shot: false }
        }
        "google cloud storage" | "gcs" => {
            let (bucket, rest) = split_bucket(remote, path, "bucket")?;
            o.set("bucket", bucket);
            if let Some(f) = remote.get("service_account_file") {
                o.set("credential_path", home_expanded(f));
            } else if let Some(json) = remote.get("service_account_credentials") {
                use base64::Engine;
                o.set("credential", base64::engine::general_purpose::STANDARD.encode(json));
            } else if remote.flag("anonymous", false) {
                o.set("allow_anonymous", "true");
            } else if remote.flag("env_auth", false) {
                // opendal finds application default credentials itself.
            } else {
                return rclone(
                    "the Google Cloud Storage remote uses a user OAuth token, which only rclone can refresh",
                );
            }
            o.set("disable_vm_metadata", "true");
            if let Some(ep) = remote.get("endpoint") {
                o.set("endpoint", ep);
            }
            OpendalPlan { scheme: "gcs", options: o, path: rest.to_string(), one_shot: false }
        }
        "b2" => {
            return rclone("opendal's b2 needs the bucket's id, which rclone.conf does not hold");
        }
        "swift" => {
            return rclone("opendal's swift needs a pre-issued token and storage URL; rclone does the Keystone login");
        }
        other => {
            return rclone(format!("opendal has no service for rclone's `{other}` remotes"));
        }
    };
    Ok(TransferRoute::Opendal(plan))
}

/// OAuth remotes: the token JSON rclone stores, and the user's own client id and secret.
fn oauth(remote: &Remote, o: &mut Options) -> Result<(), ChannelError> {
    let token = token_from_json(remote)?;
    if let Some(a) = token.access_token {
        o.set("access_token", a);
    }
    if let Some(r) = token.refresh_token {
        o.set("refresh_token", r);
    }
    if let Some(id) = remote.get("client_id") {
        o.set("client_id", id);
    }
    if let Some(s) = remote.get("client_secret") {
        o.set("client_secret", s);
    }
    Ok(())
}

/// The parts of rclone's `token = {...}` JSON that opendal uses.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Token {
    /// Current access token (may have expired: opendal refreshes it with the refresh token).
    pub access_token: Option<String>,
    /// Refresh token.
    pub refresh_token: Option<String>,
}

/// Parses a remote's `token` JSON.
pub fn token_from_json(remote: &Remote) -> Result<Token, ChannelError> {
    let raw = remote.get("token").ok_or_else(|| {
        ChannelError::auth(format!(
            "remote {:?} has no OAuth token: run `rclone config reconnect {}:`",
            remote.name, remote.name
        ))
    })?;
    let t: Token = serde_json::from_str(raw).map_err(|_| {
        ChannelError::auth(format!(
            "remote {:?} has a token that is not rclone's JSON: run `rclone config reconnect {}:`",
            remote.name, remote.name
        ))
    })?;
    if t.refresh_token.is_none() && t.access_token.is_none() {
        return Err(ChannelError::auth(format!(
            "remote {:?} has an empty token: run `rclone config reconnect {}:`",
            remote.name, remote.name
        )));
    }
    Ok(t)
}

/// Splits `https://host:port/base/path` into (`https://host:port`, `/base/path`).
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
    if authority.is_empty() {
        return None;
    }
    Some((format!("{scheme}://{authority}"), path.trim_end_matches('/').to_string()))
}

/// An rclone `sftp` remote → the system ssh, or the reason only rclone can reach it.
fn sftp_plan(remote: &Remote, path: &str) -> Result<TransferRoute, ChannelError> {
    for (key, why) in [
        ("key_pem", "an inline key (key_pem)"),
        ("key_file_pass", "a passphrase-protected key file"),
        ("ssh", "an external ssh command"),
    ] {
        if remote.get(key).is_some() {
            return rclone(format!("the sftp remote uses {why}, which the system ssh cannot take non-interactively"));
        }
    }
    if remote.get("pass").is_some() && remote.get("key_file").is_none() {
        return rclone("the sftp remote logs in with a password, which the system ssh cannot send non-interactively");
    }
    let host = remote
        .get("host")
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| ChannelError::permanent(format!("sftp remote {:?} has no `host`", remote.name)))?;
    if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ChannelError::permanent(format!(
            "sftp remote {:?}: host {host:?} is not a host name; fix it with `rclone config`",
            remote.name
        )));
    }
    let port = match remote.get("port").map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            ChannelError::permanent(format!(
                "sftp remote {:?}: port {p:?} is not a port number; fix it with `rclone config`",
                remote.name
            ))
        })?),
    };
    let user = remote.get("user").filter(|u| !u.is_empty()).map(str::to_string);
    if user.as_deref().is_some_and(|u| u.starts_with('-') || u.chars().any(|c| c.is_whitespace() || c.is_control())) {
        return Err(ChannelError::permanent(format!(
            "sftp remote {:?}: its user is not a login name; fix it with `rclone config`",
            remote.name
        )));
    }
    Ok(TransferRoute::Sftp(SftpPlan {
        host: host.to_string(),
        port,
        user,
        key_file: remote.get("key_file").filter(|k| !k.is_empty()).map(home_expanded),
        known_hosts_file: remote.get("known_hosts_file").filter(|k| !k.is_empty()).map(home_expanded),
        path: path.to_string(),
    }))
}

/// [`crate::paths::expand_tilde`] for the string paths of an rclone remote.
fn home_expanded(p: &str) -> String {
    crate::paths::expand_tilde(std::path::Path::new(p)).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::rclone_conf::{obscure, parse};
    use super::*;

    fn conf(text: &str) -> RcloneConf {
        RcloneConf { path: None, remotes: parse(text) }
    }

    fn od(p: TransferRoute) -> OpendalPlan {
        match p {
            TransferRoute::Opendal(o) => o,
            other => panic!("expected opendal, got {other:?}"),
        }
    }

    fn why(p: TransferRoute) -> String {
        match p {
            TransferRoute::Rclone { reason } => reason,
            other => panic!("expected rclone, got {other:?}"),
        }
    }

    const MAX: u64 = 64 << 20;

    #[test]
    fn drive_token_json_maps_to_gdrive_options() {
        let c = conf(
            r#"[gd]
type = drive
client_id = 123.apps.googleusercontent.com
client_secret = shh
scope = drive
token = {"access_token":"ya29.a","token_type":"Bearer","refresh_token":"1//r","expiry":"2026-01-01T00:00:00Z"}
"#,
        );
        let p = od(plan(&c, &c.remotes[0], "claude-handoffs/x/a.png", Some(10), MAX).unwrap());
        assert_eq!(p.scheme, "gdrive");
        assert_eq!(p.options.get("access_token"), Some("ya29.a"));
        assert_eq!(p.options.get("refresh_token"), Some("1//r"));
        assert_eq!(p.options.get("client_id"), Some("123.apps.googleusercontent.com"));
        assert_eq!(p.options.get("client_secret"), Some("shh"));
        assert_eq!(p.path, "claude-handoffs/x/a.png");
        assert!(p.one_shot);
        let shown = format!("{:?}", p.options);
        assert!(!shown.contains("ya29") && !shown.contains("shh") && !shown.contains("1//r"), "{shown}");
    }

    #[test]
    fn drive_cases_opendal_cannot_do_go_to_rclone() {
        let tok = r#"token = {"access_token":"a","refresh_token":"r"}"#;
        let c = conf(&format!("[gd]\ntype = drive\n{tok}\n"));
        assert!(why(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap()).contains("rclone's own OAuth client"));
        let c = conf(&format!("[gd]\ntype = drive\nclient_id = x\nteam_drive = 0ABC\n{tok}\n"));
        assert!(why(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap()).contains("shared drive"));
        let c = conf(&format!("[gd]\ntype = drive\nclient_id = x\nroot_folder_id = 1xyz\n{tok}\n"));
        assert!(why(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap()).contains("root_folder_id"));
        let c = conf(&format!("[gd]\ntype = drive\nclient_id = x\n{tok}\n"));
        assert!(
            od(plan(&c, &c.remotes[0], "f", None, MAX).unwrap()).one_shot,
            "large uploads are sent to rclone by the channel"
        );
        let c = conf("[gd]\ntype = drive\nclient_id = x\ntoken = not json\n");
        assert!(
            plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap_err().message.contains("rclone config reconnect gd:")
        );
    }

    #[test]
    fn bucket_names_that_could_name_another_host_are_refused() {
        for good in ["bucket", "my-bucket.logs", "a1_b"] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["2130706433:19001#", "2130706433", "127.0.0.1", "Bucket", "ab", "-ab", "a..b", "x@evil", "a b"] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
        let c = conf("[m]\ntype = s3\nendpoint = http://127.0.0.1:9000\n");
        let e = plan(&c, &c.remotes[0], "2130706433:19001#/obj", None, MAX).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused, "{}", e.message);
    }

    #[test]
    fn s3_splits_bucket_and_maps_keys_endpoint_and_env_auth() {
        let c = conf(
            "[m]\ntype = s3\nprovider = Minio\naccess_key_id = AK\nsecret_access_key = SK\nendpoint = http://127.0.0.1:9000\nregion = eu-1\n",
        );
        let p = od(plan(&c, &c.remotes[0], "bucket/claude-handoffs/a", Some(1), MAX).unwrap());
        assert_eq!((p.scheme, p.path.as_str()), ("s3", "claude-handoffs/a"));
        assert_eq!(p.options.get("bucket"), Some("bucket"));
        assert_eq!(p.options.get("endpoint"), Some("http://127.0.0.1:9000"));
        assert_eq!(p.options.get("region"), Some("eu-1"));
        assert_eq!(p.options.get("access_key_id"), Some("AK"));
        assert_eq!(p.options.get("disable_config_load"), Some("true"));
        assert_eq!(p.options.get("enable_virtual_host_style"), None);
        let c = conf("[a]\ntype = s3\nprovider = AWS\nenv_auth = true\n");
        let p = od(plan(&c, &c.remotes[0], "bkt/x", Some(1), MAX).unwrap());
        assert_eq!(p.options.get("disable_config_load"), None);
        assert_eq!(p.options.get("enable_virtual_host_style"), Some("true"));
        assert_eq!(p.options.get("region"), Some("us-east-1"));
        let err = plan(&c, &c.remotes[0], "", Some(1), MAX).unwrap_err().message;
        assert!(err.contains("must start with a bucket name"), "{err}");
    }

    #[test]
    fn webdav_reveals_the_password_and_splits_the_url() {
        let c = conf(&format!(
            "[w]\ntype = webdav\nurl = http://127.0.0.1:8080/dav/\nvendor = other\nuser = u\npass = {}\n",
            obscure("pw", [1; 16])
        ));
        let p = od(plan(&c, &c.remotes[0], "f/a", Some(1), MAX).unwrap());
        assert_eq!(p.options.get("endpoint"), Some("http://127.0.0.1:8080"));
        assert_eq!(p.options.get("root"), Some("/dav"));
        assert_eq!(p.options.get("username"), Some("u"));
        assert_eq!(p.options.get("password"), Some("pw"));
        assert!(p.one_shot);
        let c = conf("[w]\ntype = webdav\nurl = http://h/\npass = plain-text-not-obscured\n");
        assert!(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap_err().message.contains("rclone obscure"));
    }

    #[test]
    fn sftp_uses_ssh_with_keys_and_rclone_for_passwords() {
        let c = conf("[s]\ntype = sftp\nhost = 127.0.0.1\nport = 2222\nuser = me\nkey_file = /k/id\n");
        let TransferRoute::Sftp(p) = plan(&c, &c.remotes[0], "/srv/f", Some(1), MAX).unwrap() else {
            panic!("not ssh")
        };
        assert_eq!((p.host.as_str(), p.port, p.user.as_deref()), ("127.0.0.1", Some(2222), Some("me")));
        assert_eq!((p.key_file.as_deref(), p.known_hosts_file.as_deref()), (Some("/k/id"), None));
        assert_eq!(p.path, "/srv/f");
        let c = conf("[s]\ntype = sftp\nhost = h\nknown_hosts_file = /k/known\n");
        let TransferRoute::Sftp(p) = plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap() else { panic!("not ssh") };
        assert_eq!((p.port, p.user, p.known_hosts_file.as_deref()), (None, None, Some("/k/known")));
        let c = conf(&format!("[s]\ntype = sftp\nhost = h\npass = {}\n", obscure("x", [2; 16])));
        assert!(why(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap()).contains("password"));
        let c = conf("[s]\ntype = sftp\nhost = h\nkey_file = /k\nkey_file_pass = xx\n");
        assert!(why(plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap()).contains("passphrase"));
        for bad in ["host = -oProxyCommand=x", "host = h\nport = 99999", "port = 22"] {
            let c = conf(&format!("[s]\ntype = sftp\n{bad}\n"));
            let e = plan(&c, &c.remotes[0], "f", Some(1), MAX).unwrap_err();
            assert!(e.message.contains("sftp remote \"s\""), "{bad}: {e}");
        }
    }

    #[test]
    fn alias_local_and_unsupported_types() {
        let c = conf(
            "[l]\ntype = local\n[al]\ntype = alias\nremote = l:/data/x\n[b]\ntype = b2\n[cr]\ntype = crypt\n[none]\nfoo = 1\n",
        );
        let p = od(plan(&c, &c.remotes[1], "f/a", Some(1), MAX).unwrap());
        assert_eq!((p.scheme, p.path.as_str()), ("fs", "data/x/f/a"));
        assert!(why(plan(&c, &c.remotes[2], "bk/f", Some(1), MAX).unwrap()).contains("bucket's id"));
        assert!(why(plan(&c, &c.remotes[3], "f", Some(1), MAX).unwrap()).contains("`crypt`"));
        assert!(plan(&c, &c.remotes[4], "f", Some(1), MAX).unwrap_err().message.contains("no `type`"));
    }
}
