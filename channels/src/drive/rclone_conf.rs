//! rclone.conf, read the way rclone reads it: where it is looked for, its INI sections, `RCLONE_CONFIG_*`
//! environment overrides, obscured fields (`rclone obscure`) and rclone's own config encryption.
//!
//! The schemes follow rclone's source: an obscured value is base64url (no padding) of a 16-byte IV followed by
//! the value encrypted with AES-256-CTR under a fixed key; an encrypted config is the line
//! `RCLONE_ENCRYPT_V0:` followed by standard base64 of a 24-byte nonce and a NaCl secretbox sealed with
//! `sha256("[" + NFKC(password) + "][rclone-config]")`.

use crate::ChannelError;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// rclone's fixed key for obscured config values (public, in rclone's source: obscuring is not encryption).
const OBSCURE_KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b, 0xd3, 0x90, 0x19,
    0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];

/// The first meaningful line of an encrypted rclone.conf.
const ENCRYPT_MARKER: &str = "RCLONE_ENCRYPT_V0:";

/// Environment variable holding the password of an encrypted rclone.conf (the one rclone itself reads).
pub const PASS_ENV: &str = "RCLONE_CONFIG_PASS";

/// One remote: its name and its `key = value` lines (values as written, obscured ones still obscured).
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    /// Section name.
    pub name: String,
    /// Keys and values.
    pub values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: only the type and the key names are shown.
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("type", &self.get("type"))
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Remote {
    /// A value, `None` when absent or empty (rclone treats an empty value as unset).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|v| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The remote's type (`drive`, `s3`, …).
    pub fn kind(&self) -> &str {
        self.get("type").unwrap_or("")
    }

    /// A boolean option the way rclone parses it (`true`/`false`, `1`/`0`), with a default.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key).map(|v| v.to_ascii_lowercase()) {
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => false,
            _ => default,
        }
    }

    /// A field rclone stores obscured (`pass`, `key_file_pass`, …), revealed.
    pub fn revealed(&self, key: &str) -> Result<Option<String>, ChannelError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => reveal(v).map(Some).map_err(|e| {
                ChannelError::permanent(format!(
                    "remote {:?}: its `{key}` is not a value made by `rclone obscure` ({e}); re-enter it with `rclone config`",
                    self.name
                ))
            }),
        }
    }
}

/// A parsed rclone.conf.
#[derive(Debug, Clone, Default)]
pub struct RcloneConf {
    /// Where it was read from (`None` when no file exists and only environment remotes are known).
    pub path: Option<PathBuf>,
    /// Remotes, in file order.
    pub remotes: Vec<Remote>,
}

impl RcloneConf {
    /// Finds and reads rclone.conf: `explicit` (handoff's `rclone_config` key), then `RCLONE_CONFIG`, then
    /// rclone's platform defaults. A missing file is not an error (remotes can come from the environment).
    pub fn load(explicit: Option<&Path>) -> Result<Self, ChannelError> {
        let path = locate(explicit);
        let mut conf = match &path {
            Some(p) if p.exists() => {
                let raw = std::fs::read(p)
                    .map_err(|e| ChannelError::permanent(format!("cannot read rclone config {}: {e}", p.display())))?;
                let text = String::from_utf8(raw)
                    .map_err(|_| ChannelError::permanent(format!("rclone config {} is not UTF-8 text", p.display())))?;
                let password = std::env::var(PASS_ENV).ok();
                let plain = decrypt_if_needed(&text, password.as_deref(), p)?;
                Self { path: Some(p.clone()), remotes: parse(&plain) }
            }
            Some(p) if explicit.is_some() || std::env::var_os("RCLONE_CONFIG").is_some() => {
                return Err(ChannelError::permanent(format!(
                    "the rclone config {} does not exist: create it with `rclone config`, or fix `rclone_config` in handoff's [drive] section / RCLONE_CONFIG",
                    p.display()
                )));
            }
            _ => Self { path: path.clone(), remotes: Vec::new() },
        };
        conf.apply_env(std::env::vars());
        Ok(conf)
    }

