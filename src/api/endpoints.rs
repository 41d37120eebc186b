//! `/v1/endpoints`: create, list, get, replace and delete endpoints, and rotate their signing
//! secrets. Secret values are write-only: a generated one is shown once, in the answer that
//! created it. The rules are the registry's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path::{PathId, PathIds};
use super::views::EndpointView;
use super::{Admin, AdminRefusals, ApiError, AppState, ErrorBody, JsonBody};
use crate::model::{EndpointId, Scheme, Scope, SecretId};
use crate::registry::EndpointInput;

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, replace, delete))
        .routes(routes!(add_secret))
        .routes(routes!(retire_secret))
        .routes(routes!(public_keys))
}

/// The answer to creating an endpoint or adding a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    pub endpoint: EndpointView,
    /// A secret Herald generated: shown this once, never again. Absent when you gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
}

/// A secret to add to an endpoint (rotation: old and new sign side by side until the old is
/// retired). Give `secret`, or `scheme` to have Herald generate one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// `whsec_…` (v1) or `whsk_…` (v1a, the 32-byte ed25519 seed).
    #[serde(default)]
    #[schema(
        pattern = r"^(?:whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/][AQgw]==)|whsk_(?:[A-Za-z0-9+/]{4}){10}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$"
    )]
    pub secret: Option<String>,
    /// The scheme of a secret Herald generates (default `v1`): a `whsec_` is shown once in
    /// the answer; a `whsk_` never is (its public key is in the endpoint's `secrets`).
    #[serde(default)]
    pub scheme: Option<Scheme>,
}

/// An endpoint's ed25519 public keys, for receivers to verify `v1a` signatures with.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeys {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Every active `v1a` key, newest last; during a rotation both sign each request.
    pub keys: Vec<PublicKeyView>,
}

/// One public key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKeyView {
    /// The secret's id.
    pub id: SecretId,
    /// `whpk_<base64 of 32 bytes>`.
    pub public_key: String,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// An endpoint's ed25519 public keys (`v1a`). Public: receivers fetch them without a key.
#[utoipa::path(get, path = "/v1/endpoints/{id}/public-keys", tag = "endpoints", operation_id = "get_endpoint_public_keys",
    params(("id" = EndpointId, Path)), security(()),
    responses((status = 200, body = PublicKeys), (status = 404, body = ErrorBody)))]
async fn public_keys(
    State(state): State<AppState>,
    PathId(id, _): PathId<EndpointId>,
) -> Result<Json<PublicKeys>, ApiError> {
    // Public keys are public: whoever knows the endpoint's id may verify with them.
    let endpoint = state.registry.endpoint(&Scope::All, id).await?;
    let keys = match &endpoint.settings {
        crate::model::DestinationSettings::Webhook(w) => w
            .secrets
            .iter()
            .filter_map(|s| {
                Some(PublicKeyView {
                    id: s.id,
                    public_key: s.secret.public_key()?.to_string(),
                    created_at: s.created_at,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Json(PublicKeys {
        endpoint_id: endpoint.id,
        keys,
    }))
}

/// An endpoint's body: one JSON object whose `kind` says which fields apply; a wrong or
/// unknown field is named in the `400`.
struct EndpointBody(EndpointInput);

impl axum::extract::FromRequest<AppState> for EndpointBody {
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let JsonBody(fields) =
            JsonBody::<serde_json::Map<String, serde_json::Value>>::from_request(req, state)
                .await?;
        EndpointInput::from_json(fields)
            .map(EndpointBody)
            .map_err(|e| crate::registry::RegistryError::from(e).into())
    }
}

/// Creates an endpoint.
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints", operation_id = "create_endpoint", request_body = EndpointInput, responses(
    (status = 201, body = EndpointCreated, links(
        ("GetEndpoint" = (operation_id = "get_endpoint", parameters(("id" = "$response.body#/endpoint/id")))),
        ("ReplaceEndpoint" = (operation_id = "replace_endpoint", parameters(("id" = "$response.body#/endpoint/id")))),
        ("DeleteEndpoint" = (operation_id = "delete_endpoint", parameters(("id" = "$response.body#/endpoint/id")))),
        ("AddSecret" = (operation_id = "add_endpoint_secret", parameters(("id" = "$response.body#/endpoint/id")))),
        ("RetireSecret" = (operation_id = "retire_endpoint_secret", parameters(
            ("id" = "$response.body#/endpoint/id"), ("secret_id" = "$response.body#/endpoint/secrets/0/id")))),
        ("Subscribe" = (operation_id = "create_subscription", request_body = json!({"endpoint": "$response.body#/endpoint/id", "event": "contoso_CustomerPurchase"}))),
    )),
    (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "The name is taken"), AdminRefusals))]
