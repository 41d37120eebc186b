//! `/v1/endpoints`: create, list, get, replace and delete endpoints, and rotate their
//! signing secrets. Secret values are write-only: a generated one is shown once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::JsonBody;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::{EndpointCreated, EndpointInput, EndpointKind, EndpointView, SecretInput};
use super::{Admin, ApiError, AppState, ErrorBody};
use crate::destinations::azure::{AzureInput, AzureSettings};
use crate::destinations::webhook::{
    ssrf::UrlError, Secret, SigningSecret, WebhookAuth, WebhookSettings,
};
use crate::destinations::DestinationSettings;
use crate::ids::{EndpointId, SecretId};
use crate::store::Endpoint;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, replace, delete))
        .routes(routes!(add_secret))
        .routes(routes!(retire_secret))
}

/// Creates an endpoint, or replaces the one called `input.name` when `upsert` (configuration
/// files). Returns the endpoint and the secret Herald generated, if it did.
pub async fn create_or_replace(
    state: &AppState,
    input: EndpointInput,
    upsert: bool,
) -> Result<(Endpoint, Option<String>), ApiError> {
    let existing = state.store.endpoint_by_name(&input.name).await?;
    match existing {
        Some(existing) if upsert => update(state, existing, input).await,
        Some(_) => Err(ApiError::Conflict(format!(
            "an endpoint called \"{}\" already exists",
            input.name
        ))),
        None => {
            let now = OffsetDateTime::now_utc();
            let (settings, generated) = settings(state, &input, None).await?;
            let endpoint = Endpoint {
                id: EndpointId::new(),
                name: input.name,
                settings,
                max_concurrency: input.max_concurrency.map(|n| n.get()),
                created_at: now,
                updated_at: now,
            };
            state.store.put_endpoint(&endpoint).await?;
            state.routing.changed();
            Ok((endpoint, generated))
        }
    }
}

async fn update(
    state: &AppState,
    existing: Endpoint,
    input: EndpointInput,
) -> Result<(Endpoint, Option<String>), ApiError> {
    let now = OffsetDateTime::now_utc();
    let (settings, generated) = settings(state, &input, Some(&existing.settings)).await?;
    let endpoint = Endpoint {
        name: input.name,
        settings,
        max_concurrency: input.max_concurrency.map(|n| n.get()),
        updated_at: now,
        ..existing
    };
    state.store.put_endpoint(&endpoint).await?;
    state.routing.changed();
    Ok((endpoint, generated))
}

