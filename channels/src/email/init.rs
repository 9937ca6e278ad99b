//! The email channel's part in `handoff init`: `--email-imap` and `--email-user` (both or neither),
//! `--email-drafts`, `--email-to`, `--email-cc`. The password is never written: it stays in the
//! environment or the env file.

use super::{NAME, PASSWORD_VAR};
use crate::ChannelError;
use crate::init::{InitChoice, InitFlags, InitPlace, toml_list, toml_string};

/// The email channel's flags of `handoff init`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmailInitFlags {
    /// IMAP server for email drafts, e.g. imaps://imap.gmail.com:993 (password: HANDOFF_IMAP_PASSWORD).
    #[arg(long, value_name = "URL", requires = "email_user")]
    pub email_imap: Option<String>,
    /// IMAP login for email drafts (your address).
    #[arg(long, value_name = "USER", requires = "email_imap")]
    pub email_user: Option<String>,
    /// Drafts folder ("[Gmail]/Drafts" on Gmail).
    #[arg(long, value_name = "FOLDER", default_value = "Drafts")]
    pub email_drafts: String,
    /// To: of each draft (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub email_to: Vec<String>,
    /// Cc: of each draft (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub email_cc: Vec<String>,
}

impl InitFlags for EmailInitFlags {
    fn choose(&self, _place: &InitPlace<'_>) -> Result<InitChoice, ChannelError> {
        let (Some(imap), Some(user)) = (&self.email_imap, &self.email_user) else { return Ok(InitChoice::default()) };
        let mut t = format!(
            "[{NAME}]\nimap = {}\nuser = {}\ndrafts = {}\n",
            toml_string(imap),
            toml_string(user),
            toml_string(&self.email_drafts)
        );
        if !self.email_to.is_empty() {
            t.push_str(&format!("to = {}\n", toml_list(&self.email_to)));
        }
        if !self.email_cc.is_empty() {
            t.push_str(&format!("cc = {}\n", toml_list(&self.email_cc)));
        }
        t.push_str(&format!("# password: {PASSWORD_VAR} in the environment or the env file (never here)\n"));
        Ok(InitChoice::text(t))
    }
}
