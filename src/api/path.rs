//! Ids in a route's path, typed at the edge: a handler gets an [`EndpointId`], never text to
//! parse later. Text that is not such an id answers `404` as an id of nothing would ("no
//! endpoint with id …"): the API's JSON error, or the console's page ([`Missing`]), so a
//! malformed id tells nothing a well-formed one would not.
//!
//! [`EndpointId`]: crate::model::EndpointId

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::IntoResponse;

use super::ApiError;
use crate::model::PrefixedId;

/// How a route answers an id that names nothing.
pub trait Missing: IntoResponse + Sized {
    /// The answer, saying `message`.
    fn missing(message: String) -> Self;
}

impl Missing for ApiError {
    fn missing(message: String) -> Self {
        ApiError::NotFound(message)
    }
}

/// The one id in a route's path, refused as `E` says.
#[derive(Debug, Clone, Copy)]
pub struct PathId<T, E = ApiError>(pub T, pub PhantomData<E>);

/// The two ids in a route's path, in order (an endpoint and one of its secrets).
#[derive(Debug, Clone, Copy)]
pub struct PathIds<A, B, E = ApiError>(pub A, pub B, pub PhantomData<E>);

/// `raw` as an id of `T`, or the answer to an id of nothing.
fn id<T: PrefixedId, E: Missing>(raw: &str) -> Result<T, E> {
    raw.parse()
        .map_err(|_| E::missing(format!("no {} with id \"{raw}\"", T::KIND)))
}

impl<T, E, S> FromRequestParts<S> for PathId<T, E>
where
    T: PrefixedId + Send,
    E: Missing + Send,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| E::missing(e.body_text()))?;
        Ok(PathId(id(&raw)?, PhantomData))
    }
}

impl<A, B, E, S> FromRequestParts<S> for PathIds<A, B, E>
where
    A: PrefixedId + Send,
    B: PrefixedId + Send,
    E: Missing + Send,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| E::missing(e.body_text()))?;
        Ok(PathIds(id(&a)?, id(&b)?, PhantomData))
    }
}
