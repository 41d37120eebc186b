//! The endpoints a key sees, as the console's pages list and name them (the registry's rule),
//! and the ids in a page's path, typed.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::pages::PageError;
use super::session::Session;
use crate::api::AppState;
use crate::model::{Endpoint, EndpointId, PrefixedId, Scope};

/// The names of the endpoints `scope` sees, by id (deleted endpoints are missing).
pub async fn names(
    state: &AppState,
    scope: &Scope,
) -> Result<HashMap<EndpointId, String>, PageError> {
    Ok(state
        .registry
        .endpoints(scope)
        .await?
        .into_iter()
        .map(|e| (e.id, e.name))
        .collect())
}

/// The endpoints `session` may see: those its key's scope sees (the registry's rule).
pub async fn visible(state: &AppState, session: &Session) -> Result<Vec<Endpoint>, PageError> {
    Ok(state.registry.endpoints(&session.principal.scope()).await?)
}

/// The one id in a page's path, typed; text that is not such an id is the page of an id of
/// nothing (`404`).
pub struct PageId<T>(pub T);

/// The two ids in a page's path, in order.
pub struct PageIds<A, B>(pub A, pub B);

/// `raw` as an id of `T`, or the page of an id of nothing.
fn id<T: PrefixedId>(raw: &str) -> Result<T, PageError> {
    raw.parse()
        .map_err(|_| PageError::not_found(format!("No {} with id \"{raw}\".", T::KIND)))
}

impl<T: PrefixedId + Send, S: Send + Sync> FromRequestParts<S> for PageId<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| PageError::not_found(e.body_text()))?;
        id(&raw).map(PageId)
    }
}

impl<A, B, S> FromRequestParts<S> for PageIds<A, B>
where
    A: PrefixedId + Send,
    B: PrefixedId + Send,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| PageError::not_found(e.body_text()))?;
        Ok(PageIds(id(&a)?, id(&b)?))
    }
}
