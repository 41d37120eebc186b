//! `/v1/catalog`: the solutions, categories and cataloged events a key may see, each event
//! with its JSON Schema.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::auth::Principal;
use crate::catalog::{event_schema, schema_url};
use crate::model::EventDefinition;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(event))
        .routes(routes!(schema))
}

/// The catalog, solution by solution.
#[derive(Serialize, ToSchema)]
struct CatalogView {
    solutions: Vec<SolutionView>,
}

#[derive(Serialize, ToSchema)]
struct SolutionView {
    unique_name: String,
    display_name: Option<String>,
    publisher_prefix: String,
    categories: Vec<CategoryView>,
}

#[derive(Serialize, ToSchema)]
struct CategoryView {
    name: String,
    description: Option<String>,
    events: Vec<EventDefinition>,
}

/// An event definition with its JSON Schema.
#[derive(Serialize, ToSchema)]
struct CatalogEvent {
    #[serde(flatten)]
    definition: EventDefinition,
    /// JSON Schema (draft 2020-12) of the request parameters.
    #[schema(value_type = Object)]
    schema: Value,
}

/// Lists the catalog: solutions → categories → events.
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog", operation_id = "get_catalog", responses(
    (status = 200, body = CatalogView)))]
async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Json<CatalogView> {
    let catalog = &state.catalog;
    let solutions = catalog
        .solutions()
        .iter()
        .filter(|s| caller.may_use(&s.unique_name))
        .map(|s| SolutionView {
            unique_name: s.unique_name.clone(),
            display_name: s.display_name.clone(),
            publisher_prefix: s.publisher_prefix.clone(),
            categories: catalog
                .categories()
                .iter()
                .filter(|c| c.solution == s.unique_name)
                .map(|c| CategoryView {
                    name: c.name.clone(),
                    description: c.description.clone(),
                    events: catalog
                        .events_in(&s.unique_name, &c.name)
                        .into_iter()
                        .cloned()
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Json(CatalogView { solutions })
}

/// One cataloged event: its definition and JSON Schema.
#[utoipa::path(get, path = "/v1/catalog/events/{unique_name}", tag = "catalog", operation_id = "get_catalog_event",
    params(("unique_name" = String, Path, description = "The event's unique name")),
    responses((status = 200, body = CatalogEvent), (status = 404, body = ErrorBody)))]
async fn event(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<CatalogEvent>, ApiError> {
    let definition = find(&state, &caller, &name)?;
    let schema = event_schema(definition, &schema_url(&state.public_url, &name));
    Ok(Json(CatalogEvent {
        definition: definition.clone(),
        schema,
    }))
}

/// The JSON Schema of an event's parameters (the CloudEvents `dataschema`), for a key of the
/// event's solution: what the catalog lists only to such keys is read only by them.
#[utoipa::path(get, path = "/v1/catalog/events/{unique_name}/schema", tag = "catalog", operation_id = "get_event_schema",
    params(("unique_name" = String, Path, description = "The event's unique name")),
    responses((status = 200, description = "JSON Schema draft 2020-12"), (status = 404, body = ErrorBody)))]
async fn schema(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let definition = find(&state, &caller, &name)?;
    Ok(Json(event_schema(
        definition,
        &schema_url(&state.public_url, &name),
    )))
}

/// The cataloged event `name` of a solution `caller` uses.
fn find<'a>(
    state: &'a AppState,
    caller: &Principal,
    name: &str,
) -> Result<&'a EventDefinition, ApiError> {
    state
        .catalog
        .cataloged(name)
        .filter(|d| caller.may_use(&d.solution))
        .ok_or_else(|| ApiError::NotFound(format!("no cataloged event called \"{name}\"")))
}
