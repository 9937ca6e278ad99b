//! Builds the configured channels from the settings: the bus (HTTP or the embedded local store) plus one
//! entry per configured section. Adding a channel = its module in `channels/` + one arm here.

use crate::config::{BusTarget, Settings};
use handoff_channels::bus::http::{HttpBus, HttpBusConfig};
use handoff_channels::bus::local::LocalBus;
use handoff_channels::bus::{BusApi, BusChannel};
use handoff_channels::local_files::LocalFiles;
use handoff_channels::{Capability, Channel, Context};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The channels this run may use.
pub struct Registry {
    /// The bus client (always present).
    pub bus: Arc<dyn BusApi>,
    /// Every channel by name, the bus included.
    pub channels: BTreeMap<String, Arc<dyn Channel>>,
    /// Context handed to the channels.
    pub ctx: Context,
}

impl Registry {
    /// Builds the channels. Construction must not touch the network: channels connect lazily.
    pub fn build(settings: &Settings, ctx: Context) -> anyhow::Result<Self> {
        let bus: Arc<dyn BusApi> = match &settings.bus {
            BusTarget::Http { url, user, password, timeout, connect_timeout } => {
                Arc::new(HttpBus::new(HttpBusConfig {
                    url: url.clone(),
                    user: user.clone(),
                    password: password.clone(),
                    timeout: *timeout,
                    connect_timeout: *connect_timeout,
                    attempts: 3,
                })?)
            }
            BusTarget::Local { path } => Arc::new(LocalBus::open(path.clone())?),
        };
        let mut channels: BTreeMap<String, Arc<dyn Channel>> = BTreeMap::new();
        channels.insert("bus".into(), Arc::new(BusChannel::new(bus.clone())));
        if settings.embedded() {
            channels.insert("local".into(), Arc::new(LocalFiles::new(settings.dirs.data.join("payloads"))));
        }
        add_configured(settings, &ctx, &mut channels)?;
        Ok(Self { bus, channels, ctx })
    }

    /// Name → capability, for the router.
    pub fn capabilities(&self) -> BTreeMap<String, Capability> {
        self.channels.iter().map(|(k, v)| (k.clone(), v.capability())).collect()
    }

    /// A channel by name, or an error naming the configured ones.
    pub fn get(&self, name: &str) -> anyhow::Result<&Arc<dyn Channel>> {
        self.channels.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.channels.keys().map(String::as_str).collect();
            anyhow::anyhow!("the {name} channel is not configured on this machine (configured: {})", known.join(", "))
        })
    }
}

/// One arm per optional channel: construct it from its config section when present.
#[allow(unused_variables)]
fn add_configured(
    settings: &Settings,
    ctx: &Context,
    channels: &mut BTreeMap<String, Arc<dyn Channel>>,
) -> anyhow::Result<()> {
    // Each channel module adds its arm here when it lands (git, drive, droplet, sms).
    #[cfg(feature = "git")]
    {
        use handoff_channels::git::GitChannel;
        match &settings.file.git {
            Some(cfg) => {
                let ch = GitChannel::new(cfg, ctx).map_err(|e| crate::config::ConfigError(e.message))?;
                channels.insert("git".into(), Arc::new(ch));
            }
            // SPEC §4: with nothing configured, a local git repo under the data dir serves documents.
            None if settings.embedded() => {
                channels.insert("git".into(), Arc::new(GitChannel::embedded(ctx)));
            }
            None => {}
        }
    }
    #[cfg(feature = "drive")]
    if let Some(cfg) = &settings.file.drive {
        use handoff_channels::drive::DriveChannel;
        channels.insert("drive".into(), Arc::new(DriveChannel::new(cfg.clone(), ctx.clone())));
    }
    #[cfg(feature = "droplet")]
    if let Some(cfg) = &settings.file.droplet {
        use handoff_channels::droplet::DropletChannel;
        let ch = DropletChannel::new(cfg, ctx.clone()).map_err(|e| crate::config::ConfigError(e.message))?;
        channels.insert("droplet".into(), Arc::new(ch));
    }
    #[cfg(feature = "sms")]
    if let Some(cfg) = &settings.file.sms {
        use handoff_channels::sms::SmsChannel;
        let ch = SmsChannel::from_config(cfg, ctx).map_err(|e| crate::config::ConfigError(e.message))?;
        channels.insert("sms".into(), Arc::new(ch));
    }
    let bad = |e: handoff_channels::ChannelError| crate::config::ConfigError(e.message);
    #[cfg(feature = "email")]
    if let Some(cfg) = &settings.file.email {
        let ch = handoff_channels::email::EmailChannel::from_config(cfg, ctx).map_err(bad)?;
        channels.insert("email".into(), Arc::new(ch));
    }
    #[cfg(feature = "slack")]
    if let Some(cfg) = &settings.file.slack {
        let ch = handoff_channels::slack::SlackChannel::from_config(cfg, ctx).map_err(bad)?;
        channels.insert("slack".into(), Arc::new(ch));
    }
    #[cfg(feature = "discord")]
    if let Some(cfg) = &settings.file.discord {
        let ch = handoff_channels::discord::DiscordChannel::from_config(cfg, ctx).map_err(bad)?;
        channels.insert("discord".into(), Arc::new(ch));
    }
    #[cfg(feature = "imessage")]
    if let Some(cfg) = &settings.file.imessage {
        let ch = handoff_channels::imessage::ImessageChannel::from_config(cfg, ctx).map_err(bad)?;
        channels.insert("imessage".into(), Arc::new(ch));
    }
    #[cfg(feature = "folder")]
    if let Some(cfg) = &settings.file.folder {
        let ch = handoff_channels::folder::FolderChannel::from_config(cfg).map_err(bad)?;
        channels.insert("folder".into(), Arc::new(ch));
    }
    let _ = bad;
    Ok(())
}
