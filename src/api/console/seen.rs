//! The endpoints a key sees, as the console's pages list and name them (the registry's rule).

use std::collections::HashMap;

use super::pages::PageError;
use super::session::Session;
use crate::api::AppState;
use crate::model::{Endpoint, EndpointId, Scope};

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
