//! Destinations: where deliveries go. A destination sends one message and classifies the
//! outcome; the dispatcher alone decides what happens next (retry, dead letter, disable).

pub mod azure;
mod error;
pub mod kind;
pub mod kinds;
pub mod network;
pub mod plugin;
pub mod view;
pub mod webhook;

pub use error::{error_chain, SendError};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::formats::row;
use crate::model::definition::schema_url;
use crate::model::{
    AmqpOptions, Bodies, DeliveryId, Endpoint, EndpointId, EventDefinition, Exchange,
    MessageFormat, OutgoingEvent, RowOptions, Stage, Subscription, SubscriptionId,
};

/// One message to send: a delivery of an event.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    /// The delivery's id, stable across retries.
    pub delivery_id: DeliveryId,
    /// The subscription it belongs to.
    pub subscription_id: SubscriptionId,
    /// The format to write.
    pub format: MessageFormat,
    /// The event, with the bodies encoded for its other deliveries.
    pub event: &'a OutgoingEvent,
    /// URL of the event's JSON Schema (CloudEvents `dataschema`).
    pub schema_url: String,
    /// The event's definition (types of its parameters, binding), if it is still cataloged.
    pub definition: Option<&'a crate::model::EventDefinition>,
    /// The organization name Dataverse-format messages carry.
    pub organization: &'a str,
    /// The subscription's AMQP options (Service Bus, Event Hubs).
    pub amqp: &'a AmqpOptions,
    /// Set when this is a synchronous step's call, not a delivery: the step's stage.
    pub stage: Option<Stage>,
    /// The W3C trace context receivers continue (`traceparent`; `Diagnostic-Id` on AMQP):
    /// the attempt's span when Herald traces, else the event's own context.
    pub traceparent: Option<String>,
    /// What the subscription's transformation changed, if it has one.
    pub reshaped: Option<Arc<Reshaped>>,
    /// The subscription's filtering attributes and images, for a row change.
    pub row: &'a RowOptions,
}

/// What a subscription's transformation changed of a delivery's message; the destination
/// builds its message as usual, then applies this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reshaped {
    /// The body, replacing the one of the subscription's format.
    pub body: Option<bytes::Bytes>,
    /// Its media type (with `body`).
    pub content_type: Option<String>,
    /// Webhooks: headers added to the request (never Herald's own or the signature's).
    pub headers: Vec<(String, String)>,
    /// Service Bus and Event Hubs: application properties added to the message.
    pub properties: Vec<(String, serde_json::Value)>,
    /// Service Bus and Event Hubs: the message's subject.
    pub subject: Option<String>,
    /// Event Hubs: the partition key.
    pub partition_key: Option<String>,
}

/// What every outbound message says about where it comes from. The one place an
/// [`Outbound`] is built, for deliveries and synchronous steps alike.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Base URL of the API, for `dataschema` links.
    pub public_url: String,
    /// The organization name Dataverse-format messages carry.
    pub organization: String,
}

impl Origin {
    /// The message of `event` for `subscription`, under `delivery_id`; `definition` is the
    /// event's catalog entry, if it is still cataloged.
    pub fn outbound<'a>(
        &'a self,
        delivery_id: DeliveryId,
        subscription: &'a Subscription,
        event: &'a OutgoingEvent,
        definition: Option<&'a EventDefinition>,
    ) -> Outbound<'a> {
        Outbound {
            delivery_id,
            subscription_id: subscription.id,
            format: subscription.format,
            event,
            schema_url: schema_url(&self.public_url, &event.name),
            definition,
            organization: &self.organization,
            amqp: &subscription.amqp,
            stage: None,
            traceparent: event.event.traceparent.clone(),
            reshaped: None,
            row: &subscription.row,
        }
    }
}