async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    EndpointBody(input): EndpointBody,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let (endpoint, generated_secret) = state
        .registry
        .create_endpoint(&caller.scope(), input)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: (&endpoint).into(),
            generated_secret,
        }),
    ))
}

/// Lists endpoints.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", operation_id = "list_endpoints", responses(
    (status = 200, body = Vec<EndpointView>, links(
        ("GetEndpoint" = (operation_id = "get_endpoint", parameters(("id" = "$response.body#/0/id")))),
    )),
    AdminRefusals))]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    let endpoints = state.registry.endpoints(&caller.scope()).await?;
    Ok(Json(endpoints.iter().map(EndpointView::from).collect()))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/endpoints/{id}", tag = "endpoints", operation_id = "get_endpoint", params(("id" = EndpointId, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), AdminRefusals))]
async fn get_one(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<EndpointId>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(
        (&state.registry.endpoint(&caller.scope(), id).await?).into(),
    ))
}

/// Replaces an endpoint's settings (secrets and credentials stay unless given).
#[utoipa::path(put, path = "/v1/endpoints/{id}", tag = "endpoints", operation_id = "replace_endpoint", params(("id" = EndpointId, Path)), request_body = EndpointInput,
    responses((status = 200, body = EndpointView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The new name is taken"), AdminRefusals))]
async fn replace(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<EndpointId>,
    EndpointBody(input): EndpointBody,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(
        (&state
            .registry
            .replace_endpoint(&caller.scope(), id, input)
            .await?)
            .into(),
    ))
}

/// Deletes an endpoint, its subscriptions, and cancels their unfinished deliveries.
#[utoipa::path(delete, path = "/v1/endpoints/{id}", tag = "endpoints", operation_id = "delete_endpoint", params(("id" = EndpointId, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), AdminRefusals))]
async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<EndpointId>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_endpoint(&caller.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a signing secret (rotation: both sign until the old one is retired).
#[utoipa::path(post, path = "/v1/endpoints/{id}/secrets", tag = "endpoints", operation_id = "add_endpoint_secret", params(("id" = EndpointId, Path)), request_body = SecretInput,
    responses((status = 201, body = EndpointCreated, links(
        ("RetireSecret" = (operation_id = "retire_endpoint_secret", parameters(
            ("id" = "$response.body#/endpoint/id"), ("secret_id" = "$response.body#/endpoint/secrets/0/id")))),
    )),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "Not a webhook endpoint, or it has as many secrets as it may"), AdminRefusals))]
async fn add_secret(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathId(id, _): PathId<EndpointId>,
    JsonBody(input): JsonBody<SecretInput>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let (endpoint, generated_secret) = state
        .registry
        .add_secret(&caller.scope(), id, input.secret.as_deref(), input.scheme)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: (&endpoint).into(),
            generated_secret,
        }),
    ))
}

/// Retires a signing secret.
#[utoipa::path(delete, path = "/v1/endpoints/{id}/secrets/{secret_id}", tag = "endpoints", operation_id = "retire_endpoint_secret",
    params(("id" = EndpointId, Path), ("secret_id" = SecretId, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not a webhook endpoint, or its last secret"), AdminRefusals))]
async fn retire_secret(
    State(state): State<AppState>,
    Admin(caller): Admin,
    PathIds(id, secret_id, _): PathIds<EndpointId, SecretId>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(
        (&state
            .registry
            .retire_secret(&caller.scope(), id, secret_id)
            .await?)
            .into(),
    ))
}
