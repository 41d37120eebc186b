//! `/v1/deliveries` and `/v1/dead-letters`: what happened to each delivery, manual retry,
//! and replay of dead letters.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::QueryParams;
use super::path::PathId;
use super::views::{DeliveryDetail, DeliveryView};
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody, JsonBody};
use crate::model::{
    DeliveryId, DeliveryQuery, DeliveryStatus, EndpointId, EventId, ReplayFilter, Scope,
};
use crate::store::StoreError;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(retry))
        .routes(routes!(replay))
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
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Which deliveries a replay makes due again.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ReplayStatus {
    /// Dead letters.
    #[default]
    DeadLettered,
    /// Deliveries held while their endpoint was disabled.
    Held,
}

/// Which dead letters (or held deliveries) to replay; every field narrows the set.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// `dead_lettered` (default) or `held` (deliveries of a disabled endpoint).
    #[serde(default)]
    status: ReplayStatus,
    /// Only deliveries to this endpoint.
    #[serde(default)]
    endpoint_id: Option<EndpointId>,
    /// Only deliveries of events with this unique name.
    #[serde(default)]
    event: Option<String>,
    /// Only events accepted at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    from: Option<OffsetDateTime>,
    /// Only events accepted before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    to: Option<OffsetDateTime>,
}

/// How many dead letters were made due again.
#[derive(Serialize, ToSchema)]
pub struct Replayed {
    /// How many.
    pub replayed: u64,
    /// Set when the range asked for reaches back before what the retention policy has
    /// already removed: dead letters of events accepted up to this time may be gone.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub pruned_through: Option<OffsetDateTime>,
    /// The end of the range asked for.
    #[serde(skip)]
    range_to: Option<OffsetDateTime>,
}

/// Lists deliveries, newest first.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", operation_id = "list_deliveries", params(ListQuery),
    responses((status = 200, body = Vec<DeliveryView>, links(
        ("GetDelivery" = (operation_id = "get_delivery", parameters(("id" = "$response.body#/0/id")))),
        ("RetryDelivery" = (operation_id = "retry_delivery", parameters(("id" = "$response.body#/0/id")))),
        ("GetEvent" = (operation_id = "get_event", parameters(("event" = "$response.body#/0/event_id")))),
    )),
    (status = 400, body = ErrorBody), AdminRefusals))]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    if q.limit.is_some_and(|n| !(1..=1000).contains(&n)) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let query = DeliveryQuery {
        status: q.status,
        endpoint_id: q.endpoint_id,
        event_id: q.event_id,
        limit: q.limit,
    };
    let deliveries = state
        .store
        .records()
        .deliveries(&caller.scope(), &query)
        .await?;
    Ok(Json(deliveries.iter().map(DeliveryView::from).collect()))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery", params(("id" = DeliveryId, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody, description = "Removed by the retention policy"), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(delivery_id, _): PathId<DeliveryId>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let Some((delivery, attempts)) = state
        .store
        .records()
        .delivery(&caller.scope(), delivery_id)
        .await?
    else {
        return Err(missing(&state, delivery_id).await);
    };
    Ok(Json(DeliveryDetail::new(&delivery, &attempts)))
}

/// A delivery that was not found: `410` if pruning may have removed it.
async fn missing(state: &AppState, delivery_id: DeliveryId) -> ApiError {
    match state.store.records().retention_state().await {
        Ok(r) => ApiError::missing(
            "delivery",
            &delivery_id.to_string(),
            delivery_id.unix_millis(),
            r.horizons.deliveries,
        ),
        Err(e) => e.into(),
    }
}

/// Sends a dead-lettered (or waiting) delivery again now.
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", tag = "deliveries", operation_id = "retry_delivery", params(("id" = DeliveryId, Path)),
    responses((status = 202, body = DeliveryDetail), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody, description = "Removed by the retention policy"),
        (status = 409, body = ErrorBody, description = "Neither dead-lettered nor waiting"), AdminRefusals))]
async fn retry(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(delivery_id, _): PathId<DeliveryId>,
) -> Result<(axum::http::StatusCode, Json<DeliveryDetail>), ApiError> {
    let scope = caller.scope();
    match state
        .store
        .records()
        .retry(&scope, delivery_id, OffsetDateTime::now_utc())
        .await?
    {
        None => return Err(missing(&state, delivery_id).await),
        Some(false) => {
            return Err(ApiError::Conflict(
                "only dead-lettered or waiting deliveries can be retried".into(),
            ))
        }
        Some(true) => state.ingestor.wake(),
    }
    let (delivery, attempts) = state
        .store
        .records()
        .delivery(&scope, delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id \"{delivery_id}\"")))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(DeliveryDetail::new(&delivery, &attempts)),
    ))
}

/// Replays dead letters, by endpoint, event name and time range (of the event's acceptance).
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "deliveries", operation_id = "replay_dead_letters", request_body = ReplayRequest,
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "Every dead letter of the range was removed by the retention policy"), AdminRefusals))]
async fn replay(
    State(state): State<AppState>,
    Admin(caller): Admin,
    JsonBody(request): JsonBody<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    let filter = ReplayFilter {
        held: request.status == ReplayStatus::Held,
        endpoint_id: request.endpoint_id,
        event: request.event,
        from: request.from,
        to: request.to,
    };
    let done = replay_range(&state, &caller.scope(), &filter).await?;
    if let Some(why) = done.all_pruned() {
        return Err(ApiError::Pruned(why));
    }
    Ok(Json(done))
}

impl Replayed {
    /// Why nothing was replayed, when the whole range was removed by the retention policy.
    pub fn all_pruned(&self) -> Option<String> {
        let h = self.pruned_through?;
        (self.replayed == 0 && self.range_to.is_some_and(|to| to <= h)).then(|| {
            format!(
                "no dead letter replayed: the range ends before {}, and dead letters of events accepted up to then were removed by the retention policy (retention.dead_lettered)",
                h.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| h.to_string())
            )
        })
    }
}

/// Makes the dead letters (or held deliveries) of `filter` due now, wakes the dispatcher,
/// and says up to when the range's dead letters may have been pruned: what the API and the
/// console both do for a range replay.
pub async fn replay_range(
    state: &AppState,
    scope: &Scope,
    filter: &ReplayFilter,
) -> Result<Replayed, StoreError> {
    let replayed = state
        .store
        .records()
        .replay(scope, filter, OffsetDateTime::now_utc())
        .await?;
    if replayed > 0 {
        state.ingestor.wake();
    }
    tracing::info!(replayed, "dead letters replayed");
    // Pruned dead letters of the range are said so, not silently missing.
    let horizon = state
        .store
        .records()
        .retention_state()
        .await?
        .horizons
        .dead_letters;
    Ok(Replayed {
        replayed,
        pruned_through: horizon.filter(|h| filter.from.is_none_or(|from| from <= *h)),
        range_to: filter.to,
    })
}
