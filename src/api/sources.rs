//! `/v1/sources`: what this instance's sources (an application's PostgreSQL, a Dataverse
//! environment) are doing — state, position, lag, the WAL their slot keeps, the last error;
//! admin keys only, and only the sources whose every solution the key covers. And
//! `/v1/sources/{name}/events`, which a Dataverse environment registers as a webhook service
//! endpoint: it authenticates as Dataverse does, not with an API key.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::read_json;
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody};
use crate::sources::SourceView;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(dataverse_post))
}

/// What a Dataverse post became.
#[derive(Debug, Serialize, ToSchema)]
pub struct TakenView {
    /// The event's id.
    pub id: String,
    /// The cataloged event it is.
    pub event: String,
    /// Whether Dataverse sent it before (the same `RequestId`): nothing new was stored.
    pub replayed: bool,
}

/// Takes what a Dataverse environment's webhook service endpoint posts: the
/// `RemoteExecutionContext` of a Create, Update or Delete of a cataloged table (the table's
/// event, with `Target` and the first pre- and post-image) or of a custom message (the
/// cataloged event of that name). Authenticated as the endpoint is registered: `WebhookKey`
/// (`?code=`), `HttpHeader` or `HttpQueryString`; a post Dataverse sends again (same
/// `RequestId`) is stored once.
#[utoipa::path(post, path = "/v1/sources/{name}/events", tag = "sources", operation_id = "take_dataverse_post",
    security(()),
    params(("name" = String, Path, description = "The Dataverse source's name")),
    request_body(content = Object, description = "A RemoteExecutionContext, as Dataverse posts it"),
    responses((status = 200, body = TakenView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "Not this source's key (or no such source)"),
        (status = 415, body = ErrorBody)))]
async fn dataverse_post(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TakenView>, ApiError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    // An unknown source and a wrong key answer alike: the answer does not say which exist.
    let source = state
        .sources
        .dataverse(&name)
        .filter(|s| s.authorized(|h| headers.get(h).and_then(|v| v.to_str().ok()), &pairs))
        .ok_or_else(|| ApiError::Unauthorized(crate::auth::AuthError::SourceKey))?;
    let context: Value = read_json(&headers, body, state.max_body_bytes).await?;
    let taken = async {
        let submission = crate::sources::dataverse::submission(
            &state.catalog,
            source.solution(),
            &name,
            &context,
        )
        .map_err(|e| ApiError::field(e.field, e.problem))?;
        let event = submission.name.clone();
        let accepted = state
            .ingestor
            .submit(
                &source.caller(),
                submission,
                &crate::telemetry::Tracing::none(),
            )
            .await?;
        Ok::<_, ApiError>(TakenView {
            id: accepted.id.to_string(),
            event,
            replayed: accepted.replayed,
        })
    }
    .await;
    source.status.update(|v| match &taken {
        Ok(t) if t.replayed => v.replayed += 1,
        Ok(_) => v.changes += 1,
        Err(e) => {
            v.refused += 1;
            v.last_error = Some(e.to_string());
        }
    });
    taken.map(Json)
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
