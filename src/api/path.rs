//! Ids in a route's path, typed at the edge: a handler gets an [`EndpointId`], never text to
//! parse later. Text that is not such an id answers `404` as an id of nothing would
//! ("no endpoint with id …"), so a malformed id tells nothing a well-formed one would not.
//!
//! [`EndpointId`]: crate::model::EndpointId

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::ApiError;
use crate::model::PrefixedId;

/// The one id in a route's path.
#[derive(Debug, Clone, Copy)]
pub struct PathId<T>(pub T);

/// The two ids in a route's path, in order (an endpoint and one of its secrets).
#[derive(Debug, Clone, Copy)]
pub struct PathIds<A, B>(pub A, pub B);

/// `raw` as an id of `T`, or the `404` of an id of nothing.
pub fn id<T: PrefixedId>(raw: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no {} with id \"{raw}\"", T::KIND)))
}

impl<T: PrefixedId + Send, S: Send + Sync> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::NotFound(e.body_text()))?;
        id(&raw).map(PathId)
    }
}

impl<A, B, S> FromRequestParts<S> for PathIds<A, B>
where
    A: PrefixedId + Send,
    B: PrefixedId + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::NotFound(e.body_text()))?;
        Ok(PathIds(id(&a)?, id(&b)?))
    }
}
