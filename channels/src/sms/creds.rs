//! Twilio credentials: an Account SID + auth token, or an API key SID + secret, read from the environment
//! or an env file — never from the TOML config, never shown.

use super::validate;
use crate::ChannelError;
use std::path::Path;

/// What to authenticate with and which account to act on. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    /// The account the Messages belong to (`AC…`), used in the URL.
    pub account_sid: String,
    /// Basic-auth user: the Account SID, or an API key SID (`SK…`).
    pub username: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_sid", &validate::mask_sid(&self.account_sid))
            .field("username", &validate::mask_sid(&self.username))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The variables looked up, in order of preference: handoff's own names, Twilio's API-key names, then
/// Twilio's account names.
const PAIRS: [(&str, &str); 3] = [
    ("TWILIO_SID", "TWILIO_TOKEN"),
    ("TWILIO_API_KEY", "TWILIO_API_SECRET"),
    ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
];

impl Credentials {
    /// Builds credentials from explicit values (tests, other sources), checking their shape.
    /// `username` is an Account SID (`AC…`) or an API key SID (`SK…`); with an API key, `account_sid`
    /// must name the account.
    pub fn new(username: &str, secret: &str, account_sid: Option<&str>) -> Result<Self, ChannelError> {
        validate::sid("the SID", username, &["AC", "SK"])?;
        if secret.trim().is_empty() {
            return Err(ChannelError::permanent("the Twilio token (TWILIO_TOKEN) is empty"));
        }
        let account_sid = match account_sid {
            Some(a) => a.to_string(),
            None if username.starts_with("AC") => username.to_string(),
            None => {
                return Err(ChannelError::permanent(
                    "TWILIO_SID is an API key (SK…): also set the account it belongs to, as `account_sid = \"AC…\"` \
                     in [sms] or TWILIO_ACCOUNT_SID in the environment",
                ));
            }
        };
        validate::sid("the Twilio account SID ([sms] account_sid / TWILIO_ACCOUNT_SID)", &account_sid, &["AC"])?;
        Ok(Self { account_sid, username: username.to_string(), secret: secret.to_string() })
    }

    /// The secret (auth token or API key secret), for the HTTP client and for handoff's outgoing-content
    /// scanner, which refuses to send any secret it has loaded. Never print it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Looks the credentials up with `get` (a variable name → value function): `TWILIO_SID` +
    /// `TWILIO_TOKEN`, else `TWILIO_API_KEY` + `TWILIO_API_SECRET`, else `TWILIO_ACCOUNT_SID` +
    /// `TWILIO_AUTH_TOKEN`. The account for an API key comes from `account_sid`, else `TWILIO_ACCOUNT_SID`.
    pub fn lookup(get: impl Fn(&str) -> Option<String>, account_sid: Option<&str>) -> Result<Self, ChannelError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        for (user_var, secret_var) in PAIRS {
            match (get(user_var), get(secret_var)) {
                (Some(user), Some(secret)) => {
                    let account = account_sid
                        .map(str::to_string)
                        .or_else(|| if user.starts_with("SK") { get("TWILIO_ACCOUNT_SID") } else { None });
                    return Self::new(&user, &secret, account.as_deref())
                        .map_err(|e| e.context(format!("Twilio credentials from {user_var} / {secret_var}")));
                }
                (Some(_), None) => {
                    return Err(ChannelError::config(format!("{user_var} is set but {secret_var} is not; set both")));
                }
                (None, Some(_)) => {
                    return Err(ChannelError::config(format!("{secret_var} is set but {user_var} is not; set both")));
                }
                (None, None) => {}
            }
        }
        Err(ChannelError::config(
            "SMS paging needs Twilio credentials: set TWILIO_SID and TWILIO_TOKEN in the environment (or in the \
             env file named by `env_file` in [sms]); an API key SID + secret works too",
        ))
    }

    /// Reads the credentials from the process environment, then from `env_file` when given (a file of
    /// `KEY=value` lines, like the bus's env file). The environment wins.
    pub fn from_env(env_file: Option<&Path>, account_sid: Option<&str>) -> Result<Self, ChannelError> {
        let file = match env_file {
            Some(p) => read_env_file(p)?,
            None => Default::default(),
        };
        Self::lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| file.get(k).cloned()), account_sid)
    }
}

/// Reads the Twilio env file (see [`crate::env_file::read`]: private, `KEY=value` lines).
pub fn read_env_file(path: &Path) -> Result<std::collections::BTreeMap<String, String>, ChannelError> {
    crate::env_file::read(path, "the Twilio env file ([sms] env_file)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ac() -> String {
        format!("AC{}", "0123456789abcdef".repeat(2))
    }
    fn sk() -> String {
        format!("SK{}", "fedcba9876543210".repeat(2))
    }

    #[test]
    fn account_sid_and_token() {
        let vars: HashMap<String, String> =
            [("TWILIO_SID".to_string(), ac()), ("TWILIO_TOKEN".into(), "tok3n-value".into())].into();
        let c = Credentials::lookup(|k| vars.get(k).cloned(), None).unwrap();
        assert_eq!(c.account_sid, ac());
        assert_eq!(c.username, ac());
        assert_eq!(c.secret(), "tok3n-value");
        assert!(!format!("{c:?}").contains("tok3n"), "Debug hides the token");
    }

    #[test]
    fn api_key_needs_the_account() {
        let mut vars: HashMap<String, String> =
            [("TWILIO_API_KEY".to_string(), sk()), ("TWILIO_API_SECRET".into(), "s".into())].into();
        let e = Credentials::lookup(|k| vars.get(k).cloned(), None).unwrap_err();
        assert!(e.message.contains("account_sid"), "{e}");
        vars.insert("TWILIO_ACCOUNT_SID".into(), ac());
        let c = Credentials::lookup(|k| vars.get(k).cloned(), None).unwrap();
        assert_eq!((c.username.as_str(), c.account_sid.as_str()), (sk().as_str(), ac().as_str()));
        let c = Credentials::lookup(|k| vars.get(k).cloned(), Some(&ac())).unwrap();
        assert_eq!(c.account_sid, ac());
    }

    #[test]
    fn missing_or_half_set_or_malformed() {
        let e = Credentials::lookup(|_| None, None).unwrap_err();
        assert!(e.message.contains("TWILIO_SID") && e.message.contains("TWILIO_TOKEN"));
        let e = Credentials::lookup(|k| (k == "TWILIO_SID").then(ac), None).unwrap_err();
        assert!(e.message.contains("TWILIO_TOKEN is not"));
        let e =
            Credentials::lookup(|k| Some(if k == "TWILIO_SID" { "not-a-sid".into() } else { "hunter2".into() }), None)
                .unwrap_err();
        assert!(
            e.message.contains("TWILIO_SID") && !e.message.contains("hunter2") && !e.message.contains("not-a-sid"),
            "{e}"
        );
    }

    #[test]
    fn env_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("twilio.env");
        std::fs::write(&p, format!("TWILIO_SID={}\nTWILIO_TOKEN=t0k\n", ac())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_env_file(&p).unwrap_err().message.contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_env_file(&p).unwrap()["TWILIO_TOKEN"], "t0k");
    }
}
