//! The Dataverse-compatible invocation route: `POST /api/data/v9.2/{unique_name}`, as a
//! point-of-sale or ERP written against Dataverse calls a Custom API. Same validation and
//! storage as Herald's own route; success is `204 No Content` (an external event has no
//! response properties) and errors come in Dataverse's OData shape
//! `{"error": {"code": "0x…", "message": "…"}}` with the status Dataverse uses.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::ingest::{read_json, IngestError, Submission};
use crate::store::IngestOutcome;

/// Dataverse's error codes for the mistakes Herald can report (from Dataverse's web service
/// error code list).
mod code {
    /// "Resource not found for the segment '…'": unknown action, or an inactive custom process action.
    pub const RESOURCE_NOT_FOUND: &str = "0x8006088a";
    /// InvalidArgument: a parameter is missing or wrong.
    pub const INVALID_ARGUMENT: &str = "0x80040203";
    /// "Error identified in Payload provided by the user": the body is not what was expected.
    pub const PAYLOAD: &str = "0x80048d19";
    /// AccessTokenExpired: "The requested resource requires authentication."
    pub const AUTHENTICATION: &str = "0x8005F101";
    /// PrivilegeDenied.
    pub const PRIVILEGE_DENIED: &str = "0x80040220";
    /// DuplicateRecord (an idempotency key reused with another request).
    pub const DUPLICATE: &str = "0x80040237";
    /// ISVAborted: a synchronous step (plug-in or webhook) cancelled the operation.
    pub const PLUGIN_ABORTED: &str = "0x80040265";
    /// Unexpected (the store is unavailable).
    pub const UNEXPECTED: &str = "0x80040216";
}

/// The routes of this module, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(invoke))
}

/// An error in Dataverse's shape.
struct DataverseError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for DataverseError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        r.headers_mut()
            .insert("odata-version", HeaderValue::from_static("4.0"));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
        }
        r
    }
}

impl From<ApiError> for DataverseError {
    fn from(e: ApiError) -> Self {
        let (status, detail) = e.parts();
        let code = match status {
            StatusCode::NOT_FOUND => code::RESOURCE_NOT_FOUND,
            StatusCode::UNAUTHORIZED => code::AUTHENTICATION,
            StatusCode::FORBIDDEN => code::PRIVILEGE_DENIED,
            StatusCode::CONFLICT => code::DUPLICATE,
            StatusCode::BAD_REQUEST if detail.code == "invalid_parameters" => {
                code::INVALID_ARGUMENT
            }
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => code::PAYLOAD,
            _ => code::UNEXPECTED,
        };
        let message = if detail.details.is_empty() {
            detail.message
        } else {
            // Dataverse reports one message; name every offending parameter in it.
            detail
                .details
                .iter()
                .map(|d| format!("{}: {}", d.parameter, d.problem))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if status.is_server_error() {
            tracing::error!(%message, "Dataverse-compatible invocation failed");
        }
        DataverseError {
            status,
            code,
            message,
        }
    }
}

/// Invokes a cataloged event as Dataverse invokes a Custom API action.
#[utoipa::path(post, path = "/api/data/v9.2/{unique_name}", tag = "dataverse",
    params(
        ("unique_name" = String, Path, description = "The Custom API (event) unique name"),
        ("OData-Version" = Option<String>, Header, description = "4.0"),
    ),
    request_body(content = Object, description = "The request parameters", content_type = "application/json"),
    responses(
        (status = 204, description = "Stored; deliveries will follow"),
        (status = 400, description = "Dataverse error, code 0x80040203 or 0x80048d19"),
        (status = 401, description = "Dataverse error 0x8005F101"),
        (status = 404, description = "Dataverse error 0x8006088a: unknown or inactive action"),
    ))]
async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&state, name, &headers, body).await {
        Ok(()) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert("odata-version", HeaderValue::from_static("4.0"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    name: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), DataverseError> {
    let auth = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = state.keys.authenticate(auth).map_err(ApiError::from)?;
    if let Some(v) = headers.get("odata-version").and_then(|v| v.to_str().ok()) {
        if v.trim() != "4.0" {
            return Err(DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PAYLOAD,
                message: format!("The OData-Version '{v}' is not supported; use 4.0."),
            });
        }
    }
    if state.catalog.cataloged(&name).is_none() {
        return Err(DataverseError {
            status: StatusCode::NOT_FOUND,
            code: code::RESOURCE_NOT_FOUND,
            message: format!("Resource not found for the segment '{name}'."),
        });
    }
    let params: Value = read_json(headers, body, state.max_body_bytes).await?;
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let submission = Submission {
        name: name.clone(),
        params,
        idempotency_key: header("idempotency-key"),
        correlation_id: header("x-ms-correlation-request-id")
            .or_else(|| header("x-correlation-id")),
    };
    let event = state
        .ingestor
        .admit(&caller, submission)
        .await
        .map_err(|e| match e {
            // As Dataverse answers when a synchronous plug-in or webhook cancels the operation.
            IngestError::Vetoed { message, .. } => DataverseError {
                status: StatusCode::BAD_REQUEST,
                code: code::PLUGIN_ABORTED,
                message,
            },
            IngestError::Disabled(_) => DataverseError {
                status: StatusCode::NOT_FOUND,
                code: code::RESOURCE_NOT_FOUND,
                message: format!("Resource not found for the segment '{name}'."),
            },
            other => ApiError::from(other).into(),
        })?;
    let outcome = state
        .ingestor
        .store(vec![event])
        .await
        .map_err(ApiError::from)?;
    match outcome.first() {
        Some(IngestOutcome::KeyReused { id }) => Err(ApiError::Conflict(format!(
            "this Idempotency-Key was used for event {id} with a different request"
        ))
        .into()),
        _ => Ok(()),
    }
}
