//! `/v1/endpoints/{id}/health`, `…/disable`, `…/enable`: an endpoint's health (healthy,
//! failing, probing, disabled) as every instance shares it, and an operator's switch. What a
//! disabled endpoint held is sent when it is enabled, or kept to replay by time range
//! (`POST /v1/dead-letters/replay` with `"status": "held"`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path::PathId;
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody, JsonBody};
use crate::model::{
    DestinationSettings, EndpointHealth, EndpointId, GrantState, HealthState, Validation,
};
use crate::store::health::Resume;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(grant_get, grant_post))
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
    /// Webhooks that require the CloudEvents handshake: whether the receiver granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<GrantView>,
}

/// A webhook receiver's answer to the CloudEvents handshake.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    /// `requested` (asked; an answer or a callback is awaited), `granted` or `refused`.
    pub state: GrantState,
    /// Requests per minute the receiver allowed (absent: any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_per_minute: Option<u32>,
    /// Handshakes made for the endpoint's URL.
    pub attempts: u32,
    /// After a refusal: when Herald asks again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_try_at: Option<OffsetDateTime>,
    /// Why it is not granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
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
            validation: None,
        }
    }
}

/// Why an operator disables an endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableInput {
    /// Shown with the endpoint's health (1 to 500 characters).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
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
    Admin(caller): Admin,
    PathId(id, _): PathId<EndpointId>,
) -> Result<Json<HealthView>, ApiError> {
    let endpoint = state.registry.endpoint(&caller.scope(), id).await?;
    let h = state.registry.endpoint_health(endpoint.id).await?;
    let mut view: HealthView = (&h).into();
    if let DestinationSettings::Webhook(w) = &endpoint.settings {
        if w.validation != Validation::None {
            let grant = state.store.grants().grant(endpoint.id).await?;
            view.validation = Some(match grant.filter(|g| g.url == w.url) {
                Some(g) => GrantView {
                    state: g.state,
                    allowed_per_minute: g.allowed_per_minute,
                    attempts: g.attempts,
                    next_try_at: g.next_try_at,
                    last_error: g.last_error,
                },
                None => GrantView {
                    state: GrantState::Requested,
                    allowed_per_minute: None,
                    attempts: 0,
                    next_try_at: None,
                    last_error: Some(
                        "not asked yet: the handshake is made before the first delivery".into(),
                    ),
                },
            });
        }
    }
    Ok(Json(view))
}

/// The receiver's grant, given through the callback URL of the handshake.
#[derive(Debug, Serialize, ToSchema)]
pub struct Granted {
    /// The endpoint that may now be delivered to.
    pub endpoint_id: EndpointId,
}

/// A receiver grants delivery through the callback URL Herald sent it in the CloudEvents
/// handshake (`WebHook-Request-Callback`). Public: the token in the path is the credential;
/// it is valid for ten minutes. `WebHook-Allowed-Rate` may set the rate (requests/minute).
#[utoipa::path(get, path = "/v1/webhook-validation/{token}", tag = "endpoints", operation_id = "grant_webhook_get",
    params(("token" = String, Path), ("WebHook-Allowed-Rate" = Option<String>, Header, pattern = r"^(\*|[1-9][0-9]{0,8})$")), security(()),
    responses((status = 200, body = Granted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grant_get(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Granted>, ApiError> {
    grant(&state, &token, &headers).await
}

/// The same grant, by `POST`.
#[utoipa::path(post, path = "/v1/webhook-validation/{token}", tag = "endpoints", operation_id = "grant_webhook_post",
    params(("token" = String, Path), ("WebHook-Allowed-Rate" = Option<String>, Header, pattern = r"^(\*|[1-9][0-9]{0,8})$")), security(()),
    responses((status = 200, body = Granted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grant_post(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Granted>, ApiError> {
    grant(&state, &token, &headers).await
}

async fn grant(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
) -> Result<Json<Granted>, ApiError> {
    let bad = || {
        ApiError::field(
            "WebHook-Allowed-Rate",
            "must be * or a positive number of requests per minute (1 to 9 digits, no leading 0)",
        )
    };
    let rate = match headers.get("webhook-allowed-rate").map(|v| v.to_str()) {
        None | Some(Ok("*")) => None,
        Some(Ok(text))
            if (1..=9).contains(&text.len())
                && !text.starts_with('0')
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(text.parse::<u32>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
    };
    let granted = state
        .store
        .grants()
        .grant_by_callback(token, rate, OffsetDateTime::now_utc())
        .await?;
    let Some(endpoint_id) = granted else {
        return Err(ApiError::NotFound(
            "no handshake waits for this callback: the token is unknown, used, or older than ten minutes".into(),
        ));
    };
    tracing::info!(endpoint = %endpoint_id, ?rate, "the receiver granted delivery through its callback");
    // What waited for the grant is due again.
    state.ingestor.wake();
    Ok(Json(Granted { endpoint_id }))
}

/// Disables an endpoint: its deliveries are held (kept, not sent) until it is enabled.
#[utoipa::path(post, path = "/v1/endpoints/{id}/disable", tag = "endpoints", operation_id = "disable_endpoint", params(("id" = EndpointId, Path)),
    request_body = DisableInput,
    responses((status = 200, body = HealthView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), AdminRefusals))]
async fn disable(
    State(state): State<AppState>,
    Admin(who): Admin,
    PathId(id, _): PathId<EndpointId>,
    JsonBody(input): JsonBody<DisableInput>,
) -> Result<Json<HealthView>, ApiError> {
    let reason = match input.reason {
        Some(r) if r.trim().is_empty() || r.chars().count() > 500 => {
            return Err(ApiError::field("reason", "must be 1 to 500 characters"))
        }
        Some(r) => r,
        None => format!("disabled by {}", who.name),
    };
    let h = state
        .registry
        .disable_endpoint(&who.scope(), id, &reason)
        .await?;
    tracing::info!(endpoint = %h.endpoint_id, by = who.name, "endpoint disabled");
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
    PathId(id, _): PathId<EndpointId>,
    JsonBody(input): JsonBody<EnableInput>,
) -> Result<Json<Enabled>, ApiError> {
    let resume = match input.held {
        HeldChoice::Deliver => Resume::Deliver,
        HeldChoice::Keep => Resume::Keep,
    };
    let (h, resumed) = state
        .registry
        .enable_endpoint(&who.scope(), id, resume)
        .await?;
    state.ingestor.wake();
    tracing::info!(endpoint = %h.endpoint_id, by = who.name, resumed, "endpoint enabled");
    Ok(Json(Enabled {
        health: (&h).into(),
        resumed,
    }))
}
