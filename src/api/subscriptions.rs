//! `/v1/subscriptions`: route a cataloged event, or a whole category, to an endpoint.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::JsonBody;
use super::model::SubscriptionInput;
use super::{Admin, ApiError, AppState, ErrorBody};
use crate::catalog::AllowedSteps;
use crate::ids::{EndpointId, SubscriptionId};
use crate::store::Subscription;
use crate::subscriptions::{Mode, Stage};

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, replace, delete))
}

/// Checks `input` against the catalog and the endpoints, and builds the subscription
/// (`existing` keeps its id and creation time).
async fn build(
    state: &AppState,
    input: SubscriptionInput,
    existing: Option<&Subscription>,
) -> Result<Subscription, ApiError> {
    let catalog = &state.catalog;
    let (solution, event, category) = match (&input.event, &input.category) {
        (Some(name), None) => {
            let def = catalog.cataloged(name).ok_or_else(|| {
                ApiError::field("event", format!("\"{name}\" is not a cataloged event"))
            })?;
            if def.allowed_steps == AllowedSteps::None {
                return Err(ApiError::field(
                    "event",
                    format!("\"{name}\" allows no processing steps, so it cannot be subscribed to"),
                ));
            }
            for c in &input.filter.0 {
                if def.parameter(&c.parameter).is_none() {
                    return Err(ApiError::field(
                        "filter",
                        format!("\"{}\" is not a parameter of {name}", c.parameter),
                    ));
                }
            }
            (def.solution.clone(), Some(name.clone()), None)
        }
        (None, Some(category)) => {
            let candidates: Vec<&str> = catalog
                .categories()
                .iter()
                .filter(|c| {
                    c.name == *category && input.solution.as_ref().is_none_or(|s| *s == c.solution)
                })
                .map(|c| c.solution.as_str())
                .collect();
            match candidates.as_slice() {
                [solution] => (solution.to_string(), None, Some(category.clone())),
                [] => {
                    return Err(ApiError::field(
                        "category",
                        format!("\"{category}\" is not a category of the catalog"),
                    ))
                }
                _ => {
                    return Err(ApiError::field(
                        "solution",
                        format!("several solutions have a category \"{category}\"; name one"),
                    ))
                }
            }
        }
        _ => {
            return Err(ApiError::field(
                "event",
                "give exactly one of `event` and `category`",
            ))
        }
    };
    let endpoint = match input.endpoint.parse::<EndpointId>() {
        Ok(id) => state.store.endpoint(id).await?,
        Err(_) => state.store.endpoint_by_name(&input.endpoint).await?,
    }
    .ok_or_else(|| {
        ApiError::field(
            "endpoint",
            format!("no endpoint with id or name \"{}\"", input.endpoint),
        )
    })?;
    let now = OffsetDateTime::now_utc();
    let id = existing.map_or_else(SubscriptionId::new, |s| s.id);
    let name = input.name.clone().unwrap_or_else(|| id.to_string());
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::field("name", "must be 1 to 100 characters"));
    }
    let stage = match (input.mode, input.stage) {
        (Mode::Async, Some(_)) => {
            return Err(ApiError::field(
                "stage",
                "only a synchronous step has a stage",
            ))
        }
        (Mode::Async, None) => None,
        (Mode::Sync, stage) => {
            let names: Vec<&str> = match (&event, &category) {
                (Some(e), _) => vec![e.as_str()],
                (None, Some(c)) => catalog
                    .events_in(&solution, c)
                    .iter()
                    .map(|e| e.unique_name.as_str())
                    .collect(),
                (None, None) => vec![],
            };
            for name in names {
                let def = catalog.cataloged(name).expect("checked above");
                if def.allowed_steps != AllowedSteps::SyncAndAsync {
                    return Err(ApiError::field(
                        "mode",
                        format!("\"{name}\" allows only asynchronous steps (allowed_steps = {:?}); a synchronous step cannot be registered on it", def.allowed_steps),
                    ));
                }
            }
            Some(stage.unwrap_or(Stage::PreOperation))
        }
    };
    check_amqp(
        catalog,
        &solution,
        event.as_deref(),
        category.as_deref(),
        &input,
        &endpoint,
    )?;
    Ok(Subscription {
        id,
        name,
        solution,
        event,
        category,
        endpoint_id: endpoint.id,
        format: input.format,
        filter: input.filter,
        enabled: input.enabled.unwrap_or(true),
        rank: input.rank.unwrap_or(1),
        mode: input.mode,
        stage,
        amqp: input.amqp,
        disabled_reason: None,
        created_at: existing.map_or(now, |s| s.created_at),
        updated_at: now,
    })
}

