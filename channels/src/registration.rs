//! How a channel registers itself: the [`ChannelSection`] its config section implements, and the
//! [`register_channels!`](crate::register_channels) list that turns one line per channel into the config
//! fields, the "built without this channel" error, the registry's constructors, the secrets the scanner
//! must know, the files `doctor` checks, the default order pages are tried in and the channels' flags of
//! `handoff init` (see [`crate::init`]).
//!
//! Adding a channel (docs/architecture.md has the whole checklist): write its module with a config struct
//! implementing [`ChannelSection`], then add one line to the list in `channels/src/lib.rs`.

use crate::{Channel, ChannelError, Context};
use std::path::PathBuf;
use std::sync::Arc;

/// A secret value a channel loaded (a token, a password, a webhook URL), for handoff's outgoing-content
/// scanner: none of them may leave the machine in content.
#[derive(Clone)]
pub struct LoadedSecret {
    /// The value itself (never printed).
    pub value: String,
    /// What it is, for the scanner's message: "the Twilio token".
    pub label: String,
}

impl std::fmt::Debug for LoadedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedSecret({}: <redacted>)", self.label)
    }
}

/// A file holding secrets that a channel reads (an env file, rclone.conf): `doctor` checks that only its
/// owner can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// What it is: "Twilio env file".
    pub label: String,
    /// Where it is.
    pub path: PathBuf,
}

/// What a channel's config section declares about its channel. The channel's name comes from the
/// registration line (the module's name); everything else from here.
pub trait ChannelSection: serde::de::DeserializeOwned + std::fmt::Debug + Clone {
    /// The kinds of parcel the channel carries (its [`crate::Capability`] says the same, with limits):
    /// lets the router name the section to add when nothing configured can take an item.
    const CARRIES: &'static [crate::ParcelKind];

    /// Builds the channel from its section. Must not touch the network (channels connect lazily); a bad
    /// setting is a permanent error naming the key and the fix.
    fn build(&self, ctx: &Context) -> Result<Arc<dyn Channel>, ChannelError>;

    /// The channel the embedded default (no config file, no remote bus) uses when this section is absent.
    fn embedded(ctx: &Context) -> Option<Arc<dyn Channel>> {
        let _ = ctx;
        None
    }

    /// The secret values the channel loads (from the environment, an env file, a credentials file), for
    /// the scanner. Failures to load are ignored: what cannot be loaded cannot leak either.
    fn secrets(&self) -> Vec<LoadedSecret> {
        Vec::new()
    }

    /// Files holding the channel's secrets, for `doctor`'s permission check.
    fn secret_files(&self) -> Vec<SecretFile> {
        Vec::new()
    }

    /// The `priority = N` the section sets, if any: it replaces the channel's own
    /// [`crate::Capability::priority`] (among channels of the same latency, the higher is tried first).
    fn priority(&self) -> Option<i32>;

    /// The channel's own flags of `handoff init` (a `clap::Args` struct in its module;
    /// [`crate::init::NoInitFlags`] when it has none): flattened into `init` when the channel is built.
    type InitFlags: crate::init::InitFlags;

    /// What `init` checks before writing this section (read back from the text it is about to write):
    /// `None` checks nothing.
    fn init_probe(&self, home: &std::path::Path) -> Option<crate::init::InitProbe> {
        let _ = home;
        None
    }
}

/// The secret-file entry for an env file named in a config section (`doctor` reports it missing too).
pub fn env_file_entry(label: &str, path: Option<&std::path::Path>) -> Vec<SecretFile> {
    path.map(crate::paths::expand_tilde).map(|path| SecretFile { label: label.to_string(), path }).into_iter().collect()
}

/// A size in config: a number of bytes or a string like `64MiB`, `1.5GB`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// Text with a unit.
    Text(String),
}

impl SizeValue {
    /// The size in bytes, or an error naming the setting (`key`, e.g. `[droplet] max_size`) and the bad value.
    pub fn bytes(&self, key: &str) -> Result<u64, ChannelError> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => parse_size(t).ok_or_else(|| {
                ChannelError::permanent(format!(
                    "{key} = {t:?} is not a size: write e.g. \"64MiB\" or a number of bytes"
                ))
            }),
        }
    }
}