/// The settings of `input`; `old` (an update) supplies the write-only values it leaves out.
/// Returns a signing secret Herald generated, to show once.
async fn settings(
    state: &AppState,
    input: &EndpointInput,
    old: Option<&DestinationSettings>,
) -> Result<(DestinationSettings, Option<String>), ApiError> {
    if input.name.trim().is_empty() || input.name.len() > 100 {
        return Err(ApiError::field("name", "must be 1 to 100 characters"));
    }
    let only =
        |kind: &str, fields: &[(&'static str, bool)]| match fields.iter().find(|(_, given)| *given)
        {
            Some((field, _)) => Err(ApiError::field(
                field,
                format!("does not apply to a {kind} endpoint"),
            )),
            None => Ok(()),
        };
    match input.kind {
        EndpointKind::Webhook => {
            only(
                "webhook",
                &[
                    ("connection_string", input.connection_string.is_some()),
                    ("namespace", input.namespace.is_some()),
                    ("entity", input.entity.is_some()),
                    ("credential", input.credential.is_some()),
                    ("partition_id", input.partition_id.is_some()),
                ],
            )?;
            let old = match old {
                Some(DestinationSettings::Webhook(w)) => Some(w),
                _ => None,
            };
            let now = OffsetDateTime::now_utc();
            let (secrets, generated) = match (&input.secret, old) {
                (Some(text), old) => {
                    let secret = parse_secret(text)?;
                    let kept = old.and_then(|o| o.secrets.iter().find(|s| s.secret == secret));
                    let s = kept.cloned().unwrap_or(SigningSecret {
                        id: SecretId::new(),
                        secret,
                        created_at: now,
                    });
                    (vec![s], None)
                }
                (None, Some(old)) => (old.secrets.clone(), None),
                (None, None) => {
                    let s = Secret::generate();
                    let shown = s.expose();
                    let secret = SigningSecret {
                        id: SecretId::new(),
                        secret: s,
                        created_at: now,
                    };
                    (vec![secret], Some(shown))
                }
            };
            // Like secrets, authentication values are write-only: absent means "keep".
            let auth = input
                .auth
                .clone()
                .or_else(|| old.and_then(|o| o.auth.clone()));
            Ok((
                webhook_settings(state, input, secrets, auth).await?,
                generated,
            ))
        }
        EndpointKind::ServiceBus | EndpointKind::EventHubs => {
            let service_bus = input.kind == EndpointKind::ServiceBus;
            let kind = if service_bus {
                "Service Bus"
            } else {
                "Event Hubs"
            };
            only(
                kind,
                &[
                    ("url", input.url.is_some()),
                    ("secret", input.secret.is_some()),
                    ("timeout", input.timeout.is_some()),
                    ("auth", input.auth.is_some()),
                    ("partition_id", service_bus && input.partition_id.is_some()),
                ],
            )?;
            let old = match old {
                Some(DestinationSettings::ServiceBus(a)) if service_bus => Some(a),
                Some(DestinationSettings::EventHubs(a)) if !service_bus => Some(a),
                _ => None,
            };
            // Write-only credentials: an update that gives neither keeps the old one.
            let keep = input.connection_string.is_none() && input.credential.is_none();
            let azure = match (keep, old) {
                (true, Some(old)) => AzureSettings::from_input(AzureInput {
                    namespace: Some(input.namespace.as_deref().unwrap_or(&old.namespace())),
                    entity: Some(input.entity.as_deref().unwrap_or(&old.entity)),
                    credential: Some(old.credential.clone()),
                    partition_id: input.partition_id.as_deref(),
                    connection_string: None,
                }),
                _ => AzureSettings::from_input(AzureInput {
                    connection_string: input.connection_string.as_deref(),
                    namespace: input.namespace.as_deref(),
                    entity: input.entity.as_deref(),
                    credential: input.credential.clone(),
                    partition_id: input.partition_id.as_deref(),
                }),
            }
            .map_err(|e| ApiError::field(e.field, e.message))?;
            let settings = if service_bus {
                DestinationSettings::ServiceBus(azure)
            } else {
                DestinationSettings::EventHubs(azure)
            };
            Ok((settings, None))
        }
    }
}

async fn webhook_settings(
    state: &AppState,
    input: &EndpointInput,
    secrets: Vec<SigningSecret>,
    auth: Option<WebhookAuth>,
) -> Result<DestinationSettings, ApiError> {
    if let Some(WebhookAuth::HttpHeader { values }) = &auth {
        for (name, value) in values {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || name.to_ascii_lowercase().starts_with("webhook-")
            {
                return Err(ApiError::field(
                    "auth",
                    format!("\"{name}\" cannot be used as a header name"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(ApiError::field(
                    "auth",
                    format!("the value of \"{name}\" is not a valid header value"),
                ));
            }
        }
    }
    let url = input
        .url
        .as_deref()
        .ok_or_else(|| ApiError::field("url", "is required for a webhook endpoint"))?;
    state
        .webhooks
        .policy()
        .check_url(url)
        .await
        .map_err(|e| match e {
            UrlError::Blocked(blocked) => ApiError::field("url", format!("is refused: {blocked}")),
            other => ApiError::field("url", other.to_string()),
        })?;
    Ok(DestinationSettings::Webhook(WebhookSettings {
        url: url.to_owned(),
        secrets,
        timeout: input.timeout,
        auth,
    }))
}

fn not_a_webhook(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "endpoint \"{name}\" is not a webhook endpoint; only webhooks have signing secrets"
    ))
}

fn parse_secret(text: &str) -> Result<Secret, ApiError> {
    Secret::parse(text).map_err(|e| ApiError::field("secret", e.to_string()))
}

async fn find(state: &AppState, id: &str) -> Result<Endpoint, ApiError> {
    let not_found = || ApiError::NotFound(format!("no endpoint with id \"{id}\""));
    let id: EndpointId = id.parse().map_err(|_| not_found())?;
    state.store.endpoint(id).await?.ok_or_else(not_found)
}

/// Creates an endpoint.
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints", request_body = EndpointInput, responses(
    (status = 201, body = EndpointCreated), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let (endpoint, generated_secret) = create_or_replace(&state, input, false).await?;
    tracing::info!(endpoint = %endpoint.id, name = %endpoint.name, "endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: (&endpoint).into(),
            generated_secret,
        }),
    ))
}