/// Checks what only some endpoint kinds support: synchronous steps call webhooks; AMQP
/// options need a Service Bus or Event Hubs endpoint and parameters every subscribed event has.
fn check_amqp(
    catalog: &crate::catalog::Catalog,
    solution: &str,
    event: Option<&str>,
    category: Option<&str>,
    input: &SubscriptionInput,
    endpoint: &crate::store::Endpoint,
) -> Result<(), ApiError> {
    let kind = endpoint.settings.kind();
    if input.mode == Mode::Sync && kind != "webhook" {
        return Err(ApiError::field(
            "mode",
            format!(
                "a synchronous step calls a webhook; endpoint \"{}\" is a {kind} endpoint",
                endpoint.name
            ),
        ));
    }
    let amqp = &input.amqp;
    if amqp.is_empty() {
        return Ok(());
    }
    if kind == "webhook" {
        return Err(ApiError::field(
            "amqp",
            format!(
                "applies to Service Bus and Event Hubs endpoints; \"{}\" is a webhook endpoint",
                endpoint.name
            ),
        ));
    }
    if amqp.session_id.is_some() && kind != "service_bus" {
        return Err(ApiError::field(
            "amqp.session_id",
            "applies to Service Bus endpoints only",
        ));
    }
    if amqp.partition_key.is_some() && kind != "event_hubs" {
        return Err(ApiError::field(
            "amqp.partition_key",
            "applies to Event Hubs endpoints only",
        ));
    }
    if amqp.time_to_live.is_some_and(|t| t.is_zero()) {
        return Err(ApiError::field(
            "amqp.time_to_live",
            "must be more than zero",
        ));
    }
    let events: Vec<&crate::catalog::EventDefinition> = match (event, category) {
        (Some(e), _) => catalog.cataloged(e).into_iter().collect(),
        (None, Some(c)) => catalog.events_in(solution, c),
        (None, None) => vec![],
    };
    for (field, parameter) in amqp.parameters() {
        for def in &events {
            if def.parameter(parameter).is_none() {
                return Err(ApiError::field(
                    field,
                    format!("\"{parameter}\" is not a parameter of {}", def.unique_name),
                ));
            }
        }
    }
    Ok(())
}

/// Creates a subscription, or replaces the one of the same name when `upsert` (configuration files).
pub async fn create_or_replace(
    state: &AppState,
    input: SubscriptionInput,
    upsert: bool,
) -> Result<Subscription, ApiError> {
    let existing = match &input.name {
        Some(name) => state
            .store
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.name == *name),
        None => None,
    };
    if existing.is_some() && !upsert {
        return Err(ApiError::Conflict(format!(
            "a subscription called \"{}\" already exists",
            input.name.unwrap_or_default()
        )));
    }
    let subscription = build(state, input, existing.as_ref()).await?;
    state.store.put_subscription(&subscription).await?;
    state.routing.reload(state.store.as_ref()).await?;
    Ok(subscription)
}

async fn find(state: &AppState, id: &str) -> Result<Subscription, ApiError> {
    let not_found = || ApiError::NotFound(format!("no subscription with id \"{id}\""));
    let id: SubscriptionId = id.parse().map_err(|_| not_found())?;
    state.store.subscription(id).await?.ok_or_else(not_found)
}

/// Creates a subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = SubscriptionInput, responses(
    (status = 201, body = Subscription), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let subscription = create_or_replace(&state, input, false).await?;
    Ok((StatusCode::CREATED, Json(subscription)))
}

/// Lists subscriptions.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions", responses((status = 200, body = Vec<Subscription>)))]
async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    Ok(Json(state.store.subscriptions().await?))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(find(&state, &id).await?))
}

/// Replaces a subscription (re-enabling one Herald disabled, for instance).
#[utoipa::path(put, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)), request_body = SubscriptionInput,
    responses((status = 200, body = Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<Json<Subscription>, ApiError> {
    let existing = find(&state, &id).await?;
    let subscription = build(&state, input, Some(&existing)).await?;
    state.store.put_subscription(&subscription).await?;
    state.routing.reload(state.store.as_ref()).await?;
    Ok(Json(subscription))
}

/// Deletes a subscription and cancels its unfinished deliveries.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subscription = find(&state, &id).await?;
    state.store.delete_subscription(subscription.id).await?;
    state.routing.reload(state.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
