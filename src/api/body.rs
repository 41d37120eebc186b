//! Reading JSON request bodies, the same way on every route and with the API's own errors:
//! `415` for another content type, `413` past the configured `server.max_body_bytes`, `400`
//! for bad JSON (with line and column), a body that is not a JSON object, or one of the
//! wrong shape (naming the field).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::catalog::ParamProblem;

/// Reads and parses a JSON body of at most `limit` bytes.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    // Every body Herald takes is a JSON object; serde would also build a struct from an array
    // (`[]` as "replay every dead letter"), so anything else is refused here.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Invalid {
            code: "invalid_request",
            message: "the request body must be a JSON object".into(),
            details: vec![ParamProblem {
                parameter: "body".into(),
                problem: "must be a JSON object".into(),
            }],
        });
    }
    let syntax = |e: serde_json::Error| ApiError::Invalid {
        code: "invalid_json",
        message: format!("the request body is not valid JSON: {e}"),
        details: vec![],
    };
    // The common case parses once at full speed; only a body that fails is parsed again with
    // path tracking, to name the field it fails at.
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(value),
        Err(e) if !e.is_data() => Err(syntax(e)),
        Err(_) => Err(shape_error::<T>(&bytes)),
    }
}

/// The error of a body of the wrong shape, naming the field (`filter[0].op`).
fn shape_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize::<_, T>(&mut json) {
        Ok(_) => {
            return ApiError::Invalid {
                code: "invalid_request",
                message: "the request body is not of the shape this route takes".into(),
                details: vec![],
            }
        }
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    let field = if path == "." { "body".to_owned() } else { path };
    ApiError::Invalid {
        code: "invalid_request",
        message: format!("`{field}`: {inner}"),
        details: vec![ParamProblem {
            parameter: field,
            problem: inner.to_string(),
        }],
    }
}

/// A JSON body read by [`read_json`] with the configured size limit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        read_json(&parts.headers, body, state.max_body_bytes)
            .await
            .map(JsonBody)
    }
}
