//! One occurrence of a cataloged event, and what storing it creates.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
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
    /// The event, shared with its deliveries once they are handed to the dispatcher.
    pub event: Arc<OutgoingEvent>,
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
    /// Set when the dispatcher of this instance takes the delivery straight from the commit
    /// (the hand-off): the delivery is stored in flight, leased until then by the lease owner
    /// of the store that writes it, instead of pending.
    pub leased_until: Option<OffsetDateTime>,
}

/// An event on its way out, shared in memory by all of its deliveries: each body that does
/// not depend on the delivery is encoded once, however many subscriptions receive it.
#[derive(Debug)]
pub struct OutgoingEvent {
    /// The event.
    pub event: Event,
    /// Its encoded bodies, filled by the first delivery that needs each.
    pub bodies: Bodies,
}

impl OutgoingEvent {
    /// `event`, with nothing encoded yet.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            bodies: Bodies::default(),
        }
    }
}

/// An outgoing event reads as its event; the bodies are a cache beside it.
impl std::ops::Deref for OutgoingEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// The bodies of one event that are the same for every delivery (the Dataverse context names
/// its delivery, so it is not among them).
#[derive(Debug, Default)]
pub struct Bodies {
    /// The parameters as a JSON object.
    pub params_json: OnceLock<Bytes>,
    /// The structured-mode CloudEvents JSON.
    pub cloudevents_json: OnceLock<Bytes>,
}

impl Bodies {
    /// The body in `slot`, encoding it with `encode` the first time.
    pub fn get(slot: &OnceLock<Bytes>, encode: impl FnOnce() -> Vec<u8>) -> Bytes {
        slot.get_or_init(|| Bytes::from(encode())).clone()
    }
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
