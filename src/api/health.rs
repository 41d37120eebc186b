//! `/v1/endpoints/{id}/health`, `…/disable`, `…/enable`: an endpoint's health (healthy,
//! failing, probing, disabled) as every instance shares it, and an operator's switch. What a
//! disabled endpoint held is sent when it is enabled, or kept to replay by time range
//! (`POST /v1/dead-letters/replay` with `"status": "held"`).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody, JsonBody};
use crate::model::{EndpointHealth, EndpointId, HealthState};
use crate::store::health::Resume;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(disable))
        .routes(routes!(enable))
}

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthStateView {
    /// Deliveries go as they are due.
    Healthy,
    /// Failing: deliveries wait (spending no attempts) until the next probe.
    Failing,
    /// Failing, with its one probe out now.
    Probing,
    /// Disabled: deliveries are held.
    Disabled,
}

/// An endpoint's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    /// Where it stands.
    pub state: HealthStateView,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The first failure since the last success.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Failing: when the next probe may go.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_probe_at: Option<OffsetDateTime>,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// When its state last changed (absent when it never did).
    #[serde(with = "time::serde::rfc3339::option")]
    pub changed_at: Option<OffsetDateTime>,
}

impl From<&EndpointHealth> for HealthView {
    fn from(h: &EndpointHealth) -> Self {
        let now = OffsetDateTime::now_utc();
        let state = match h.state {
            HealthState::Healthy => HealthStateView::Healthy,
            HealthState::Failing if h.probing(now) => HealthStateView::Probing,
            HealthState::Failing => HealthStateView::Failing,
            HealthState::Disabled => HealthStateView::Disabled,
        };
        Self {
            state,
            consecutive_failures: h.consecutive_failures,
            failing_since: h.failing_since,
            next_probe_at: h.next_probe(),
            last_error: h.last_error.clone(),
            disabled_reason: h.disabled_reason.clone(),
            changed_at: (h.changed_at != OffsetDateTime::UNIX_EPOCH).then_some(h.changed_at),
        }
    }
}

/// Why an operator disables an endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableInput {
    /// Shown with the endpoint's health (1 to 500 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// What becomes of the deliveries held while the endpoint was disabled.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeldChoice {
    /// Send them now, in the order they were created.
    #[default]
    Deliver,
    /// Keep them held, to replay by time range.
    Keep,
}

/// How to enable an endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableInput {
    /// The held deliveries: `deliver` (default) or `keep`.
    #[serde(default)]
    pub held: HeldChoice,
}

/// An endpoint enabled again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enabled {
    /// Its health now.
    pub health: HealthView,
    /// Held deliveries made due.
    pub resumed: u64,
}

/// An endpoint's health.
#[utoipa::path(get, path = "/v1/endpoints/{id}/health", tag = "endpoints", operation_id = "get_endpoint_health", params(("id" = EndpointId, Path)),
    responses((status = 200, body = HealthView), (status = 404, body = ErrorBody), AdminRefusals))]
async fn get_health(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<HealthView>, ApiError> {
    let endpoint = state.registry.endpoint(&id).await?;
    let h = state.registry.endpoint_health(endpoint.id).await?;
    Ok(Json((&h).into()))
}

/// Disables an endpoint: its deliveries are held (kept, not sent) until it is enabled.
#[utoipa::path(post, path = "/v1/endpoints/{id}/disable", tag = "endpoints", operation_id = "disable_endpoint", params(("id" = EndpointId, Path)),
    request_body = DisableInput,
    responses((status = 200, body = HealthView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), AdminRefusals))]
async fn disable(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<DisableInput>,
) -> Result<Json<HealthView>, ApiError> {
    let reason = match input.reason {
        Some(r) if r.trim().is_empty() || r.chars().count() > 500 => {
            return Err(ApiError::field("reason", "must be 1 to 500 characters"))
        }
        Some(r) => r,
        None => format!("disabled by {}", who.name),
    };
    let endpoint = state.registry.endpoint(&id).await?;
    let h = state
        .registry
        .disable_endpoint(endpoint.id, &reason)
        .await?;
    tracing::info!(endpoint = %endpoint.id, by = who.name, "endpoint disabled");
    Ok(Json((&h).into()))
}

/// Enables an endpoint: healthy again, and its held deliveries sent in the order they were
/// created (or kept, to replay by time range).
#[utoipa::path(post, path = "/v1/endpoints/{id}/enable", tag = "endpoints", operation_id = "enable_endpoint", params(("id" = EndpointId, Path)),
    request_body = EnableInput,
    responses((status = 200, body = Enabled), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), AdminRefusals))]
async fn enable(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<EnableInput>,
) -> Result<Json<Enabled>, ApiError> {
    let endpoint = state.registry.endpoint(&id).await?;
    let resume = match input.held {
        HeldChoice::Deliver => Resume::Deliver,
        HeldChoice::Keep => Resume::Keep,
    };
    let (h, resumed) = state.registry.enable_endpoint(endpoint.id, resume).await?;
    state.ingestor.wake();
    tracing::info!(endpoint = %endpoint.id, by = who.name, resumed, "endpoint enabled");
    Ok(Json(Enabled {
        health: (&h).into(),
        resumed,
    }))
}
