//! The drive channel: payloads to a remote from the user's rclone.conf, through opendal, through the system
//! `ssh` and SFTP for `sftp` remotes (the session the droplet uses), or through the installed rclone binary
//! where neither can reach the remote as configured (see [`services`] for which types go where, and why).
//!
//! A payload is stored at `<folder>/<yyyy-mm-dd>/<key>/<safe name>` on the remote: the key folder comes from
//! the parcel's idempotency key, so a payload can never overwrite an earlier one, and a retry of the same
//! parcel finds its own upload and does not send it twice. Its URI in pointers is `drive:<remote>:<path>`.

pub mod init;
mod local_disk;
pub mod rclone_cli;
pub mod rclone_conf;
pub mod services;
#[cfg(unix)]
mod sftp;
pub mod transfer;

use crate::names::{safe_file_name, stays_inside};
use crate::{Capability, Channel, ChannelError, Context, Health, Parcel, Receipt};
use async_trait::async_trait;
use rclone_cli::Rclone;
use rclone_conf::RcloneConf;
use serde::{Deserialize, Serialize};
use services::TransferRoute;
use std::path::{Path, PathBuf};

/// Default for [`DriveConfig::single_request_max`]: 64 MiB.
pub const DEFAULT_SINGLE_REQUEST_MAX: u64 = 64 << 20;

/// `[drive]` in handoff's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveConfig {
    /// A remote name from rclone.conf (`gdrive`).
    pub remote: String,
    /// Folder under the remote where payloads go (for bucket stores such as s3: `bucket/folder`).
    #[serde(default = "default_folder")]
    pub folder: String,
    /// rclone.conf to read (default: where rclone itself looks).
    #[serde(default)]
    pub rclone_config: Option<PathBuf>,
    /// Largest upload sent through a service that uploads in one request held in memory (webdav, Google
    /// Drive, Dropbox through opendal); larger files go through the rclone binary, which streams them.
    /// Bytes, or a string such as `"64MiB"`. Default 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_request_max: Option<SizeValue>,
    /// Among file channels of the same latency, the higher priority is tried first (default
    /// [`PRIORITY`]: after the droplet, before a shared folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// The channel's name (config section, `--via`, receipts, pointers).
pub const NAME: &str = "drive";
/// Drive's own priority among file stores.
pub const PRIORITY: i32 = 0;

/// rclone.conf keys that hold secrets (`pass`/`password2` are obscured and revealed first).
const RCLONE_SECRET_KEYS: [&str; 9] = [
    "pass",
    "password",
    "password2",
    "secret_access_key",
    "client_secret",
    "token",
    "key",
    "account_key",
    "session_token",
];

impl crate::registration::ChannelSection for DriveConfig {
    const CARRIES: &'static [crate::ParcelKind] = &[crate::ParcelKind::File];

    fn build(&self, ctx: &Context) -> Result<std::sync::Arc<dyn Channel>, ChannelError> {
        Ok(std::sync::Arc::new(DriveChannel::new(self.clone(), ctx.clone())))
    }

    /// The passwords and keys of the configured remote in rclone.conf.
    fn secrets(&self) -> Vec<crate::registration::LoadedSecret> {
        let explicit = self.rclone_config.as_deref().map(crate::paths::expand_tilde);
        let Ok(conf) = RcloneConf::load(explicit.as_deref()) else { return Vec::new() };
        let Ok(remote) = conf.remote(&self.remote) else { return Vec::new() };
        let mut out = Vec::new();
        for k in RCLONE_SECRET_KEYS {
            let v = if matches!(k, "pass" | "password2") {
                remote.revealed(k).ok().flatten()
            } else {
                remote.get(k).map(str::to_string)
            };
            if let Some(value) = v {
                out.push(crate::registration::LoadedSecret {
                    value,
                    label: format!("rclone's `{k}` of remote {}", self.remote),
                });
            }
        }
        out
    }