/// Lists endpoints.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", responses((status = 200, body = Vec<EndpointView>)))]
async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(
        state
            .store
            .endpoints()
            .await?
            .iter()
            .map(EndpointView::from)
            .collect(),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json((&find(&state, &id).await?).into()))
}

/// Replaces an endpoint's settings (secrets stay unless `secret` is given).
#[utoipa::path(put, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)), request_body = EndpointInput,
    responses((status = 200, body = EndpointView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<Json<EndpointView>, ApiError> {
    let existing = find(&state, &id).await?;
    let becomes_webhook = input.kind == EndpointKind::Webhook
        && !matches!(existing.settings, DestinationSettings::Webhook(_));
    if becomes_webhook && input.secret.is_none() {
        return Err(ApiError::field(
            "secret",
            "is required when an endpoint becomes a webhook endpoint (or add one later with POST /v1/endpoints/{id}/secrets)",
        ));
    }
    let (endpoint, _) = update(&state, existing, input).await?;
    Ok(Json((&endpoint).into()))
}

/// Deletes an endpoint, its subscriptions, and cancels their unfinished deliveries.
#[utoipa::path(delete, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find(&state, &id).await?;
    state.store.delete_endpoint(endpoint.id).await?;
    state.routing.reload(state.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a signing secret (rotation: both sign until the old one is retired).
#[utoipa::path(post, path = "/v1/endpoints/{id}/secrets", tag = "endpoints", params(("id" = String, Path)), request_body = SecretInput,
    responses((status = 201, body = EndpointCreated), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_secret(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<SecretInput>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let mut endpoint = find(&state, &id).await?;
    let (secret, generated) = match &input.secret {
        Some(text) => (parse_secret(text)?, None),
        None => {
            let s = Secret::generate();
            let shown = s.expose();
            (s, Some(shown))
        }
    };
    let DestinationSettings::Webhook(w) = &mut endpoint.settings else {
        return Err(not_a_webhook(&endpoint.name));
    };
    if w.secrets.len() >= 5 {
        return Err(ApiError::field(
            "secret",
            "an endpoint has at most 5 active secrets; retire one first",
        ));
    }
    let now = OffsetDateTime::now_utc();
    w.secrets.push(SigningSecret {
        id: SecretId::new(),
        secret,
        created_at: now,
    });
    endpoint.updated_at = now;
    state.store.put_endpoint(&endpoint).await?;
    state.routing.changed();
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: (&endpoint).into(),
            generated_secret: generated,
        }),
    ))
}

/// Retires a signing secret.
#[utoipa::path(delete, path = "/v1/endpoints/{id}/secrets/{secret_id}", tag = "endpoints",
    params(("id" = String, Path), ("secret_id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retire_secret(
    State(state): State<AppState>,
    _: Admin,
    Path((id, secret_id)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    let mut endpoint = find(&state, &id).await?;
    let DestinationSettings::Webhook(w) = &mut endpoint.settings else {
        return Err(not_a_webhook(&endpoint.name));
    };
    let before = w.secrets.len();
    w.secrets.retain(|s| s.id.to_string() != secret_id);
    if w.secrets.len() == before {
        return Err(ApiError::NotFound(format!(
            "endpoint has no secret \"{secret_id}\""
        )));
    }
    if w.secrets.is_empty() {
        return Err(ApiError::Conflict(
            "the last secret cannot be retired; add a new one first".into(),
        ));
    }
    endpoint.updated_at = OffsetDateTime::now_utc();
    state.store.put_endpoint(&endpoint).await?;
    state.routing.changed();
    Ok(Json((&endpoint).into()))
}
