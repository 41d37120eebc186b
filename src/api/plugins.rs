//! `/v1/plugins`: push a plug-in version (the component's bytes as `application/wasm`), list
//! plug-ins with their versions, where each is used and its statistics, and remove one
//! (refused while an endpoint runs it). Admin keys only; the rules are the registry's.

use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::QueryParams;
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody};
use crate::registry::{PluginVersionView, PluginView, PushInput};

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push, list))
        .routes(routes!(get_one, remove))
}

/// What a push names besides the bytes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PushParams {
    /// The plug-in's name: 1 to 100 letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// The solution it belongs to (its events are those it may emit); the key's only
    /// solution when absent.
    #[serde(default)]
    pub solution: Option<String>,
    /// What this version does.
    #[serde(default)]
    pub description: Option<String>,
}

/// What a push stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushedView {
    /// The plug-in's name.
    pub name: String,
    /// Its solution.
    pub solution: String,
    /// The version the bytes have.
    pub version: PluginVersionView,
    /// `false` when the latest version already had these bytes (nothing was stored).
    pub created: bool,
}

/// Pushes a version of a plug-in: a WebAssembly component of the WIT world
/// `herald:plugin@1.0.0`, as the body (`application/wasm` or `application/octet-stream`). It
/// is checked and compiled before it is stored; every instance runs it from the store.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", operation_id = "push_plugin", params(PushParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component's bytes (`application/wasm` is accepted too)"),
    responses((status = 201, body = PushedView, description = "A new version", links(
            ("GetPlugin" = (operation_id = "get_plugin", parameters(("name" = "$response.body#/name")))),
            ("DeletePlugin" = (operation_id = "delete_plugin", parameters(("name" = "$response.body#/name")))),
        )),
        (status = 200, body = PushedView, description = "The latest version already had these bytes"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "The name belongs to another solution"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), AdminRefusals))]
async fn push(
    State(state): State<AppState>,
    Admin(caller): Admin,
    QueryParams(params): QueryParams<PushParams>,
    request: Request,
) -> Result<(StatusCode, Json<PushedView>), ApiError> {
    let essence = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        essence.as_deref(),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = state.registry.plugin_upload_limit();
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            if super::edge::timed_out(&e) {
                ApiError::BodyTimeout
            } else {
                ApiError::TooLarge(limit)
            }
        })?;
    let pushed = state
        .registry
        .push_plugin(
            &caller.scope(),
            PushInput {
                name: params.name,
                solution: params.solution,
                description: params.description.unwrap_or_default(),
                bytes: bytes.to_vec(),
            },
        )
        .await?;
    let status = if pushed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PushedView {
            name: pushed.version.name.clone(),
            solution: pushed.version.solution.clone(),
            version: (&pushed.version).into(),
            created: pushed.created,
        }),
    ))
}

/// Lists the plug-ins of the key's solutions.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", operation_id = "list_plugins",
    responses((status = 200, body = Vec<PluginView>), AdminRefusals))]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Vec<PluginView>>, ApiError> {
    Ok(Json(state.registry.plugins(&caller.scope()).await?))
}

/// One plug-in: its versions (hash, size, exports), the endpoints that run it, and what its
/// versions did on this instance.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins", operation_id = "get_plugin",
    params(("name" = String, Path, description = "The plug-in's name")),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    Ok(Json(state.registry.plugin(&caller.scope(), &name).await?))
}

/// Removes a plug-in and all its versions; refused while an endpoint runs it.
#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins", operation_id = "delete_plugin",
    params(("name" = String, Path, description = "The plug-in's name")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "An endpoint runs it"), AdminRefusals))]
async fn remove(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.remove_plugin(&caller.scope(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
