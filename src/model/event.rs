//! One occurrence of a cataloged event, and what storing it creates.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ids::{DeliveryId, EndpointId, EventId, SubscriptionId};

/// One accepted event: validated parameters and who sent it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// The event definition's unique name.
    pub name: String,
    /// The solution that owns the definition.
    pub solution: String,
    /// The request parameters, as validated.
    pub params: Map<String, Value>,
    /// Correlation id given by the caller, or generated.
    pub correlation_id: String,
    /// The API key name that sent it.
    pub caller: String,
    /// When Herald accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// An event to store, with the deliveries it fans out to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: Event,
    /// The idempotency key and the request fingerprint it was sent with.
    pub idempotency: Option<(String, [u8; 32])>,
    /// One delivery per matching subscription.
    pub deliveries: Vec<NewDelivery>,
}

/// A delivery to create with an event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// The subscription that asked for it.
    pub subscription_id: SubscriptionId,
    /// Where it goes.
    pub endpoint_id: EndpointId,
}

/// What storing one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now.
    Created {
        /// The event id.
        id: EventId,
        /// Deliveries created.
        deliveries: u32,
    },
    /// The idempotency key was seen before with the same request: the first answer.
    Replayed {
        /// The first event's id.
        id: EventId,
        /// Its deliveries.
        deliveries: u32,
    },
    /// The idempotency key was seen before with a different request.
    KeyReused {
        /// The first event's id.
        id: EventId,
    },
}
