//! The records the store keeps and hands out.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::destinations::DestinationSettings;
use crate::ids::{DeliveryId, EndpointId, EventId, SubscriptionId};
use crate::subscriptions::{Filter, MessageFormat};

/// An event to store, with the deliveries it fans out to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: EventRecord,
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

/// One stored event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRecord {
    /// Its id.
    pub id: EventId,
    /// The event definition's unique name.
    pub name: String,
    /// The solution that owns the definition.
    pub solution: String,
    /// The request parameters, as validated.
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Correlation id given by the caller, or generated.
    pub correlation_id: String,
    /// The API key name that sent it.
    pub caller: String,
    /// When Herald accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Leased by a dispatcher, being sent.
    InFlight,
    /// Accepted by the destination.
    Succeeded,
    /// Failed permanently or expired; can be replayed.
    DeadLettered,
    /// Its subscription or endpoint was removed or disabled.
    Cancelled,
}

impl DeliveryStatus {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::DeadLettered => "dead_lettered",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "in_flight" => Self::InFlight,
            "succeeded" => Self::Succeeded,
            "dead_lettered" => Self::DeadLettered,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Every status.
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Pending,
        Self::InFlight,
        Self::Succeeded,
        Self::DeadLettered,
        Self::Cancelled,
    ];
}

/// One stored delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryRecord {
    /// Its id (the `webhook-id` / `message-id` receivers see).
    pub id: DeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// The subscription that asked for it.
    pub subscription_id: SubscriptionId,
    /// Where it goes.
    pub endpoint_id: EndpointId,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// The last error, or why it was dead-lettered or cancelled.
    pub last_error: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it reached a final state.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Accepted.
    Success,
    /// Failed; will be tried again.
    Retry,
    /// Failed for good.
    Permanent,
}

impl AttemptOutcome {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Permanent => "permanent",
        }
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: String,
    /// The HTTP status the receiver answered with, for webhooks.
    pub http_status: Option<u16>,
    /// The error, when it failed.
    pub error: Option<String>,
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
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

/// A subscription: an event or a whole category routed to an endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Its unique name.
    pub name: String,
    /// The solution of the event or category.
    pub solution: String,
    /// The event subscribed to (or `None` with a category).
    pub event: Option<String>,
    /// The category subscribed to (or `None` with an event).
    pub category: Option<String>,
    /// Where deliveries go.
    pub endpoint_id: EndpointId,
    /// The message format.
    pub format: MessageFormat,
    /// Conditions on parameter values; all must hold.
    pub filter: Filter,
    /// Whether new events create deliveries.
    pub enabled: bool,
    /// Order among subscriptions of one event (lower first).
    pub rank: i32,
    /// Asynchronous (a delivery) or synchronous (in the request path).
    pub mode: crate::subscriptions::Mode,
    /// The stage of a synchronous step.
    pub stage: Option<crate::subscriptions::Stage>,
    /// How events become AMQP messages (Service Bus and Event Hubs endpoints).
    pub amqp: crate::subscriptions::AmqpOptions,
    /// Why it was disabled by Herald (a receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What to lease.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    /// Who leases (an instance id).
    pub owner: &'a str,
    /// The time now.
    pub now: OffsetDateTime,
    /// Until when.
    pub until: OffsetDateTime,
    /// At most this many.
    pub limit: u32,
    /// At most this many per endpoint.
    pub per_endpoint: u32,
    /// Endpoints that are busy: leave their deliveries.
    pub skip_endpoints: &'a [EndpointId],
}

/// A leased delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the delivery was created (for its time to live).
    pub created_at: OffsetDateTime,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The event.
    pub event: EventRecord,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// HTTP status, for webhooks.
    pub http_status: Option<u16>,
    /// The error text, when it failed.
    pub error: Option<String>,
    /// The delivery's next state.
    pub next: NextState,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextState {
    /// Done.
    Succeeded,
    /// Try again at this time.
    RetryAt(OffsetDateTime),
    /// Dead-lettered, with the reason.
    DeadLettered(String),
    /// Cancelled (the subscription was disabled), with the reason.
    Cancelled(String),
}

/// A query over deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only to this endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// Only of this event.
    pub event_id: Option<EventId>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayFilter {
    /// Only deliveries to this endpoint.
    #[serde(default)]
    pub endpoint_id: Option<EndpointId>,
    /// Only deliveries of events with this unique name.
    #[serde(default)]
    pub event: Option<String>,
    /// Only events accepted at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// Only events accepted before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}
