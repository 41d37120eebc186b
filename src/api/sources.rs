//! `/v1/sources`: what this instance's sources (an application's PostgreSQL) are doing —
//! state, position, lag, the WAL their slot keeps, the last error. Admin keys only, and only
//! the sources whose every solution the key covers.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody};
use crate::sources::SourceView;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
}

/// Lists the sources with their state.
#[utoipa::path(get, path = "/v1/sources", tag = "sources", operation_id = "list_sources",
    responses((status = 200, body = Vec<SourceView>), AdminRefusals))]
async fn list(State(state): State<AppState>, Admin(caller): Admin) -> Json<Vec<SourceView>> {
    Json(state.sources.views_for(&caller.scope()))
}

/// One source: state, position, lag, retained WAL, counts and last error.
#[utoipa::path(get, path = "/v1/sources/{name}", tag = "sources", operation_id = "get_source",
    params(("name" = String, Path, description = "The source's name")),
    responses((status = 200, body = SourceView), (status = 404, body = ErrorBody), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> Result<Json<SourceView>, ApiError> {
    state
        .sources
        .views_for(&caller.scope())
        .into_iter()
        .find(|v| v.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no source called \"{name}\"")))
}
