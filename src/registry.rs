//! Builds the configured channels from the settings: the bus (HTTP or the embedded local store), the
//! embedded default's payload folder, and one entry per configured section of the registration list in
//! `channels/src/lib.rs` (nothing here names an optional channel).

use crate::config::{BusTarget, ConfigError, Settings};
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
    /// The `priority = N` each config section sets, by channel name (replaces the channel's own).
    pub priorities: BTreeMap<String, i32>,
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
        channels.insert(handoff_channels::bus::NAME.into(), Arc::new(BusChannel::new(bus.clone())));
        let embedded = settings.embedded();
        if embedded {
            let local = LocalFiles::new(settings.dirs.data.join("payloads"));
            channels.insert(handoff_channels::local_files::NAME.into(), Arc::new(local));
        }
        for (name, ch) in settings.file.channels.build(&ctx, embedded).map_err(|e| ConfigError(e.message))? {
            channels.insert(name.into(), ch);
        }
        let priorities = settings.file.channels.priorities().into_iter().map(|(n, p)| (n.to_string(), p)).collect();
        Ok(Self { bus, channels, ctx, priorities })
    }

    /// Name → capability, for the router, with the `priority` each config section sets applied.
    pub fn capabilities(&self) -> BTreeMap<String, Capability> {
        let mut caps: BTreeMap<String, Capability> =
            self.channels.iter().map(|(k, v)| (k.clone(), v.capability())).collect();
        for (name, priority) in &self.priorities {
            if let Some(c) = caps.get_mut(name) {
                c.priority = *priority;
            }
        }
        caps
    }

    /// A channel by name, or an error naming the configured ones.
    pub fn get(&self, name: &str) -> anyhow::Result<&Arc<dyn Channel>> {
        self.channels.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.channels.keys().map(String::as_str).collect();
            anyhow::anyhow!("the {name} channel is not configured on this machine (configured: {})", known.join(", "))
        })
    }
}
