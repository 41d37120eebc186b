//! `/v1/events`: send one event, send a batch, and read one event with its deliveries.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path::PathId;
use super::trace::RequestSpan;
use super::views::{DeliveryView, EventDetail, EventView};
use super::{read_json, Admin, AdminRefusals, ApiError, AppState, Caller, ErrorBody};
use crate::ingest::{depth_after, IngestError, Submission};
use crate::model::EventId;

/// Events in one batch request, at most.
pub const MAX_BATCH: usize = 1000;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_one))
        .routes(routes!(send_batch))
        .routes(routes!(get_one))
}

/// The answer to an accepted event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The event's id.
    pub id: EventId,
    /// How many deliveries it fans out to.
    pub deliveries: u32,
    /// The response properties its synchronous steps set (only for an event that declares
    /// response properties, which is answered `200`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response: Option<Map<String, Value>>,
}

/// The header a receiver sends back with an event it raises while handling a Herald
/// delivery: that delivery's `herald-depth`.
pub const DEPTH_HEADER: &str = "herald-depth";

/// A header's value; one that is not text is kept (lossily) so it is refused, not ignored.
pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Sends one event: validated, stored durably, then delivered asynchronously.
#[utoipa::path(post, path = "/v1/events/{event}", tag = "events", operation_id = "send_event",
    params(
        ("event" = String, Path, description = "The cataloged event's unique name"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$",
            description = "1 to 255 visible ASCII characters; the same key with the same body returns the first answer"),
        ("X-Correlation-Id" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$",
            description = "1 to 255 visible ASCII characters; carried to subscribers (`x-correlation-id`, AMQP `correlation-id`)"),
        ("herald-depth" = Option<u32>, Header, minimum = 1, maximum = 1000,
            description = "Sent back by a receiver raising an event while it handles a Herald delivery: that delivery's `herald-depth`. The event runs one deeper; past `pipeline.max_depth` it is refused"),
    ),
    request_body(content = Object, description = "The event's request parameters: a JSON object valid against the event's JSON Schema (`GET /v1/catalog/events/{event}/schema`)", content_type = "application/json"),
    responses(
        (status = 200, body = Accepted, description = "Stored, for an event with response properties: `response` holds what its synchronous steps set"),
        (status = 202, body = Accepted, description = "Stored; deliveries will follow", links(
            ("GetEvent" = (operation_id = "get_event", parameters(("event" = "$response.body#/id")))),
            ("ListDeliveries" = (operation_id = "list_deliveries", parameters(("event_id" = "$response.body#/id")))),
        )),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "Only Herald sends its operational events"),
        (status = 404, body = ErrorBody, description = "No such cataloged event (of a solution the API key uses)"), (status = 409, body = ErrorBody, description = "Idempotency key reused with another body"),
        (status = 502, body = ErrorBody, description = "A synchronous step could not be called, or no step set a required response property"),
        (status = 503, body = ErrorBody, description = "The store cannot take writes now; try again after Retry-After"),
    ))]
async fn send_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    span: RequestSpan,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Unknown events are 404 before the body is even read.
    if !state
        .catalog
        .cataloged(&name)
        .is_some_and(|d| caller.may_use(&d.solution))
    {
        return Err(IngestError::UnknownEvent(name).into());
    }
    let params: Value = read_json(&headers, body, state.max_body_bytes).await?;
    let submission = Submission {
        name,
        params,
        idempotency_key: header(&headers, "idempotency-key"),
        correlation_id: header(&headers, "x-correlation-id"),
        depth: depth_after(DEPTH_HEADER, header(&headers, DEPTH_HEADER).as_deref())?,
        traceparent: span.traceparent(),
        images: None,
    };
    let accepted = state.ingestor.submit(&caller, submission, &span.0).await?;
    span.0.set("herald.event.id", accepted.id.to_string());
    let status = if accepted.response.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let replayed = accepted.replayed;
    let mut r = (status, Json(Accepted::from(accepted))).into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

