//! A channel's part in `handoff init`: its own flags (a `clap::Args` struct in its module, named by its
//! config section's [`ChannelSection::InitFlags`](crate::registration::ChannelSection::InitFlags)), how
//! they and what the machine already has become its config section, and what `init` checks before
//! writing it. The [`register_channels!`](crate::register_channels) list flattens every built channel's
//! flags into `handoff init` (`ChannelInitFlags`), so a build without a channel shows none of its flags.

use crate::ChannelError;
use std::path::Path;

/// What a channel may ask the user while `init` runs: on a terminal it asks (Enter keeps the suggestion);
/// otherwise each question answers its default and each pick the value given by flag.
pub trait InitPrompt {
    /// Asks `question` with a suggestion; Enter keeps `default`, `-` clears it.
    fn ask(&self, question: &str, default: Option<&str>) -> std::io::Result<Option<String>>;

    /// Picks one of `options` (shown as `labels`) by number or name; `given` (a flag) wins without asking.
    fn pick(
        &self,
        what: &str,
        options: &[String],
        labels: &[String],
        given: Option<String>,
    ) -> std::io::Result<Option<String>>;
}

/// Where `init` runs: this user's home (paths under it are written `~/...`) and the prompt.
pub struct InitPlace<'a> {
    /// This user's home directory.
    pub home: &'a Path,
    /// Asks on a terminal, answers the defaults elsewhere.
    pub prompt: &'a dyn InitPrompt,
}

impl InitPlace<'_> {
    /// Asks through [`InitPrompt::ask`]; a failure to read the answer is a transient error.
    pub fn ask(&self, question: &str, default: Option<&str>) -> Result<Option<String>, ChannelError> {
        self.prompt.ask(question, default).map_err(|e| ChannelError::transient(format!("cannot read the answer: {e}")))
    }

    /// Picks through [`InitPrompt::pick`]; a failure to read the answer is a transient error.
    pub fn pick(
        &self,
        what: &str,
        options: &[String],
        labels: &[String],
        given: Option<String>,
    ) -> Result<Option<String>, ChannelError> {
        self.prompt
            .pick(what, options, labels, given)
            .map_err(|e| ChannelError::transient(format!("cannot read the answer: {e}")))
    }

    /// `path` with a leading `~` expanded, then shown the way init writes it: `~/...` when under home.
    pub fn written_path(&self, path: &Path) -> String {
        tilde(&crate::paths::expand_home(path, self.home), self.home)
    }
}

/// A channel's section as `init` chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSection {
    /// The section's TOML text, its `[name]` header first, every value written with [`toml_string`].
    pub toml: String,
    /// What was chosen, listed in `init --json`'s plan under the channel's name when its flags are
    /// [`InitFlags::LISTED_IN_PLAN`] (`None` lists the section's text among the plan's `sections`).
    pub plan: Option<serde_json::Value>,
}

/// What a channel's init decided: its section (or none) and what it found but did not use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InitChoice {
    /// The section to write; `None` leaves the channel unconfigured.
    pub section: Option<InitSection>,
    /// What was found but not used, and how to use it ("rclone remotes found: ...; pass --drive-remote").
    pub notes: Vec<String>,
}

impl InitChoice {
    /// A section with its text only (listed among the plan's `sections`).
    pub fn text(toml: String) -> Self {
        InitChoice { section: Some(InitSection { toml, plan: None }), notes: Vec::new() }
    }
}

/// What one channel's init chose, as the registration hands it to `init`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInitChoice {
    /// The channel's name.
    pub name: &'static str,
    /// Whether `init --json`'s plan lists its choice under its name, `null` when none
    /// ([`InitFlags::LISTED_IN_PLAN`]).
    pub listed_in_plan: bool,
    /// What it chose.
    pub choice: InitChoice,
}

/// A channel's own flags of `handoff init` and how they become its config section.
pub trait InitFlags: clap::Args + std::fmt::Debug + Clone {
    /// Whether `init --json`'s plan lists this channel's choice under its name (`null` when none is
    /// chosen; its [`InitSection::plan`] when one is); otherwise its section's text is listed among the
    /// plan's `sections`.
    const LISTED_IN_PLAN: bool = false;

    /// Decides the channel's section from the flags, what the machine has and (on a terminal) the
    /// answers. A flag naming something that is not there is a permanent error naming the flag and the
    /// fix; a failure to read an answer is transient.
    fn choose(&self, place: &InitPlace<'_>) -> Result<InitChoice, ChannelError>;
}

/// What `init` does with a channel's section, read back from the text it is about to write, before
/// writing it (see [`ChannelSection::init_probe`](crate::registration::ChannelSection::init_probe)).
#[derive(Debug)]
pub enum InitProbe {
    /// Build the channel and check its health; a failure to build is refused naming `label`
    /// (`droplet host box`), a health check failing for good refuses the config.
    Health {
        /// What a refusal names.
        label: String,
    },
    /// Refuse the config now: the error says what is wrong and the fix, as it stands.
    Refuse(ChannelError),
}

/// The flags of a channel that has none of its own (SMS: its credentials live in an env file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoInitFlags {}

impl InitFlags for NoInitFlags {
    fn choose(&self, _place: &InitPlace<'_>) -> Result<InitChoice, ChannelError> {
        Ok(InitChoice::default())
    }
}

/// `p` as written in a config: `~/...` when under `home`.
pub fn tilde(p: &Path, home: &Path) -> String {
    match p.strip_prefix(home) {
        Ok(rest) if home.as_os_str().len() > 1 => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

/// `s` as a TOML basic string: quotes, backslashes, newlines and every other control character escaped,
/// so no value given to `init` can end its line or open a section.
pub fn toml_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A TOML array of [`toml_string`]s.
pub fn toml_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| toml_string(i)).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_keep_hostile_text_inside_one_value() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(toml_string("x\n[evil]\r\u{7f}\u{1b}"), "\"x\\n[evil]\\u000D\\u007F\\u001B\"");
        assert_eq!(toml_list(&["a".into(), "b\"".into()]), "[\"a\", \"b\\\"\"]");
        assert_eq!(tilde(Path::new("/home/u/x y"), Path::new("/home/u")), "~/x y");
        assert_eq!(tilde(Path::new("/srv/x"), Path::new("/home/u")), "/srv/x");
        assert_eq!(tilde(Path::new("/x"), Path::new("/")), "/x");
    }
}