    /// Applies rclone's environment overrides: `RCLONE_CONFIG_<REMOTE>_<KEY>=value` sets a key, and a remote
    /// that only exists in the environment is defined by `RCLONE_CONFIG_<REMOTE>_TYPE`.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        let vars: Vec<(String, String)> =
            vars.into_iter().filter(|(k, _)| k.starts_with("RCLONE_CONFIG_") && k != PASS_ENV).collect();
        for (k, v) in &vars {
            if let Some(name) = k.strip_prefix("RCLONE_CONFIG_").and_then(|r| r.strip_suffix("_TYPE"))
                && !name.is_empty()
                && !self.remotes.iter().any(|r| r.name.to_uppercase() == name)
            {
                let mut values = BTreeMap::new();
                values.insert("type".to_string(), v.clone());
                self.remotes.push(Remote { name: name.to_lowercase(), values });
            }
        }
        for remote in &mut self.remotes {
            let prefix = format!("RCLONE_CONFIG_{}_", remote.name.to_uppercase().replace('-', "_"));
            for (k, v) in &vars {
                if let Some(key) = k.strip_prefix(&prefix) {
                    remote.values.insert(key.to_lowercase(), v.clone());
                }
            }
        }
    }

    /// The remote called `name`, or an error listing the remotes that exist.
    pub fn remote(&self, name: &str) -> Result<&Remote, ChannelError> {
        self.remotes.iter().find(|r| r.name == name).ok_or_else(|| {
            let found: Vec<String> = self.remotes.iter().map(|r| format!("{} ({})", r.name, r.kind())).collect();
            let place = self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "no rclone.conf found".into());
            ChannelError::permanent(format!(
                "rclone remote {name:?} is not configured ({place}); remotes found: {}. Set [drive] remote in handoff's config to one of them, or add it with `rclone config`",
                if found.is_empty() { "none".to_string() } else { found.join(", ") }
            ))
        })
    }
}

/// Where rclone would read its config: `explicit`, `RCLONE_CONFIG`, then the platform defaults (the first that
/// exists, else the preferred location).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(crate::paths::expand_tilde(p));
    }
    if let Some(p) = std::env::var_os("RCLONE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(crate::paths::expand_tilde(Path::new(&p)));
    }
    let home = crate::paths::home_dir();
    let mut candidates = Vec::new();
    if cfg!(windows)
        && let Some(appdata) = std::env::var_os("APPDATA")
    {
        candidates.push(PathBuf::from(appdata).join("rclone").join("rclone.conf"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(xdg).join("rclone").join("rclone.conf"));
    } else if let Some(h) = &home {
        candidates.push(h.join(".config").join("rclone").join("rclone.conf"));
    }
    if let Some(h) = &home {
        candidates.push(h.join(".rclone.conf"));
    }
    candidates.iter().find(|p| p.exists()).cloned().or_else(|| candidates.into_iter().next())
}

/// Parses rclone.conf's INI: `[name]` sections, `key = value` lines, `#`/`;` comments.
pub fn parse(text: &str) -> Vec<Remote> {
    let mut remotes: Vec<Remote> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            remotes.push(Remote { name: name.trim().to_string(), values: BTreeMap::new() });
        } else if let (Some(remote), Some((k, v))) = (remotes.last_mut(), l.split_once('=')) {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(v);
            remote.values.insert(k.trim().to_string(), v.to_string());
        }
    }
    remotes
}

/// Returns the config text, decrypting it first when it is encrypted with rclone's scheme.
pub fn decrypt_if_needed(text: &str, password: Option<&str>, path: &Path) -> Result<String, ChannelError> {
    let mut lines = text.lines();
    let marker = lines.by_ref().map(str::trim).find(|l| !(l.is_empty() || l.starts_with('#') || l.starts_with(';')));
    match marker {
        Some(ENCRYPT_MARKER) => {}
        Some(l) if l.starts_with("RCLONE_ENCRYPT_V") => {
            return Err(ChannelError::permanent(format!(
                "rclone config {} uses an encryption version handoff does not know ({l}); decrypt it with `rclone config encryption remove` or use a newer handoff",
                path.display()
            )));
        }
        _ => return Ok(text.to_string()),
    }
    let password = password.filter(|p| !p.is_empty()).ok_or_else(|| {
        ChannelError::auth(format!(
            "rclone config {} is encrypted: set {PASS_ENV} to its password (the same variable rclone reads)",
            path.display()
        ))
    })?;
    let b64: String = lines.flat_map(|l| l.chars()).filter(|c| !c.is_whitespace()).collect();
    let bad = |what: &str| ChannelError::permanent(format!("rclone config {} is damaged: {what}", path.display()));
    let boxed = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| bad("its encrypted part is not base64"))?;
    let plain = open_secretbox(&boxed, password).map_err(|e| match e {
        OpenError::TooShort => bad("its encrypted part is too short"),
        OpenError::WrongKey => ChannelError::auth(format!(
            "{PASS_ENV} does not decrypt the rclone config {} (wrong password?)",
            path.display()
        )),
    })?;
    String::from_utf8(plain).map_err(|_| bad("the decrypted config is not UTF-8"))
}

enum OpenError {
    TooShort,
    WrongKey,
}

/// rclone's config key: sha256 of `[password][rclone-config]`, password NFKC-normalised.
fn config_key(password: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    use unicode_normalization::UnicodeNormalization;
    let normalised: String = password.nfkc().collect();
    Sha256::digest(format!("[{normalised}][rclone-config]").as_bytes()).into()
}

