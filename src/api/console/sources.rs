//! Sources: each with its state, position, lag, the WAL its slot keeps, counts and last
//! error, as `GET /v1/sources` answers it; admin keys only, as there.

use axum::extract::State;
use axum::response::Response;

use super::pages::{render, Frame};
use super::session::Session;
use crate::api::AppState;

/// The sources page.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let sources = session
        .principal
        .admin
        .then(|| state.sources.views_for(&session.principal.scope()));
    render(
        "sources.html",
        minijinja::context! {
            frame => Frame::of(&session, "sources"),
            sources => sources,
        },
    )
}
