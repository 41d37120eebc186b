//! What the API answers with: views of the model's records, apart from the records
//! themselves so the stored shape and the HTTP contract can change independently. Views never
//! carry secrets.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use crate::destinations::view::{
    AuthView, CredentialView, DestinationView, HeaderView, SecretView,
};
use crate::model::{
    AmqpOptions, Attempt, Delivery, DeliveryId, DeliveryStatus, Endpoint, EndpointId, EndpointKind,
    Event, EventId, Filter, MessageFormat, Mode, Stage, Subscription, SubscriptionId,
};

/// An endpoint as the API shows it: no secret values.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    /// Its id.
    pub id: EndpointId,
    /// Its name.
    pub name: String,
    /// Kind of destination.
    pub kind: EndpointKind,
    /// Where it sends and how, as its kind shows it.
    #[serde(flatten)]
    pub destination: DestinationView,
    /// Deliveries in flight at once.
    pub max_concurrency: Option<u32>,
    /// Deliveries per second, all instances together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::model::RateLimit>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        EndpointView {
            id: e.id,
            name: e.name.clone(),
            kind: e.settings.kind(),
            destination: crate::destinations::kinds::view(&e.settings),
            max_concurrency: e.max_concurrency,
            rate_limit: e.rate_limit,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// The answer to creating an endpoint or adding a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    pub endpoint: EndpointView,
    /// A secret Herald generated: shown this once, never again. Absent when you gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
}

/// A secret to add to an endpoint (rotation).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// `whsec_…`; generated (and shown once) when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A subscription as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    /// Its id.
    pub id: SubscriptionId,
    /// Its unique name.
    pub name: String,
    /// The solution of the event or category.
    pub solution: String,
    /// The event subscribed to (or `null` with a category).
    pub event: Option<String>,
    /// The category subscribed to (or `null` with an event).
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
    /// `async` (a delivery) or `sync` (in the request path).
    pub mode: Mode,
    /// The stage of a synchronous step.
    pub stage: Option<Stage>,
    /// How events become AMQP messages (Service Bus and Event Hubs endpoints).
    pub amqp: AmqpOptions,
    /// The plug-in that reshapes what it sends, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<crate::model::Transform>,
    /// On a table's events: filtering attributes and images.
    #[serde(skip_serializing_if = "crate::model::RowOptions::is_empty")]
    pub row: crate::model::RowOptions,
    /// Why Herald disabled it (a receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            solution: s.solution.clone(),
            event: s.event.clone(),
            category: s.category.clone(),
            endpoint_id: s.endpoint_id,
            format: s.format,
            filter: s.filter.clone(),
            enabled: s.enabled,
            rank: s.rank,
            mode: s.mode,
            stage: s.stage,
            amqp: s.amqp.clone(),
            transform: s.transform.clone(),
            row: s.row.clone(),
            disabled_reason: s.disabled_reason.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
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
    /// Its depth in a chain of events: 1 from an outside caller, one more for each event a
    /// receiver sent while handling a Herald delivery of the one before.
    pub depth: u32,
    /// Each parameter a synchronous step set or removed, in the order the steps ran; the
    /// `params` above are the values after them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<crate::model::ParamChange>,
    /// The shared variables its synchronous steps set.
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub shared_variables: Map<String, Value>,
    /// The response properties its synchronous steps set, as the caller got them.
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub response: Map<String, Value>,
    /// For a row change: the row before (`pre`) and after (`post`), and the attributes it
    /// changed (absent when the source cannot tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub images: Option<crate::model::RowImages>,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id,
            name: e.name.to_string(),
            solution: e.solution.clone(),
            params: e.params.clone(),
            correlation_id: e.correlation_id.clone(),
            caller: e.caller.clone(),
            received_at: e.received_at,
            depth: e.depth,
            changes: e.pipeline.changes.clone(),
            shared_variables: e.pipeline.shared_variables.clone(),
            response: e.pipeline.response.clone(),
            images: e.images.clone(),
        }
    }
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
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

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            subscription_id: d.subscription_id,
            endpoint_id: d.endpoint_id,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub duration_ms: u64,
    /// `success`, `retry` or `permanent`.
    pub outcome: String,
    /// The HTTP status the receiver answered with, for webhooks.
    pub http_status: Option<u16>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// What was sent (secrets and signatures masked), when the destination was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestView>,
    /// The start of the answer: the status line and up to 1 KiB of the body (webhooks), or
    /// the broker's outcome (Service Bus, Event Hubs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// The request of an attempt, as sent, with secrets and signatures masked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestView {
    /// `POST <url>` (query values masked) for webhooks; the queue, topic or hub otherwise.
    pub target: String,
    /// Headers (webhooks) or message properties (AMQP), in the order sent.
    pub headers: Vec<SentHeader>,
    /// The start of the body (up to 4 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One header or message property as sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SentHeader {
    /// Its name.
    pub name: String,
    /// Its value (`••••••` when secret).
    pub value: String,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            outcome: a.outcome.as_str().to_owned(),
            http_status: a.http_status,
            error: a.error.clone(),
            request: a.exchange.as_ref().map(|x| RequestView {
                target: x.target.clone(),
                headers: x
                    .headers
                    .iter()
                    .map(|(name, value)| SentHeader {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                body: x.body.clone(),
            }),
            response: a.exchange.as_ref().and_then(|x| x.response.clone()),
        }
    }
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
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
    pub attempt_count: u32,
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
    /// Every attempt, first first.
    pub attempts: Vec<AttemptView>,
}

impl DeliveryDetail {
    /// The view of `d` with its `attempts`.
    pub fn new(d: &Delivery, attempts: &[Attempt]) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            subscription_id: d.subscription_id,
            endpoint_id: d.endpoint_id,
            status: d.status,
            attempt_count: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            finished_at: d.finished_at,
            attempts: attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

/// An event with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    /// The event.
    #[serde(flatten)]
    pub event: EventView,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryView>,
}