    fn secret_files(&self) -> Vec<crate::registration::SecretFile> {
        rclone_conf::locate(self.rclone_config.as_deref())
            .filter(|p| p.exists())
            .map(|path| crate::registration::SecretFile { label: "rclone.conf".into(), path })
            .into_iter()
            .collect()
    }

    fn priority(&self) -> Option<i32> {
        self.priority
    }

    type InitFlags = init::DriveInitFlags;
}

pub use crate::registration::{SizeValue, parse_size};

fn default_folder() -> String {
    "claude-handoffs".into()
}

/// The drive channel.
pub struct DriveChannel {
    cfg: DriveConfig,
    ctx: Context,
}

/// Where one payload is, split out of a `drive:<remote>:<path>` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveUri {
    /// Remote name in rclone.conf.
    pub remote: String,
    /// Path inside the remote.
    pub path: String,
}

impl DriveUri {
    /// Parses `drive:<remote>:<path>`, refusing paths that climb out (`..`) or are absolute for non-local remotes.
    pub fn parse(uri: &str) -> Result<Self, ChannelError> {
        let bad =
            || ChannelError::permanent(format!("{uri:?} is not a drive pointer (expected drive:<remote>:<path>)"));
        let rest = uri.strip_prefix("drive:").ok_or_else(bad)?;
        let (remote, path) = rest.split_once(':').ok_or_else(bad)?;
        if remote.is_empty() || path.is_empty() {
            return Err(bad());
        }
        if !stays_inside(path.trim_start_matches('/')) {
            return Err(ChannelError::permanent(format!("refusing {uri:?}: its path climbs out of the remote")));
        }
        Ok(Self { remote: remote.to_string(), path: path.to_string() })
    }

    /// Back to `drive:<remote>:<path>`.
    pub fn to_uri(&self) -> String {
        format!("drive:{}:{}", self.remote, self.path)
    }

    /// rclone's `remote:path` form.
    pub fn rclone_target(&self) -> String {
        format!("{}:{}", self.remote, self.path)
    }
}

impl DriveChannel {
    /// A drive channel for `cfg`. Nothing is read or contacted until it is used.
    pub fn new(cfg: DriveConfig, ctx: Context) -> Self {
        Self { cfg, ctx }
    }

    fn single_request_max(&self) -> Result<u64, ChannelError> {
        self.cfg
            .single_request_max
            .as_ref()
            .map(|v| v.bytes("[drive] single_request_max"))
            .unwrap_or(Ok(DEFAULT_SINGLE_REQUEST_MAX))
    }

    /// Where a parcel is stored inside the remote: `<folder>/<date>/<key>/<safe name>`. Deterministic for a
    /// given parcel (the date comes from the key when it is a UUIDv7, as handoff's keys are).
    pub fn object_path(&self, parcel: &Parcel) -> Result<String, ChannelError> {
        let f = parcel.file.as_ref().ok_or_else(|| ChannelError::permanent("the drive channel carries files only"))?;
        let key: String =
            parcel.key.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(64).collect();
        if key.is_empty() {
            return Err(ChannelError::permanent("the parcel has no idempotency key"));
        }
        let day = key_date(&parcel.key).unwrap_or_else(|| crate::bus::store::now_ts()[..10].to_string());
        Ok(services::join(&self.cfg.folder, &format!("{day}/{key}/{}", safe_file_name(&f.name))))
    }

