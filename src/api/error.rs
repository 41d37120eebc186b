//! The one error type of the HTTP edge: maps every failure to a status code and the JSON
//! shape `{"error": {"code", "message", "details"}}`, logs server errors once, and never
//! puts internals or secrets in the answer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::catalog::ParamProblem;
use crate::ingest::IngestError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `invalid_parameters`.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// One entry per offending parameter or field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ParamProblem>,
}

/// What every route that needs an admin key may answer besides its own answers.
#[derive(utoipa::IntoResponses)]
pub enum AdminRefusals {
    /// 401.
    #[response(status = 401, description = "Missing or unknown API key")]
    Unauthorized(ErrorBody),
    /// 403.
    #[response(status = 403, description = "The API key may not administer Herald")]
    Forbidden(ErrorBody),
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with per-parameter details.
    #[error("{message}")]
    Invalid {
        /// Code.
        code: &'static str,
        /// Message.
        message: String,
        /// Details.
        details: Vec<ParamProblem>,
    },
    /// 401.
    #[error(transparent)]
    Unauthorized(AuthError),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 410: what was asked for was (or may have been) removed by the retention policy.
    #[error("{0}")]
    Pruned(String),
    /// 413.
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// 415.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 502: a synchronous step could not be called, so the event was not accepted.
    #[error("{0}")]
    StepUnavailable(String),
    /// 502: the synchronous steps did not set a required response property, so the event
    /// was not accepted; the details name each.
    #[error("{message}")]
    ResponseIncomplete {
        /// Message.
        message: String,
        /// One entry per missing property.
        details: Vec<ParamProblem>,
    },
    /// 408: the body came too slowly.
    #[error("the request body took longer than server.body_timeout to arrive")]
    BodyTimeout,
    /// 429: too many requests with wrong API keys from this client.
    #[error(
        "too many requests with a wrong API key from this address; try again after Retry-After"
    )]
    TooManyFailures(std::time::Duration),
    /// 503: the store cannot take writes right now.
    #[error("the store is unavailable; try again shortly")]
    Unavailable(#[source] StoreError),
    /// 500.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ApiError {
    /// A 400 about one field.
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        ApiError::Invalid {
            code: "invalid_request",
            message: format!("`{field}` {problem}"),
            details: vec![ParamProblem {
                parameter: field.to_owned(),
                problem,
            }],
        }
    }
}

impl ApiError {
    /// The answer for a `what` with id `id` (made at `made`, unix ms) that was not found:
    /// `410 pruned` when pruning has removed rows of its kind made as late as it
    /// (`horizon`), else `404`.
    pub fn missing(
        what: &str,
        id: &str,
        made: Option<i64>,
        horizon: Option<time::OffsetDateTime>,
    ) -> Self {
        match (made, horizon) {
            (Some(made), Some(horizon)) if made <= crate::store::rows::millis(horizon) => {
                ApiError::Pruned(format!(
                    "no {what} with id \"{id}\": it was made before {}, and {what}s up to then may have been removed by the retention policy (see [retention] in the configuration)",
                    horizon
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_else(|_| horizon.to_string())
                ))
            }
            _ => ApiError::NotFound(format!("no {what} with id \"{id}\"")),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Throttled(wait) => ApiError::TooManyFailures(wait),
            other => ApiError::Unauthorized(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            e if e.is_transient() => ApiError::Unavailable(e),
            other => ApiError::Internal(other),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid { field, problem } => ApiError::Invalid {
                code: "invalid_request",
                message: format!("`{field}` {problem}"),
                details: vec![ParamProblem {
                    parameter: field,
                    problem,
                }],
            },
            RegistryError::NotFound(what) => ApiError::NotFound(what),
            RegistryError::Conflict(what) => ApiError::Conflict(what),
            RegistryError::Forbidden(what) => ApiError::Forbidden(what),
            RegistryError::Store(e) => e.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::UnknownEvent(_) | IngestError::Disabled(_) => {
                ApiError::NotFound(e.to_string())
            }
            IngestError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            IngestError::Invalid { ref problems, .. } => ApiError::Invalid {
                code: "invalid_parameters",
                message: e.to_string(),
                details: problems.clone(),
            },
            IngestError::Vetoed { .. } => ApiError::Invalid {
                code: "cancelled_by_step",
                message: e.to_string(),
                details: vec![],
            },
            IngestError::StepFailed { .. } | IngestError::StepUnreachable { .. } => {
                ApiError::StepUnavailable(e.to_string())
            }
            IngestError::StepAnswerInvalid { ref problems, .. } => ApiError::Invalid {
                code: "invalid_step_answer",
                message: e.to_string(),
                details: problems.clone(),
            },
            IngestError::ResponseIncomplete { ref missing, .. } => ApiError::ResponseIncomplete {
                message: e.to_string(),
                details: missing.clone(),
            },
            IngestError::TooDeep { .. } => ApiError::Invalid {
                code: "depth_exceeded",
                message: e.to_string(),
                details: vec![],
            },
            IngestError::BadDepth { header } => ApiError::Invalid {
                code: "invalid_request",
                message: e.to_string(),
                details: vec![ParamProblem {
                    parameter: header.to_owned(),
                    problem: format!(
                        "must be a whole number from 1 to {}",
                        crate::ingest::DEPTH_CAP
                    ),
                }],
            },
            IngestError::NotAnObject
            | IngestError::BadIdempotencyKey
            | IngestError::BadCorrelationId => ApiError::Invalid {
                code: "invalid_request",
                message: e.to_string(),
                details: vec![],
            },
            IngestError::KeyReused { .. } => ApiError::Conflict(e.to_string()),
            IngestError::Store(e) => e.into(),
        }
    }
}

impl ApiError {
    /// The status and the error document of this error.
    pub fn parts(&self) -> (StatusCode, ErrorDetail) {
        let (status, code) = match self {
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, *code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Pruned(_) => (StatusCode::GONE, "pruned"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::StepUnavailable(_) => (StatusCode::BAD_GATEWAY, "step_unavailable"),
            ApiError::ResponseIncomplete { .. } => (StatusCode::BAD_GATEWAY, "response_incomplete"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::TooManyFailures(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let details = match self {
            ApiError::Invalid { details, .. } | ApiError::ResponseIncomplete { details, .. } => {
                details.clone()
            }
            _ => Vec::new(),
        };
        (
            status,
            ErrorDetail {
                code,
                message: self.to_string(),
                details,
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(e) | ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let (status, error) = self.parts();
        let mut response = (status, Json(ErrorBody { error })).into_response();
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::TooManyFailures(wait) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
            }
            ApiError::BodyTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// `axum::extract::Query` whose rejections answer in the API's error shape.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::Invalid {
            code: "invalid_query",
            message: rejection.body_text(),
            details: vec![],
        }
    }
}
