//! Flows: subscriptions shaped like a Power Automate custom connector's webhook trigger
//! (`notificationUrl` in, `201` + `Location` out, `DELETE` on the location to unsubscribe),
//! the connector definition itself (OpenAPI 2.0 with the `x-ms-*` extensions), and catalog
//! discovery the way the Dataverse trigger "When an action is performed" presents it.
//! A flow's callback gets the event's parameters as its JSON body, through the normal
//! delivery engine (retries, dead letters).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Caller, ErrorBody, JsonBody};
use crate::catalog::{event_schema, schema_url};
use crate::destinations::kinds::DestinationInput;
use crate::destinations::webhook::WebhookInput;
use crate::model::{AllowedSteps, EventDefinition, MessageFormat, Scope, SubscriptionId};
use crate::registry::{EndpointInput, RegistryError, SubscriptionInput};

/// Names of the endpoints and subscriptions made for flows start with this.
pub const FLOW_PREFIX: &str = "flow-";

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscribe))
        .routes(routes!(subscribe_to_event))
        .routes(routes!(unsubscribe))
        .routes(routes!(list_events))
        .routes(routes!(event_params_schema))
        .routes(routes!(discover))
        .routes(routes!(connector))
}

/// A flow's subscription request, as a Power Automate webhook trigger sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowSubscribe {
    /// The event to trigger on (or give `category`).
    #[serde(default)]
    pub event: Option<String>,
    /// A whole category (with `solution` when several solutions have one of that name).
    #[serde(default)]
    pub category: Option<String>,
    /// The solution of `category`.
    #[serde(default)]
    pub solution: Option<String>,
    /// The flow's callback URL.
    #[schema(format = "uri")]
    pub notification_url: String,
}

/// Body of a per-event trigger subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationUrl {
    /// The flow's callback URL.
    #[schema(format = "uri")]
    pub notification_url: String,
}

/// A flow subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowSubscription {
    /// Its id; `DELETE /v1/flows/subscriptions/{id}` ends it.
    pub id: SubscriptionId,
    /// The event subscribed to.
    pub event: Option<String>,
    /// The category subscribed to.
    pub category: Option<String>,
}

async fn create(
    state: &AppState,
    caller: &crate::auth::Principal,
    req: FlowSubscribe,
) -> Result<Response, ApiError> {
    let scope = caller.scope();
    // What the key may not use is as unknown as what the catalog lacks, and is refused
    // before anything is made.
    match (&req.event, &req.category) {
        (Some(name), _)
            if !state
                .catalog
                .cataloged(name)
                .is_some_and(|e| scope.covers(&e.solution)) =>
        {
            return Err(RegistryError::invalid(
                "event",
                format!("\"{name}\" is not a cataloged event"),
            )
            .into());
        }
        (None, Some(category))
            if !state.catalog.categories().iter().any(|c| {
                c.name == *category
                    && req.solution.as_ref().is_none_or(|s| *s == c.solution)
                    && scope.covers(&c.solution)
            }) =>
        {
            return Err(RegistryError::invalid(
                "category",
                format!("\"{category}\" is not a category of the catalog"),
            )
            .into());
        }
        _ => {}
    }
    let id = SubscriptionId::new();
    let name = format!("{FLOW_PREFIX}{}", id.uuid().simple());
    let endpoint = EndpointInput::new(
        name.clone(),
        DestinationInput::Webhook(WebhookInput {
            url: Some(req.notification_url),
            ..Default::default()
        }),
    );
    // The flow's callback is `notificationUrl` to the caller, `url` to the registry.
    let (endpoint, _) = state
        .registry
        .create_endpoint(&scope, endpoint)
        .await
        .map_err(|e| match e {
            RegistryError::Invalid { field, problem } if field == "url" => {
                RegistryError::invalid("notificationUrl", problem)
            }
            other => other,
        })?;
    let input = SubscriptionInput {
        name: Some(name),
        event: req.event,
        category: req.category,
        solution: req.solution,
        endpoint: endpoint.id.to_string(),
        format: MessageFormat::Params,
        filter: Default::default(),
        enabled: None,
        rank: None,
        mode: Default::default(),
        amqp: Default::default(),
        transform: None,
        stage: None,
        row: Default::default(),
    };
    let subscription = match state.registry.create_subscription(&scope, input).await {
        Ok(s) => s,
        Err(e) => {
            // Do not leave the endpoint behind (it was made just now, for this alone).
            let _ = state
                .registry
                .delete_endpoint(&Scope::All, endpoint.id)
                .await;
            return Err(e.into());
        }
    };
    let location = format!("/v1/flows/subscriptions/{}", subscription.id);
    let body = FlowSubscription {
        id: subscription.id,
        event: subscription.event,
        category: subscription.category,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Subscribes a flow's callback to an event or a category (Power Automate webhook trigger).
#[utoipa::path(post, path = "/v1/flows/subscriptions", tag = "flows", operation_id = "flow_subscribe", request_body = FlowSubscribe, responses(
    (status = 201, body = FlowSubscription, headers(("Location" = String, description = "DELETE it to unsubscribe")), links(
        ("Unsubscribe" = (operation_id = "flow_unsubscribe", parameters(("id" = "$response.body#/id")))),
    )),
    (status = 400, body = ErrorBody, description = "Invalid, or an event or category that is not cataloged (or not of the key's solutions)")))]
