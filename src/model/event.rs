//! One occurrence of a cataloged event, and what storing it creates.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ids::{DeliveryId, EndpointId, EventId, SubscriptionId};
use super::name::EventName;
use super::subscription::Stage;
use super::table::RowImages;

/// One accepted event: validated parameters and who sent it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// The event definition's unique name.
    pub name: EventName,
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
    /// 1 for an event from an outside caller; the depth of its cause + 1 for an event sent
    /// by a receiver while it handled a Herald delivery (Dataverse's `Depth`).
    pub depth: u32,
    /// What its synchronous steps did.
    pub pipeline: Pipeline,
    /// The W3C trace context of the request that sent it (its span when Herald traces; the
    /// caller's `traceparent` otherwise): every attempt of its deliveries continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// For an event of a table: the row before and after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<RowImages>,
}

/// The largest depth a caller may say it is handling: no chain of events is that deep (the
/// configured maximum is at most this), so a larger number is a mistake, not a depth.
pub const DEPTH_CAP: u32 = 1000;

/// What the synchronous steps did to one event; empty for an event without steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Each parameter a step set or removed, in the order the steps ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ParamChange>,
    /// The shared variables the steps set (Dataverse's `SharedVariables`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub shared_variables: Map<String, Value>,
    /// The response properties the steps set, as the caller got them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub response: Map<String, Value>,
}

impl Pipeline {
    /// Whether no step changed or set anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.shared_variables.is_empty() && self.response.is_empty()
    }
}

/// One parameter a synchronous step set or removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamChange {
    /// The step (its subscription's name).
    pub step: String,
    /// The stage it ran at.
    pub stage: Stage,
    /// The parameter.
    pub parameter: String,
    /// Its value before, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub from: Option<Value>,
    /// Its value after; absent when the step removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub to: Option<Value>,
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
    /// Set when some of its deliveries are handed off to this instance's dispatcher under a
    /// hand-off ([`Routed`]): those are kept in the event's row, not written as rows of their
    /// own. `None`: the handed-off deliveries are stored as in-flight rows.
    pub handoff: Option<Routed>,
}

/// Where an event's handed-off deliveries belong: a hand-off (one run of one instance's
/// dispatcher) and the event's place in its order. Every handed-off delivery of an event whose
/// place is at most the hand-off's settled mark succeeded or became a row of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// The hand-off.
    pub handoff: i64,
    /// The event's place in the hand-off's order.
    pub seq: i64,
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
