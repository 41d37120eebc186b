//! Deliveries (one event × one subscription, the unit that is sent and retried), their
//! attempts, and what happens to a delivery after an attempt.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use std::sync::Arc;

use super::event::OutgoingEvent;
use super::ids::{DeliveryId, EndpointId, EventId, SubscriptionId};

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
    /// Kept while its endpoint is disabled: sent when the endpoint is enabled again, or
    /// replayed by time range.
    Held,
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
            DeliveryStatus::Held => "held",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Every status.
    pub const ALL: [DeliveryStatus; 6] = [
        Self::Pending,
        Self::InFlight,
        Self::Succeeded,
        Self::DeadLettered,
        Self::Cancelled,
        Self::Held,
    ];
}

/// One delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
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
    pub next_attempt_at: OffsetDateTime,
    /// The last error, or why it was dead-lettered or cancelled.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it reached a final state.
    pub finished_at: Option<OffsetDateTime>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Success, Self::Retry, Self::Permanent]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One recorded attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The HTTP status the receiver answered with, for webhooks.
    pub http_status: Option<u16>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The request sent and the start of the answer (secrets masked), when it got that far.
    pub exchange: Option<super::exchange::Exchange>,
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
    /// The event, shared with the event's other deliveries.
    pub event: Arc<OutgoingEvent>,
    /// Set for a delivery kept in its event's row (handed off under a hand-off), not a row of
    /// its own.
    pub routed: Option<super::event::Routed>,
}

/// What became of a leased delivery, to record: an attempt and the state it led to, or, when
/// its endpoint's gate kept it from being sent, only its next state (no attempt is spent).
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The attempt and how it went; `None` when nothing was sent.
    pub attempt: Option<Attempt>,
    /// The delivery's next state.
    pub next: NextState,
    /// Set for a delivery kept in its event's row: what writing it as a row of its own needs.
    pub routed: Option<RoutedResult>,
}

/// What a result of a delivery kept in its event's row needs to write it as a row of its own
/// (when it did not simply succeed).
#[derive(Debug, Clone)]
pub struct RoutedResult {
    /// The hand-off and the event's place in it.
    pub routed: super::event::Routed,
    /// The event.
    pub event_id: EventId,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// When the delivery was created (its event's time).
    pub created_at: OffsetDateTime,
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
    /// Cancelled (the subscription was disabled or removed), with the reason.
    Cancelled(String),
    /// Not sent, and no attempt spent: its endpoint is failing and another delivery is the
    /// probe. Pending, due at this time (which orders it among the waiting; the endpoint's
    /// health decides when it is leased), with the reason.
    Wait(OffsetDateTime, String),
    /// Not sent: held while its endpoint is disabled.
    Held,
}

impl NextState {
    /// A short label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            NextState::Succeeded => "succeeded",
            NextState::RetryAt(_) => "retry",
            NextState::DeadLettered(_) => "dead_lettered",
            NextState::Cancelled(_) => "cancelled",
            NextState::Wait(..) => "wait",
            NextState::Held => "held",
        }
    }
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

/// Which dead letters (or held deliveries) to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Held deliveries (of a disabled endpoint) rather than dead letters.
    pub held: bool,
    /// Only deliveries to this endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// Only deliveries of events with this unique name.
    pub event: Option<String>,
    /// Only events accepted at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only events accepted before this time.
    pub to: Option<OffsetDateTime>,
}
