//! The operator console at `/console`: server-rendered pages (templates embedded in the
//! binary, auto-escaped), a little JavaScript for the live tail, sign-in with an API key into
//! a session kept in the store, and CSRF protection on every form. Pages call the registry,
//! the store and the ingestor, as the API's handlers do; they never call those handlers.

mod catalog;
mod charts;
mod deliveries;
mod endpoints;
mod form;
mod hour;
mod overview;
mod pages;
mod plugins;
mod rows;
mod seen;
mod session;
mod sources;
mod tail;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

pub use session::{sign_in_link, ConsoleSettings};

/// The console's routes (empty when it is turned off).
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.console.enabled {
        return Router::new();
    }
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-in/{token}", get(session::sign_in_by_link))
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/catalog", get(catalog::list))
        .route(
            "/console/catalog/{event}",
            get(catalog::event).post(catalog::send_test),
        )
        .route("/console/endpoints", get(endpoints::list))
        .route(
            "/console/endpoints/new",
            get(endpoints::new_form).post(endpoints::create),
        )
        .route("/console/endpoints/{id}", get(endpoints::one))
        .route("/console/endpoints/{id}/enable", post(endpoints::enable))
        .route("/console/endpoints/{id}/disable", post(endpoints::disable))
        .route(
            "/console/endpoints/{id}/secrets",
            post(endpoints::add_secret),
        )
        .route(
            "/console/endpoints/{id}/subscriptions",
            post(endpoints::add_subscription),
        )
        .route(
            "/console/endpoints/{id}/subscriptions/{subscription}/remove",
            post(endpoints::remove_subscription),
        )
        .route(
            "/console/endpoints/{id}/secrets/{secret}/retire",
            post(endpoints::retire_secret),
        )
        .route("/console/deliveries", get(deliveries::list))
        .route("/console/deliveries/{id}", get(deliveries::one))
        .route("/console/dead-letters", get(deliveries::dead_letters))
        .route("/console/dead-letters/replay", post(deliveries::replay))
        .route("/console/plugins", get(plugins::list))
        .route("/console/sources", get(sources::list))
        .route("/console/tail", get(tail::page))
        .route("/console/tail/stream", get(tail::stream))
        .route("/console/assets/{file}", get(pages::asset))
}