async fn subscribe(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<FlowSubscribe>,
) -> Result<Response, ApiError> {
    create(&state, &caller, req).await
}

/// Subscribes a flow's callback to one event (the per-event trigger of the connector).
#[utoipa::path(post, path = "/v1/flows/events/{unique_name}/subscriptions", tag = "flows", operation_id = "flow_subscribe_to_event", request_body = NotificationUrl,
    params(("unique_name" = String, Path)),
    responses((status = 201, body = FlowSubscription, headers(("Location" = String, description = "DELETE it to unsubscribe")), links(
        ("Unsubscribe" = (operation_id = "flow_unsubscribe", parameters(("id" = "$response.body#/id")))),
    )),
    (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "No such cataloged event (of the key's solutions)")))]
async fn subscribe_to_event(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(unique_name): Path<String>,
    JsonBody(req): JsonBody<NotificationUrl>,
) -> Result<Response, ApiError> {
    if !state
        .catalog
        .cataloged(&unique_name)
        .is_some_and(|e| caller.may_use(&e.solution))
    {
        return Err(ApiError::NotFound(format!(
            "no cataloged event called \"{unique_name}\""
        )));
    }
    let req = FlowSubscribe {
        event: Some(unique_name),
        category: None,
        solution: None,
        notification_url: req.notification_url,
    };
    create(&state, &caller, req).await
}

/// Ends a flow subscription: no more deliveries are made to its callback.
#[utoipa::path(delete, path = "/v1/flows/subscriptions/{id}", tag = "flows", operation_id = "flow_unsubscribe", params(("id" = SubscriptionId, Path)),
    responses((status = 204, description = "Unsubscribed"), (status = 404, body = ErrorBody)))]
async fn unsubscribe(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("no flow subscription with id \"{id}\""));
    let sub_id: SubscriptionId = id.parse().map_err(|_| not_found())?;
    let subscription = match state.registry.subscription(&caller.scope(), sub_id).await {
        Ok(s) if s.name.starts_with(FLOW_PREFIX) => s,
        Ok(_) | Err(RegistryError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    // The endpoint was made for this subscription alone, which the key may end; deleting
    // the endpoint removes both.
    state
        .registry
        .delete_endpoint(&Scope::All, subscription.endpoint_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An event a flow can trigger on.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowEvent {
    /// Its unique name (the value to subscribe with).
    pub unique_name: String,
    /// Its display name.
    pub display_name: String,
    /// What it means.
    pub description: Option<String>,
}

fn subscribable<'a>(
    state: &'a AppState,
    caller: &'a crate::auth::Principal,
) -> impl Iterator<Item = &'a EventDefinition> + 'a {
    state
        .catalog
        .categories()
        .iter()
        .filter(|c| caller.may_use(&c.solution))
        .flat_map(move |c| {
            state
                .catalog
                .events_in(&c.solution, &c.name)
                .into_iter()
                .filter(|e| e.allowed_steps != AllowedSteps::None)
        })
}

/// The events a flow can trigger on (the connector's dynamic list).
#[utoipa::path(get, path = "/v1/flows/events", tag = "flows", operation_id = "flow_events", responses((status = 200, body = Vec<FlowEvent>, links(
    ("Schema" = (operation_id = "flow_event_schema", parameters(("unique_name" = "$response.body#/0/unique_name")))),
    ("Subscribe" = (operation_id = "flow_subscribe_to_event", parameters(("unique_name" = "$response.body#/0/unique_name")))),
))))]
async fn list_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Json<Vec<FlowEvent>> {
    Json(
        subscribable(&state, &caller)
            .map(|e| FlowEvent {
                unique_name: e.unique_name.to_string(),
                display_name: e
                    .display_name
                    .clone()
                    .unwrap_or_else(|| e.unique_name.to_string()),
                description: e.description.clone(),
            })
            .collect(),
    )
}