impl Outbound<'_> {
    /// The event's parameters as a JSON object (a row change's target and images), encoded
    /// once per event unless the subscription's images make it its own.
    pub fn params_json(&self) -> bytes::Bytes {
        let encode = || {
            match row::data(self.event, self.row) {
                Some(data) => serde_json::to_vec(&data),
                None => serde_json::to_vec(&self.event.params),
            }
            .expect("JSON values always serialize")
        };
        if row::shared(self.event, self.row) {
            Bodies::get(&self.event.bodies.params_json, encode)
        } else {
            encode().into()
        }
    }

    /// The event's structured-mode CloudEvents JSON, encoded once per event unless the
    /// subscription's images make it its own.
    pub fn cloudevents_json(&self) -> bytes::Bytes {
        let encode = || {
            let data = row::data(self.event, self.row)
                .unwrap_or_else(|| serde_json::Value::Object(self.event.params.clone()));
            crate::formats::cloudevents::structured_json(self.event, &self.schema_url, &data)
        };
        if row::shared(self.event, self.row) {
            Bodies::get(&self.event.bodies.cloudevents_json, encode)
        } else {
            encode().into()
        }
    }
}

/// How one send ended, as the destination sees it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The destination accepted the message.
    Delivered {
        /// HTTP status, for webhooks.
        status: Option<u16>,
    },
    /// A failure that may pass: try again later (no sooner than `retry_after` if given).
    Retry {
        /// What went wrong.
        error: SendError,
        /// HTTP status, for webhooks.
        status: Option<u16>,
        /// The destination's own wish for the delay.
        retry_after: Option<Duration>,
    },
    /// A failure that will not pass by retrying.
    Permanent {
        /// What went wrong.
        error: SendError,
        /// HTTP status, for webhooks.
        status: Option<u16>,
    },
    /// The receiver is gone for good (410): disable the subscription.
    Gone {
        /// HTTP status.
        status: Option<u16>,
    },
}

/// A destination.
#[async_trait]
pub trait Destination: Send + Sync {
    /// Sends one message and says how it went, noting in `exchange` what went over the wire
    /// (secrets masked) and the start of the answer. Never panics; every failure is an outcome.
    async fn send(&self, message: &Outbound<'_>, exchange: &mut Exchange) -> Outcome;
}

/// Builds destinations from endpoint settings and keeps them (and their connections) while
/// the endpoint does not change.
pub struct Destinations {
    webhooks: webhook::WebhookClient,
    pub(crate) service_bus: azure::servicebus::ServiceBusClient,
    plugins: std::sync::OnceLock<plugin::PluginRuntime>,
    cache: Mutex<HashMap<EndpointId, Versioned>>,
}

/// A destination with the endpoint version (`updated_at`) it was built from.
type Versioned = (time::OffsetDateTime, Arc<dyn Destination>);

impl Destinations {
    /// Destinations sending webhooks through `webhooks`.
    pub fn new(webhooks: webhook::WebhookClient) -> Self {
        Self {
            webhooks,
            service_bus: Default::default(),
            plugins: std::sync::OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Enables plug-ins (once, at start: emitting needs ingestion, which is built after).
    pub fn enable_plugins(&self, runtime: plugin::PluginRuntime) {
        if self.plugins.set(runtime).is_err() {
            tracing::warn!("plug-ins were enabled twice; the first runtime stays");
        }
    }

    /// The plug-in runtime, when plug-ins are enabled.
    pub fn plugins(&self) -> Option<plugin::PluginRuntime> {
        self.plugins.get().cloned()
    }

    /// The webhook client (for the CloudEvents handshake).
    pub fn webhooks(&self) -> &webhook::WebhookClient {
        &self.webhooks
    }

    /// The destination of `endpoint`, built once per version of its settings.
    pub fn get(&self, endpoint: &Endpoint) -> Arc<dyn Destination> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, d)) = cache.get(&endpoint.id) {
            if *version == endpoint.updated_at {
                return d.clone();
            }
        }
        let built = kinds::sender(&endpoint.settings, self);
        let destination = built.unwrap_or_else(|error| {
            tracing::error!(endpoint = %endpoint.name, error = %error_chain(&*error), "the endpoint cannot be used");
            Arc::new(Unusable(Arc::from(error)))
        });
        cache.insert(endpoint.id, (endpoint.updated_at, destination.clone()));
        destination
    }
}

/// An endpoint whose settings cannot be used on this host (say, an identity it does not
/// have): every delivery fails permanently with the reason.
struct Unusable(Arc<dyn std::error::Error + Send + Sync>);

#[async_trait]
impl Destination for Unusable {
    async fn send(&self, _: &Outbound<'_>, _: &mut Exchange) -> Outcome {
        Outcome::Permanent {
            error: SendError::Unusable(self.0.clone()),
            status: None,
        }
    }
}