/// Parses `64MiB`, `1.5 GB`, `512k`, `1000`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// A config section of a channel this build does not include: accepted by the parser so that the
/// error can say "rebuild with the feature" instead of "unknown field".
#[derive(Debug, Clone, Default)]
pub struct NotBuilt;

impl<'de> serde::Deserialize<'de> for NotBuilt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| NotBuilt)
    }
}

/// The one list of optional channels. Each line, `"feature" => module::ConfigSection,` names the cargo
/// feature, the module (whose name is the channel's name: config section, `--via`, receipts, pointers)
/// and its config type implementing [`ChannelSection`]. The macro generates `ChannelSections`: one
/// `Option` field per channel (a [`NotBuilt`] placeholder when the feature is off), the parser of a
/// section by name, the "built without" check, the constructors, priorities, secrets and secret files;
/// and `ChannelInitFlags`: every built channel's [`ChannelSection::InitFlags`] flattened into
/// `handoff init`, with what they choose and what `init` checks.
#[macro_export]
macro_rules! register_channels {
    ($( $(#[$doc:meta])* $feature:literal => $module:ident :: $Section:ident, )*) => {
        /// The channels' own flags of `handoff init`: each built channel's
        /// [`ChannelSection::InitFlags`](crate::registration::ChannelSection::InitFlags), flattened in
        /// registration order (a build without a channel has none of its flags).
        #[derive(Debug, Clone, clap::Args)]
        pub struct ChannelInitFlags {
            $(
                #[cfg(feature = $feature)]
                #[command(flatten)]
                $module: <$module::$Section as $crate::registration::ChannelSection>::InitFlags,
            )*
        }

        impl ChannelInitFlags {
            /// What each built channel's flags (and what the machine has, and the answers on a terminal)
            /// choose, in registration order: the order `init` asks in and writes the sections in.
            #[allow(unused_variables, unused_mut, clippy::vec_init_then_push)]
            pub fn choose(
                &self,
                place: &$crate::init::InitPlace<'_>,
            ) -> Result<Vec<$crate::init::ChannelInitChoice>, $crate::ChannelError> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    out.push($crate::init::ChannelInitChoice {
                        name: stringify!($module),
                        listed_in_plan: <<$module::$Section as $crate::registration::ChannelSection>::InitFlags as $crate::init::InitFlags>::LISTED_IN_PLAN,
                        choice: $crate::init::InitFlags::choose(&self.$module, place)?,
                    });
                )*
                Ok(out)
            }
        }
        /// The config sections of every optional channel (absent = not configured), one per registration.
        #[derive(Debug, Default, Clone)]
        pub struct ChannelSections {
            $(
                $(#[$doc])*
                #[cfg(feature = $feature)]
                pub $module: Option<$module::$Section>,
                $(#[$doc])*
                #[cfg(not(feature = $feature))]
                pub $module: Option<$crate::registration::NotBuilt>,
            )*
        }

        impl ChannelSections {
            /// Every registered channel's name, built or not, in registration order.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($module) ),*];

            /// Reads the section `key` from a config map when it is a channel's; `Ok(false)` for any other key.
            pub fn read_section<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                match key {
                    $(
                        stringify!($module) => {
                            if self.$module.is_some() {
                                return Err(<A::Error as serde::de::Error>::duplicate_field(stringify!($module)));
                            }
                            self.$module = Some(map.next_value()?);
                            Ok(true)
                        }
                    )*
                    _ => Ok(false),
                }
            }

            /// Refuses a section of a channel this build does not include, naming the feature to build with.
            pub fn check_built(&self) -> Result<(), String> {
                $(
                    #[cfg(not(feature = $feature))]
                    if self.$module.is_some() {
                        return Err(format!(
                            "[{0}] is configured but this build of handoff has no {0} support (rebuild with --features {1})",
                            stringify!($module),
                            $feature
                        ));
                    }
                )*
                Ok(())
            }

            /// Whether the named channel's section is present.
            pub fn configured(&self, name: &str) -> bool {
                match name {
                    $( stringify!($module) => self.$module.is_some(), )*
                    _ => false,
                }
            }

            /// Whether this build includes the named channel (`false` for a name that is no channel).
            pub fn built(name: &str) -> bool {
                match name {
                    $( stringify!($module) => cfg!(feature = $feature), )*
                    _ => false,
                }
            }

            /// The cargo feature that builds the named channel.
            pub fn feature(name: &str) -> Option<&'static str> {
                match name {
                    $( stringify!($module) => Some($feature), )*
                    _ => None,
                }
            }

            /// The channels this build includes that carry `kind`, whether configured or not.
            #[allow(unused_variables, unused_mut)]
            pub fn carrying(kind: $crate::ParcelKind) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    if <$module::$Section as $crate::registration::ChannelSection>::CARRIES.contains(&kind) {
                        out.push(stringify!($module));
                    }
                )*
                out
            }

            /// Builds every configured channel (and, with `embedded`, the embedded default's stand-in for
            /// each absent one), by name. A bad setting is an error naming the section.
            #[allow(unused_variables, unused_mut)]
            pub fn build(
                &self,
                ctx: &$crate::Context,
                embedded: bool,
            ) -> Result<Vec<(&'static str, std::sync::Arc<dyn $crate::Channel>)>, $crate::ChannelError> {
                let mut out: Vec<(&'static str, std::sync::Arc<dyn $crate::Channel>)> = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    match &self.$module {
                        Some(section) => {
                            out.push((stringify!($module), $crate::registration::ChannelSection::build(section, ctx)?))
                        }
                        None if embedded => {
                            if let Some(ch) =
                                <$module::$Section as $crate::registration::ChannelSection>::embedded(ctx)
                            {
                                out.push((stringify!($module), ch));
                            }
                        }
                        None => {}
                    }
                )*
                Ok(out)
            }

            /// The `priority` each configured section sets, by channel name.
            #[allow(unused_mut)]
            pub fn priorities(&self) -> Vec<(&'static str, i32)> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    if let Some(p) = self.$module.as_ref().and_then($crate::registration::ChannelSection::priority) {
                        out.push((stringify!($module), p));
                    }
                )*
                out
            }

            /// The secrets every configured channel loads, for the scanner.
            #[allow(unused_mut)]
            pub fn secrets(&self) -> Vec<$crate::registration::LoadedSecret> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    if let Some(section) = &self.$module {
                        out.extend($crate::registration::ChannelSection::secrets(section));
                    }
                )*
                out
            }

            /// What `init` checks for each configured channel before writing (see
            /// [`ChannelSection::init_probe`](crate::registration::ChannelSection::init_probe)), in
            /// registration order.
            #[allow(unused_variables, unused_mut)]
            pub fn init_probes(&self, home: &std::path::Path) -> Vec<(&'static str, $crate::init::InitProbe)> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    if let Some(probe) = self.$module.as_ref().and_then(|s| $crate::registration::ChannelSection::init_probe(s, home)) {
                        out.push((stringify!($module), probe));
                    }
                )*
                out
            }

            /// Builds the named channel from its section; `None` when it is not configured (or not built).
            #[allow(unused_variables)]
            pub fn build_one(
                &self,
                name: &str,
                ctx: &$crate::Context,
            ) -> Option<Result<std::sync::Arc<dyn $crate::Channel>, $crate::ChannelError>> {
                match name {
                    $(
                        #[cfg(feature = $feature)]
                        stringify!($module) => self.$module.as_ref().map(|s| $crate::registration::ChannelSection::build(s, ctx)),
                    )*
                    _ => None,
                }
            }

            /// The secret-holding files every configured channel reads, for `doctor`.
            #[allow(unused_mut)]
            pub fn secret_files(&self) -> Vec<$crate::registration::SecretFile> {
                let mut out = Vec::new();
                $(
                    #[cfg(feature = $feature)]
                    if let Some(section) = &self.$module {
                        out.extend($crate::registration::ChannelSection::secret_files(section));
                    }
                )*
                out
            }
        }
    };
}
