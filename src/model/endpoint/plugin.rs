//! A plug-in registration: the endpoint whose deliveries (and synchronous steps) run a
//! plug-in in Herald's sandbox, with the configuration Dataverse steps have.

use serde::{Deserialize, Serialize};

use super::azure::SecretString;

/// Which plug-in a registration runs, how it is configured, and where it may reach.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// The plug-in's name.
    pub plugin: String,
    /// The version it is pinned to; `None` follows the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The unsecure configuration: given to the plug-in, shown in the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The secure configuration: given to the plug-in, sealed at rest, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_config: Option<SecretString>,
    /// Hosts the plug-in may call over HTTP (`api.example.com`, `*.example.com`); none by
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}
