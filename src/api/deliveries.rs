//! `/v1/deliveries` and `/v1/dead-letters`: what happened to each delivery, manual retry,
//! and replay of dead letters; `/v1/events/{id}` (GET) shows an event with its deliveries.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{JsonBody, QueryParams};
use super::{Admin, ApiError, AppState, ErrorBody};
use crate::ids::{DeliveryId, EndpointId, EventId};
use crate::store::{
    Attempt, DeliveryQuery, DeliveryRecord, DeliveryStatus, EventRecord, ReplayFilter,
};

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(retry))
        .routes(routes!(replay))
        .routes(routes!(event))
}

/// Filters for listing deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only deliveries in this status.
    status: Option<DeliveryStatus>,
    /// Only deliveries to this endpoint.
    endpoint_id: Option<EndpointId>,
    /// Only deliveries of this event.
    event_id: Option<EventId>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// A delivery with its attempts.
#[derive(Serialize, ToSchema)]
struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryRecord,
    attempts: Vec<Attempt>,
}

/// An event with its deliveries.
#[derive(Serialize, ToSchema)]
struct EventDetail {
    #[serde(flatten)]
    event: EventRecord,
    deliveries: Vec<DeliveryRecord>,
}

/// How many dead letters were made due again.
#[derive(Serialize, ToSchema)]
struct Replayed {
    replayed: u64,
}

/// Lists deliveries, newest first.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(ListQuery),
    responses((status = 200, body = Vec<DeliveryRecord>), (status = 400, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    _: Admin,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let query = DeliveryQuery {
        status: q.status,
        endpoint_id: q.endpoint_id,
        event_id: q.event_id,
        limit: q.limit,
    };
    Ok(Json(state.store.deliveries(&query).await?))
}

fn parse<T: std::str::FromStr>(id: &str, what: &str) -> Result<T, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no {what} with id \"{id}\"")))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let (delivery, attempts) = state
        .store
        .delivery(parse::<DeliveryId>(&id, "delivery")?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id \"{id}\"")))?;
    Ok(Json(DeliveryDetail { delivery, attempts }))
}

/// Sends a dead-lettered (or waiting) delivery again now.
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 202, body = DeliveryDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<DeliveryDetail>), ApiError> {
    let delivery_id = parse::<DeliveryId>(&id, "delivery")?;
    match state
        .store
        .retry(delivery_id, OffsetDateTime::now_utc())
        .await?
    {
        None => return Err(ApiError::NotFound(format!("no delivery with id \"{id}\""))),
        Some(false) => {
            return Err(ApiError::Conflict(
                "only dead-lettered or waiting deliveries can be retried".into(),
            ))
        }
        Some(true) => state.ingestor.wake(),
    }
    let (delivery, attempts) = state
        .store
        .delivery(delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(id))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(DeliveryDetail { delivery, attempts }),
    ))
}

/// Replays dead letters, by endpoint, event name and time range (of the event's acceptance).
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "deliveries", request_body = ReplayFilter,
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody)))]
async fn replay(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(filter): JsonBody<ReplayFilter>,
) -> Result<Json<Replayed>, ApiError> {
    let replayed = state
        .store
        .replay(&filter, OffsetDateTime::now_utc())
        .await?;
    if replayed > 0 {
        state.ingestor.wake();
    }
    tracing::info!(replayed, "dead letters replayed");
    Ok(Json(Replayed { replayed }))
}

/// An event with its deliveries.
#[utoipa::path(get, path = "/v1/events/{event}", tag = "events", params(("event" = String, Path, description = "The event id (evt_…)")),
    responses((status = 200, body = EventDetail), (status = 404, body = ErrorBody)))]
async fn event(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    let (event, deliveries) = state
        .store
        .event(parse::<EventId>(&id, "event")?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id \"{id}\"")))?;
    Ok(Json(EventDetail { event, deliveries }))
}
