//! Plug-ins: each with its versions (size, hash, when pushed), where it is used, and what its
//! versions did on this instance (executions, failures, mean, p50 and p99 time, fuel, the last
//! failure). Read from the registry as `GET /v1/plugins` answers it; admin keys only, as
//! there.

use axum::extract::State;
use axum::response::Response;

use super::pages::{render, Frame};
use super::session::Session;
use crate::api::AppState;

/// The plug-ins page.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let plugins = if session.principal.admin {
        match state.registry.plugins(&session.principal.scope()).await {
            Ok(plugins) => Some(plugins),
            Err(e) => {
                tracing::warn!(error = %e, "the plug-ins page could not read the plug-ins");
                None
            }
        }
    } else {
        None
    };
    render(
        "plugins.html",
        minijinja::context! {
            frame => Frame::of(&session, "plugins"),
            plugins => plugins,
        },
    )
}