/// The JSON Schema of what a flow receives for an event (the connector's dynamic schema).
#[utoipa::path(get, path = "/v1/flows/events/{unique_name}/schema", tag = "flows", operation_id = "flow_event_schema", params(("unique_name" = String, Path)),
    responses((status = 200, description = "JSON Schema of the callback body"), (status = 404, body = ErrorBody)))]
async fn event_params_schema(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let event = state
        .catalog
        .cataloged(&name)
        .filter(|e| caller.may_use(&e.solution))
        .ok_or_else(|| ApiError::NotFound(format!("no cataloged event called \"{name}\"")))?;
    Ok(Json(event_schema(
        event,
        &schema_url(&state.public_url, &name),
    )))
}

/// Catalog → category → table (`(none)` for unbound events) → action, as a flow designer
/// offers them.
#[utoipa::path(get, path = "/v1/flows/catalog", tag = "flows", operation_id = "flow_catalog", responses((status = 200, description = "The catalog tree")))]
async fn discover(State(state): State<AppState>, Caller(caller): Caller) -> Json<Value> {
    let catalog = &state.catalog;
    let catalogs: Vec<Value> = catalog
        .solutions()
        .iter()
        .filter(|s| caller.may_use(&s.unique_name))
        .map(|s| {
            let categories: Vec<Value> = catalog
                .categories()
                .iter()
                .filter(|c| c.solution == s.unique_name)
                .map(|c| {
                    let mut tables: Map<String, Value> = Map::new();
                    for e in catalog.events_in(&s.unique_name, &c.name) {
                        let table = if e.binding == "global" { "(none)".to_owned() } else { e.binding.clone() };
                        let action = json!({
                            "unique_name": e.unique_name,
                            "display_name": e.display_name.as_deref().unwrap_or(&e.unique_name),
                            "description": e.description,
                        });
                        tables.entry(table).or_insert_with(|| json!([])).as_array_mut().expect("an array").push(action);
                    }
                    let tables: Vec<Value> = tables.into_iter().map(|(table, actions)| json!({"table": table, "actions": actions})).collect();
                    json!({"name": c.name, "display_name": c.name, "description": c.description, "tables": tables})
                })
                .collect();
            json!({
                "catalog": s.unique_name,
                "display_name": s.display_name.as_deref().unwrap_or(&s.unique_name),
                "categories": categories,
            })
        })
        .collect();
    Json(json!({ "catalogs": catalogs }))
}

/// The Power Automate custom connector definition (OpenAPI 2.0): a webhook trigger per
/// cataloged event, and one dynamic trigger over all of them. Public, so a connector can be
/// imported from its URL.
#[utoipa::path(get, path = "/v1/flows/connector.json", tag = "flows", operation_id = "flow_connector",
    responses((status = 200, description = "Swagger 2.0 connector definition, with a trigger per event of the key's solutions")))]
async fn connector(State(state): State<AppState>, Caller(caller): Caller) -> Json<Value> {
    Json(super::connector::definition(&state, &caller.scope()))
}
