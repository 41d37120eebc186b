//! Endpoints: where deliveries go, with their settings (secrets included; views leave them out).

pub mod azure;
pub mod plugin;
pub mod webhook;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::EndpointId;
pub use azure::{AzureCredential, AzureSettings, SecretString};
pub use plugin::PluginSettings;
pub use webhook::{
    CustomHeader, PublicKey, Scheme, Secret, SecretError, SigningSecret, Validation, WebhookAuth,
    WebhookSettings,
};

/// The kinds of endpoint, one vocabulary for the API, the store and the destinations.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// An HTTP receiver, signed per Standard Webhooks.
    #[default]
    Webhook,
    /// An Azure Service Bus queue or topic, over AMQP 1.0.
    ServiceBus,
    /// An Azure event hub, over AMQP 1.0.
    EventHubs,
    /// A plug-in run in Herald's sandbox.
    Plugin,
}

impl EndpointKind {
    /// The stored text form (the `kind` column and the settings' tag).
    pub fn as_str(&self) -> &'static str {
        match self {
            EndpointKind::Webhook => "webhook",
            EndpointKind::ServiceBus => "service_bus",
            EndpointKind::EventHubs => "event_hubs",
            EndpointKind::Plugin => "plugin",
        }
    }

    /// What people call it, in messages.
    pub fn display_name(&self) -> &'static str {
        match self {
            EndpointKind::Webhook => "webhook",
            EndpointKind::ServiceBus => "Service Bus",
            EndpointKind::EventHubs => "Event Hubs",
            EndpointKind::Plugin => "plug-in",
        }
    }
}

/// Where and how an endpoint sends, secrets included. Stored as JSON tagged with the kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DestinationSettings {
    /// An HTTPS (or HTTP) receiver, signed per Standard Webhooks.
    Webhook(WebhookSettings),
    /// An Azure Service Bus queue or topic.
    ServiceBus(AzureSettings),
    /// An Azure event hub.
    EventHubs(AzureSettings),
    /// A plug-in run in Herald's sandbox.
    Plugin(PluginSettings),
}

impl DestinationSettings {
    /// The kind.
    pub fn kind(&self) -> EndpointKind {
        match self {
            DestinationSettings::Webhook(_) => EndpointKind::Webhook,
            DestinationSettings::ServiceBus(_) => EndpointKind::ServiceBus,
            DestinationSettings::EventHubs(_) => EndpointKind::EventHubs,
            DestinationSettings::Plugin(_) => EndpointKind::Plugin,
        }
    }
}

/// An endpoint: a destination with its settings.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Its unique name.
    pub name: String,
    /// Where and how to send (secrets included).
    pub settings: DestinationSettings,
    /// Deliveries in flight at once to it; the configured default when `None`.
    pub max_concurrency: Option<u32>,
    /// Deliveries per second to it, all instances together; none when `None`.
    pub rate_limit: Option<RateLimit>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
    /// The solutions of the key that made it (none: made by configuration or by a key of
    /// every solution). With the solutions of the subscriptions that deliver to it, they say
    /// which keys see it and which may change it ([`crate::model::Scope`]).
    pub owners: Vec<String>,
}

/// A rate limit: deliveries per second, with a burst of sends allowed at once after a lull.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Deliveries per second (0.001 to 100000; 0.5 is one every two seconds).
    #[schema(minimum = 0.001, maximum = 100000.0)]
    pub per_second: f64,
    /// Sends allowed at once after a lull (default 1: evenly spaced).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 10000)]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    /// The time between two sends, in microseconds.
    pub fn interval_us(&self) -> i64 {
        (1_000_000.0 / self.per_second).round().max(1.0) as i64
    }

    /// How far ahead of its even spacing a send may go (the burst), in microseconds.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us() * i64::from(self.burst.max(1) - 1)
    }
}