    /// The item a pointer's `uri` names, refused ([`crate::ErrorKind::Refused`]) unless this channel could
    /// have written it: the configured remote (no other remote of rclone.conf), and a path that is the
    /// configured folder followed by plain relative components (no absolute path, no `..` or `.`, no empty
    /// segment, no control characters or backslashes). Checked before rclone.conf is even read.
    pub fn confine(&self, uri: &str) -> Result<DriveUri, ChannelError> {
        let shown = crate::untrusted::inline(uri);
        let refuse = |why: &str| {
            ChannelError::refused(format!(
                "refusing drive pointer {shown}: {why}; handoff only fetches its own payloads from [drive] remote {} folder {}",
                self.cfg.remote, self.cfg.folder
            ))
        };
        let rest = uri.strip_prefix("drive:").ok_or_else(|| refuse("it is not a drive: uri"))?;
        let (remote, path) = rest.split_once(':').ok_or_else(|| refuse("it has no remote:path"))?;
        if remote != self.cfg.remote {
            return Err(refuse("it names another remote"));
        }
        if path.chars().any(|c| crate::untrusted::is_unsafe(c) || c == '\\') {
            return Err(refuse("its path holds control characters or backslashes"));
        }
        let folder = self.cfg.folder.trim_end_matches('/');
        let rel =
            if folder.is_empty() { Some(path) } else { path.strip_prefix(folder).and_then(|r| r.strip_prefix('/')) };
        let Some(rel) = rel else {
            return Err(refuse("its path is not under the configured folder"));
        };
        if rel.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(refuse("its path is absolute or climbs out of the configured folder"));
        }
        Ok(DriveUri { remote: remote.to_string(), path: path.to_string() })
    }

    fn load_conf(&self) -> Result<RcloneConf, ChannelError> {
        RcloneConf::load(self.cfg.rclone_config.as_deref())
    }

    fn plan(&self, conf: &RcloneConf, uri: &DriveUri, size: Option<u64>) -> Result<TransferRoute, ChannelError> {
        let remote = conf.remote(&uri.remote)?;
        let max = self.single_request_max()?;
        let plan = services::plan(conf, remote, &uri.path, size, max)?;
        Ok(match plan {
            TransferRoute::Opendal(p) if p.one_shot && size.is_some_and(|s| s > max) => TransferRoute::Rclone {
                reason: format!(
                    "opendal's {} service uploads in one request held in memory; above single_request_max ({max} bytes) rclone streams it",
                    p.scheme
                ),
            },
            #[cfg(not(unix))]
            TransferRoute::Sftp(_) => TransferRoute::Rclone {
                reason: "sftp remotes go through the system ssh only on Unix; elsewhere rclone reaches them".into(),
            },
            other => other,
        })
    }

    /// For a remote on this machine (`local`, or an alias of a local path): a transient error when the
    /// directory holding the configured folder is missing (an unmounted disk; see [`local_disk`]).
    fn check_local_disk(&self, conf: &RcloneConf) -> Result<(), ChannelError> {
        let folder = DriveUri { remote: self.cfg.remote.clone(), path: self.cfg.folder.clone() };
        // a remote that cannot be planned fails on the transfer's own plan, with its own message
        match self.plan(conf, &folder, None) {
            Ok(TransferRoute::Opendal(plan)) => match local_disk::folder_on_this_machine(&plan) {
                Some(path) => local_disk::check_mounted(&self.cfg.remote, &path),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn rclone(&self, conf: &RcloneConf, reason: &str) -> Result<Rclone, ChannelError> {
        Rclone::find(conf.path.clone().filter(|p| p.exists()), reason)
    }
}

/// The UTC date (`yyyy-mm-dd`) inside a key that starts with a UUIDv7 (hyphenated or simple, with any
/// suffix such as handoff's `-<item>`).
fn key_date(key: &str) -> Option<String> {
    let hex: String = key.chars().filter(|c| *c != '-').take(32).collect();
    let u = uuid::Uuid::try_parse(&hex).ok()?;
    if u.get_version_num() != 7 {
        return None;
    }
    let ms = u64::from_be_bytes([
        0,
        0,
        u.as_bytes()[0],
        u.as_bytes()[1],
        u.as_bytes()[2],
        u.as_bytes()[3],
        u.as_bytes()[4],
        u.as_bytes()[5],
    ]);
    crate::dates::utc_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

#[async_trait]
impl Channel for DriveChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capability(&self) -> Capability {
        Capability::file_store(true, PRIORITY)
    }

    async fn deliver(&self, parcel: &Parcel) -> Result<Receipt, ChannelError> {
        let f = parcel.file.as_ref().ok_or_else(|| ChannelError::permanent("a file parcel without its file"))?;
        let conf = self.load_conf()?;
        self.check_local_disk(&conf)?;
        let uri = DriveUri { remote: self.cfg.remote.clone(), path: self.object_path(parcel)? };
        let receipt = |detail: &str, sha256: Option<String>| Receipt {
            channel: NAME.into(),
            uri: Some(uri.to_uri()),
            message_id: None,
            detail: Some(detail.to_string()),
            sha256,
        };
        match self.plan(&conf, &uri, Some(f.size))? {
            TransferRoute::Opendal(plan) => {
                let op = transfer::operator(&plan)?;
                if transfer::stat(&op, &plan.path).await? == Some(f.size) {
                    return Ok(receipt("via opendal, already uploaded", None));
                }
                let cap = op.info().full_capability();
                // Stores where a write is visible while in progress get a temporary name and a rename.
                let via_temp = cap.rename && matches!(plan.scheme, "fs" | "sftp");
                let bar = self.ctx.progress.start(&f.name, f.size);
                let r = transfer::upload(
                    &op,
                    &f.path,
                    &plan.path,
                    (f.size, &f.sha256),
                    via_temp,
                    plan.one_shot,
                    bar.as_ref(),
                )
                .await;
                bar.finish();
                let (_, sha) = r.map_err(|e| e.context(format!("drive upload to {}", uri.rclone_target())))?;
                Ok(receipt("via opendal", Some(sha)))
            }
            #[cfg(unix)]
            TransferRoute::Sftp(plan) => {
                let bar = self.ctx.progress.start(&f.name, f.size);
                let r = sftp::upload(&uri.remote, &plan, f, bar.as_ref()).await;
                bar.finish();
                let sent = r.map_err(|e| e.context(format!("drive upload to {}", uri.rclone_target())))?;
                Ok(match sent {
                    Some(sha) => receipt(sftp::VIA, Some(sha)),
                    None => receipt(&format!("{}, already uploaded", sftp::VIA), None),
                })
            }
            #[cfg(not(unix))]
            TransferRoute::Sftp(_) => unreachable!("mapped to rclone by plan()"),
            TransferRoute::Rclone { reason } => {
                let rc = self.rclone(&conf, &reason)?;
                let target = uri.rclone_target();
                if rc.stat(&target).await? == Some(f.size) {
                    return Ok(receipt(&format!("via rclone ({reason}), already uploaded"), None));
                }
                let bar = self.ctx.progress.start(&f.name, f.size);
                let r = rc.upload(&f.path, &target, (f.size, &f.sha256), bar.as_ref()).await;
                bar.finish();
                let (_, sha) = r.map_err(|e| e.context(format!("drive upload to {target}")))?;
                Ok(receipt(&format!("via rclone: {reason}"), Some(sha)))
            }
        }
    }

    async fn fetch(&self, uri: &str, dest: &Path, max: u64) -> Result<crate::Fetched, ChannelError> {
        let uri = self.confine(uri)?;
        let conf = self.load_conf()?;
        self.check_local_disk(&conf)?;
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".handoff-fetch-{}.part", uuid::Uuid::new_v4().simple()));
        let result = async {
            match self.plan(&conf, &uri, None)? {
                TransferRoute::Opendal(plan) => {
                    let op = transfer::operator(&plan)?;
                    let size = transfer::stat(&op, &plan.path).await?.ok_or_else(|| {
                        ChannelError::permanent(format!(
                            "{} is not on the remote (deleted, or a different rclone remote of that name?)",
                            uri.to_uri()
                        ))
                    })?;
                    crate::receive::check_size(&uri.to_uri(), size, max)?;
                    let bar = self.ctx.progress.start(&uri.path, size);
                    let r = transfer::download(&op, &plan.path, &tmp, max, bar.as_ref()).await;
                    bar.finish();
                    r
                }
                #[cfg(unix)]
                TransferRoute::Sftp(plan) => {
                    let bar = |size| self.ctx.progress.start(&uri.path, size);
                    sftp::download(&uri.remote, &plan, &tmp, max, bar)
                        .await
                        .map(|(size, sha256)| crate::Fetched { size, sha256 })
                }
                #[cfg(not(unix))]
                TransferRoute::Sftp(_) => unreachable!("mapped to rclone by plan()"),
                TransferRoute::Rclone { reason } => {
                    let rc = self.rclone(&conf, &reason)?;
                    let target = uri.rclone_target();
                    let size = rc
                        .stat(&target)
                        .await?
                        .ok_or_else(|| ChannelError::permanent(format!("{} is not on the remote", uri.to_uri())))?;
                    crate::receive::check_size(&uri.to_uri(), size, max)?;
                    let bar = self.ctx.progress.start(&uri.path, size);
                    let r = rc.download(&target, &tmp, max, bar.as_ref()).await;
                    bar.finish();
                    r
                }
            }
        }
        .await;
        match result {
            Ok(got) => {
                tokio::fs::rename(&tmp, dest).await?;
                Ok(got)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e.context(format!("drive fetch of {}", uri.to_uri())))
            }
        }
    }

    async fn health(&self) -> Result<Health, ChannelError> {
        let conf = self.load_conf()?;
        self.check_local_disk(&conf)?;
        let uri = DriveUri { remote: self.cfg.remote.clone(), path: self.cfg.folder.clone() };
        let remote = conf.remote(&uri.remote)?;
        let kind = remote.kind().to_string();
        let place = conf.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the environment".into());
        match self.plan(&conf, &uri, None)? {
            TransferRoute::Opendal(plan) => {
                let op = transfer::operator(&plan)?;
                let found = transfer::stat(&op, &format!("{}/", plan.path.trim_end_matches('/'))).await?;
                // writable? an empty probe file, written and deleted again (doctor: "reachable and writable")
                let probe =
                    format!("{}/.handoff-doctor-{}", plan.path.trim_end_matches('/'), uuid::Uuid::new_v4().simple());
                op.write(&probe, Vec::<u8>::new())
                    .await
                    .map_err(|e| transfer::map_err(&format!("writing a probe file into {}", uri.path), e))?;
                op.delete(&probe)
                    .await
                    .map_err(|e| transfer::map_err(&format!("deleting the probe file {probe}"), e))?;
                Ok(Health {
                    check: format!(
                        "drive remote {}: ({kind}, from {place}) reachable through opendal and writable",
                        uri.remote
                    ),
                    detail: Some(if found.is_some() {
                        format!("folder {} exists", uri.path)
                    } else {
                        format!("folder {} is created on first send", uri.path)
                    }),
                })
            }
            #[cfg(unix)]
            TransferRoute::Sftp(plan) => {
                let found = sftp::health(&uri.remote, &plan).await?;
                Ok(Health {
                    check: format!(
                        "drive remote {}: ({kind}, from {place}) reachable {} and writable",
                        uri.remote,
                        sftp::VIA
                    ),
                    detail: Some(format!("folder {} {}", uri.path, if found { "exists" } else { "created" })),
                })
            }
            #[cfg(not(unix))]
            TransferRoute::Sftp(_) => unreachable!("mapped to rclone by plan()"),
            TransferRoute::Rclone { reason } => {
                let rc = self.rclone(&conf, &reason)?;
                rc.check(&uri.rclone_target()).await?;
                Ok(Health {
                    check: format!("drive remote {}: ({kind}, from {place}) reachable through rclone", uri.remote),
                    detail: Some(format!("{reason}; {}", rc.version().await.unwrap_or_else(|| "rclone".into()))),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parcel::FileRef;

    fn parcel(key: &str, name: &str) -> Parcel {
        Parcel {
            key: key.into(),
            from: "a".into(),
            to: "b".into(),
            kind: crate::ParcelKind::File,
            title: None,
            body: String::new(),
            tags: vec![],
            file: Some(FileRef { path: "/x".into(), name: name.into(), size: 1, sha256: "00".into() }),
        }
    }

    fn channel() -> DriveChannel {
        let cfg = DriveConfig {
            remote: "r".into(),
            folder: "claude-handoffs".into(),
            rclone_config: None,
            single_request_max: None,
            priority: None,
        };
        DriveChannel::new(cfg, Context::quiet("m", std::env::temp_dir()))
    }

    #[test]
    fn object_paths_are_unique_per_key_dated_by_the_key_and_safe() {
        let ch = channel();
        // A UUIDv7 made at 2026-11-24T06:02:05Z.
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_795_500_125, 0);
        let key = uuid::Uuid::new_v7(ts).to_string();
        let p = ch.object_path(&parcel(&key, "../../a b;$(x).png")).unwrap();
        assert_eq!(p, format!("claude-handoffs/2026-11-24/{key}/a_b___x_.png"));
        assert_eq!(p, ch.object_path(&parcel(&key, "../../a b;$(x).png")).unwrap(), "a retry maps to the same place");
        // handoff's own keys: a simple UUIDv7 and the item number.
        let simple = format!("{}-0", uuid::Uuid::new_v7(ts).simple());
        assert!(ch.object_path(&parcel(&simple, "a")).unwrap().starts_with("claude-handoffs/2026-11-24/"));
        let other = ch.object_path(&parcel("k2", "a b;$(x).png")).unwrap();
        assert_ne!(p, other);
        assert!(other.contains("/k2/"));
    }

    #[test]
    fn uris_round_trip_and_refuse_escapes() {
        let u = DriveUri::parse("drive:gdrive:claude-handoffs/2026-01-01/k/a.png").unwrap();
        assert_eq!((u.remote.as_str(), u.path.as_str()), ("gdrive", "claude-handoffs/2026-01-01/k/a.png"));
        assert_eq!(u.to_uri(), "drive:gdrive:claude-handoffs/2026-01-01/k/a.png");
        assert_eq!(u.rclone_target(), "gdrive:claude-handoffs/2026-01-01/k/a.png");
        assert!(DriveUri::parse("drive:gdrive:a/../../etc/passwd").is_err());
        assert!(DriveUri::parse("local:x").is_err());
        assert!(DriveUri::parse("drive:nopath").is_err());
        // Local remotes hold absolute paths.
        assert_eq!(DriveUri::parse("drive:l:/tmp/x/a").unwrap().path, "/tmp/x/a");
    }

    #[test]
    fn fetch_follows_only_the_configured_remote_and_folder() {
        let ch = channel();
        let ok = ch.confine("drive:r:claude-handoffs/2026-01-01/k/a.png").unwrap();
        assert_eq!(ok.path, "claude-handoffs/2026-01-01/k/a.png");
        for bad in [
            "drive:r:/etc/passwd",
            "drive:other:claude-handoffs/2026-01-01/k/a.png",
            "drive:r:claude-handoffs/../etc/passwd",
            "drive:r:claude-handoffs//etc/passwd",
            "drive:r:claude-handoffs/./a",
            "drive:r:claude-handoffs-x/a",
            "drive:r:claude-handoffs",
            "drive:r:claude-handoffs/a\x1b]0;x\x07",
            "drive:r:claude-handoffs/a\\..\\b",
            "local:claude-handoffs/a",
        ] {
            let e = ch.confine(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Refused, "{bad}: {}", e.message);
            assert!(!e.message.contains('\x1b'), "the refusal shows the uri escaped: {}", e.message);
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1.5 GB"), Some(1_500_000_000));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert!(
            SizeValue::Text("x".into())
                .bytes("[drive] single_request_max")
                .unwrap_err()
                .message
                .contains("single_request_max")
        );
    }
}
