//! The plug-in kind: a registration that runs a plug-in from the store in Herald's sandbox,
//! as an asynchronous plug-in (its deliveries) or a synchronous step. Its input, the checks
//! that make its settings (the secure configuration is write-only, kept when an update leaves
//! it out), its view and its sender.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use super::super::kind::{Checks, InputError, Kind, Made, Unbuildable};
use super::super::view::{DestinationView, PluginView};
use super::super::{Destination, Destinations};
use super::PluginDestination;
use crate::model::{PluginSettings, SecretString};
use crate::plugins::check_allowed_host;

/// The plug-in kind.
pub struct Plugin;

/// The longest configuration string, secure or not.
const CONFIG_MAX: usize = 16 * 1024;

/// Hosts one registration may list.
const HOSTS_MAX: usize = 32;

/// A plug-in registration's fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInput {
    /// The plug-in's name, as pushed.
    #[schema(min_length = 1, max_length = 100)]
    pub plugin: String,
    /// A version to pin (rolling back is pinning); absent follows the latest.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// The unsecure configuration, given to the plug-in and shown in the API.
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub config: Option<String>,
    /// The secure configuration, given to the plug-in, sealed at rest and never shown.
    /// Write-only; kept when absent on update.
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub secure_config: Option<String>,
    /// Hosts the plug-in may call over HTTP (`api.example.com`, `*.example.com`, or an IP
    /// address); nothing else is reachable, and private networks only where the network
    /// policy allows them.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Whether `name` can name a plug-in: 1 to 100 letters, digits, `_`, `-` and `.`.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("must be 1 to 100 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("may hold only letters, digits, `_`, `-` and `.`".into());
    }
    Ok(())
}

impl Kind for Plugin {
    type Input = PluginInput;
    type Settings = PluginSettings;

    async fn settings(
        input: &PluginInput,
        old: Option<&PluginSettings>,
        _checks: Checks<'_>,
    ) -> Result<Made<PluginSettings>, InputError> {
        check_plugin_name(&input.plugin).map_err(|m| InputError::new("plugin", m))?;
        if input.version == Some(0) {
            return Err(InputError::new("version", "versions start at 1"));
        }
        for (field, value) in [
            ("config", &input.config),
            ("secure_config", &input.secure_config),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > CONFIG_MAX) {
                return Err(InputError::new(
                    field,
                    format!("at most {CONFIG_MAX} bytes"),
                ));
            }
        }
        if input.allowed_hosts.len() > HOSTS_MAX {
            return Err(InputError::new(
                "allowed_hosts",
                format!("at most {HOSTS_MAX} hosts"),
            ));
        }
        for (i, host) in input.allowed_hosts.iter().enumerate() {
            check_allowed_host(host)
                .map_err(|m| InputError::new(format!("allowed_hosts[{i}]"), m))?;
        }
        // The secure configuration is kept only for the same plug-in: it was written for it.
        let secure_config = match &input.secure_config {
            Some(s) => Some(SecretString::new(s.clone())),
            None => old
                .filter(|o| o.plugin == input.plugin)
                .and_then(|o| o.secure_config.clone()),
        };
        Ok(Made {
            settings: PluginSettings {
                plugin: input.plugin.clone(),
                version: input.version,
                config: input.config.clone(),
                secure_config,
                allowed_hosts: input.allowed_hosts.clone(),
            },
            generated: None,
        })
    }

    fn view(settings: &PluginSettings) -> DestinationView {
        DestinationView {
            plugin: Some(PluginView {
                name: settings.plugin.clone(),
                version: settings.version,
                config: settings.config.clone(),
                secure_config: settings.secure_config.is_some(),
                allowed_hosts: settings.allowed_hosts.clone(),
            }),
            ..DestinationView::default()
        }
    }

    fn sender(
        settings: &PluginSettings,
        destinations: &Destinations,
    ) -> Result<Arc<dyn Destination>, Unbuildable> {
        let runtime = destinations
            .plugins()
            .ok_or("plug-ins are not enabled on this instance")?;
        Ok(Arc::new(PluginDestination {
            settings: settings.clone(),
            runtime,
        }))
    }
}