fn open_secretbox(boxed: &[u8], password: &str) -> Result<Vec<u8>, OpenError> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    use crypto_secretbox::{Nonce, XSalsa20Poly1305};
    if boxed.len() < 24 + 16 {
        return Err(OpenError::TooShort);
    }
    let cipher = XSalsa20Poly1305::new(&config_key(password).into());
    cipher.decrypt(Nonce::from_slice(&boxed[..24]), &boxed[24..]).map_err(|_| OpenError::WrongKey)
}

/// Encrypts a config the way `rclone config encryption set` does (for tests and tooling).
pub fn encrypt(plain: &str, password: &str, nonce: [u8; 24]) -> String {
    use crypto_secretbox::aead::{Aead, KeyInit};
    use crypto_secretbox::{Nonce, XSalsa20Poly1305};
    let cipher = XSalsa20Poly1305::new(&config_key(password).into());
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(Nonce::from_slice(&nonce), plain.as_bytes()).expect("secretbox seals"));
    format!(
        "# Encrypted rclone configuration File\n\n{ENCRYPT_MARKER}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(out)
    )
}

fn obscure_crypt(iv: &[u8], data: &mut [u8]) {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let mut c = ctr::Ctr128BE::<aes::Aes256>::new((&OBSCURE_KEY).into(), iv.into());
    c.apply_keystream(data);
}

/// Reveals a value made by `rclone obscure`.
pub fn reveal(obscured: &str) -> Result<String, &'static str> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(obscured.trim().as_bytes())
        .map_err(|_| "not base64")?;
    if raw.len() < 16 {
        return Err("too short");
    }
    let (iv, rest) = raw.split_at(16);
    let mut buf = rest.to_vec();
    obscure_crypt(iv, &mut buf);
    String::from_utf8(buf).map_err(|_| "does not reveal to text")
}

/// Obscures a value the way `rclone obscure` does, with the given IV.
pub fn obscure(value: &str, iv: [u8; 16]) -> String {
    let mut buf = value.as_bytes().to_vec();
    obscure_crypt(&iv, &mut buf);
    let mut out = iv.to_vec();
    out.extend(buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveals_a_value_obscured_by_rclone() {
        // rclone's own test vector (IV of sixteen `b`s); checked against `rclone reveal`.
        assert_eq!(reveal(&obscure("potato", [7; 16])).unwrap(), "potato");
        assert_eq!(reveal("YmJiYmJiYmJiYmJiYmJiYp3gcEWbAw").unwrap(), "potato");
        assert!(reveal("!!!").is_err());
        assert!(reveal("YWJj").is_err());
    }

    #[test]
    fn parses_sections_keys_and_comments() {
        let remotes =
            parse("# c\n[gdrive]\ntype = drive\nscope = drive\n; x\n[s3]\ntype=s3\nregion = \"eu-west-1\"\nempty =\n");
        assert_eq!(remotes.len(), 2);
        assert_eq!(remotes[0].name, "gdrive");
        assert_eq!(remotes[0].kind(), "drive");
        assert_eq!(remotes[1].get("region"), Some("eu-west-1"));
        assert_eq!(remotes[1].get("empty"), None);
    }

    #[test]
    fn environment_overrides_and_defines_remotes() {
        let mut conf = RcloneConf { path: None, remotes: parse("[my-s3]\ntype = s3\nregion = a\n") };
        conf.apply_env([
            ("RCLONE_CONFIG_MY_S3_REGION".to_string(), "b".to_string()),
            ("RCLONE_CONFIG_ENVONLY_TYPE".to_string(), "local".to_string()),
            ("RCLONE_CONFIG_PASS".to_string(), "x".to_string()),
        ]);
        assert_eq!(conf.remote("my-s3").unwrap().get("region"), Some("b"));
        assert_eq!(conf.remote("envonly").unwrap().kind(), "local");
        let err = conf.remote("nope").unwrap_err().message;
        assert!(err.contains("my-s3 (s3)") && err.contains("envonly (local)"), "{err}");
    }

    #[test]
    fn encrypted_config_round_trips_and_refuses_wrong_or_missing_password() {
        let plain = "[a]\ntype = local\n";
        let enc = encrypt(plain, "s3cret", [9; 24]);
        let p = Path::new("rclone.conf");
        assert_eq!(decrypt_if_needed(&enc, Some("s3cret"), p).unwrap(), plain);
        let wrong = decrypt_if_needed(&enc, Some("nope"), p).unwrap_err();
        assert!(wrong.message.contains("wrong password"), "{}", wrong.message);
        assert!(!wrong.message.contains("nope"));
        let missing = decrypt_if_needed(&enc, None, p).unwrap_err();
        assert!(missing.message.contains(PASS_ENV), "{}", missing.message);
        assert_eq!(decrypt_if_needed(plain, None, p).unwrap(), plain);
    }
}
