//! `/v1/subscriptions`: route a cataloged event, or a whole category, to an endpoint. The
//! rules are the registry's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path::PathId;
use super::views::SubscriptionView;
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody, JsonBody};
use crate::model::SubscriptionId;
use crate::registry::SubscriptionInput;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, replace, delete))
}

/// Creates a subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", operation_id = "create_subscription", request_body = SubscriptionInput, responses(
    (status = 201, body = SubscriptionView, links(
        ("GetSubscription" = (operation_id = "get_subscription", parameters(("id" = "$response.body#/id")))),
        ("ReplaceSubscription" = (operation_id = "replace_subscription", parameters(("id" = "$response.body#/id")))),
        ("DeleteSubscription" = (operation_id = "delete_subscription", parameters(("id" = "$response.body#/id")))),
    )),
    (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "The name is taken"), AdminRefusals))]
async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let subscription = state
        .registry
        .create_subscription(&caller.scope(), input)
        .await?;
    Ok((StatusCode::CREATED, Json((&subscription).into())))
}

/// Lists subscriptions.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions", operation_id = "list_subscriptions", responses(
    (status = 200, body = Vec<SubscriptionView>, links(
        ("GetSubscription" = (operation_id = "get_subscription", parameters(("id" = "$response.body#/0/id")))),
    )),
    AdminRefusals))]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    let subscriptions = state.registry.subscriptions(&caller.scope()).await?;
    Ok(Json(
        subscriptions.iter().map(SubscriptionView::from).collect(),
    ))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "get_subscription", params(("id" = SubscriptionId, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<SubscriptionId>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        (&state.registry.subscription(&caller.scope(), id).await?).into(),
    ))
}

/// Replaces a subscription (re-enabling one Herald disabled, for instance).
#[utoipa::path(put, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "replace_subscription", params(("id" = SubscriptionId, Path)), request_body = SubscriptionInput,
    responses((status = 200, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The new name is taken"), AdminRefusals))]
async fn replace(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<SubscriptionId>,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        (&state
            .registry
            .replace_subscription(&caller.scope(), id, input)
            .await?)
            .into(),
    ))
}

/// Deletes a subscription and cancels its unfinished deliveries.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "delete_subscription", params(("id" = SubscriptionId, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), AdminRefusals))]
async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<SubscriptionId>,
) -> Result<StatusCode, ApiError> {
    state
        .registry
        .delete_subscription(&caller.scope(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