impl From<crate::ingest::Accepted> for Accepted {
    fn from(a: crate::ingest::Accepted) -> Self {
        Accepted {
            id: a.id,
            deliveries: a.deliveries,
            response: a.response,
        }
    }
}

/// One event of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The cataloged event's unique name.
    pub event: String,
    /// Its parameters: a JSON object valid against the event's JSON Schema.
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// Idempotency key for this item.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Correlation id for this item: 1 to 255 visible ASCII characters (checked per item,
    /// like every field of an item: a bad one is that item's `400`).
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1 to 1,000 events.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<BatchItem>,
}

/// What happened to one item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Position in the request.
    pub index: usize,
    /// The status this item would have had alone (200 or 202 stored, 400, 403, 404, 409, 502).
    pub status: u16,
    /// The event id, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// Deliveries, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<u32>,
    /// The response properties, for an accepted event that declares them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response: Option<Map<String, Value>>,
    /// The error, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// Sends up to 1,000 events; valid ones are stored in one transaction, and the answer says
/// per item what happened.
#[utoipa::path(post, path = "/v1/events:batch", tag = "events", operation_id = "send_events",
    params(("herald-depth" = Option<u32>, Header, minimum = 1, maximum = 1000,
        description = "As for one event: the depth of the Herald delivery being handled, for every event of the batch")),
    request_body = Batch,
    responses(
        (status = 200, body = Vec<BatchResult>, description = "Per item: 202 stored, or the item's error"),
        (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "The store cannot take writes now; try again after Retry-After"),
    ))]
async fn send_batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    span: RequestSpan,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<BatchResult>>, ApiError> {
    // A batch may be as large as its items allow, up to 1,000 bodies of the single limit.
    let limit = state.max_body_bytes.saturating_mul(16);
    let batch: Batch = read_json(&headers, body, limit).await?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::field(
            "events",
            format!(
                "must hold 1 to {MAX_BATCH} events, not {}",
                batch.events.len()
            ),
        ));
    }
    let depth = depth_after(DEPTH_HEADER, header(&headers, DEPTH_HEADER).as_deref())?;
    // Every event of the batch carries the request's context: written once.
    let traceparent = span.traceparent();
    let submissions = batch
        .events
        .into_iter()
        .map(|item| Submission {
            name: item.event,
            params: Value::Object(item.params),
            idempotency_key: item.idempotency_key,
            correlation_id: item.correlation_id,
            depth,
            traceparent: traceparent.clone(),
            images: None,
        })
        .collect();
    let results = state
        .ingestor
        .submit_all(&caller, submissions, &span.0)
        .await?;
    Ok(Json(
        results
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok(a) => BatchResult {
                    index,
                    status: if a.response.is_some() { 200 } else { 202 },
                    id: Some(a.id),
                    deliveries: Some(a.deliveries),
                    response: a.response,
                    error: None,
                },
                Err(e) => item_error(index, e.into()),
            })
            .collect(),
    ))
}

fn item_error(index: usize, e: ApiError) -> BatchResult {
    let (status, detail) = e.parts();
    let error = serde_json::to_value(detail).ok();
    BatchResult {
        index,
        status: status.as_u16(),
        id: None,
        deliveries: None,
        response: None,
        error,
    }
}

/// An event with its deliveries.
#[utoipa::path(get, path = "/v1/events/{event}", tag = "events", operation_id = "get_event", params(("event" = EventId, Path, description = "The event id (evt_…)")),
    responses((status = 200, body = EventDetail), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody, description = "Removed by the retention policy"), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(event_id, _): PathId<EventId>,
) -> Result<Json<EventDetail>, ApiError> {
    let Some((event, deliveries)) = state
        .store
        .records()
        .event(&caller.scope(), event_id)
        .await?
    else {
        let horizons = state.store.records().retention_state().await?.horizons;
        return Err(ApiError::missing(
            "event",
            &event_id.to_string(),
            event_id.unix_millis(),
            horizons.events,
        ));
    };
    Ok(Json(EventDetail {
        event: EventView::from(&event),
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
    }))
}
