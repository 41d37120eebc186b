//! The HTTP edge, every route of it: state, router, authentication, request bodies, views,
//! errors, and the OpenAPI document generated from the route annotations (served at
//! `/openapi.json`, so it cannot drift from the code). Handlers parse, call the ingestor, the
//! registry or the store, and map errors; the rules live in those.

mod body;
mod catalog;
mod connector;
mod dataverse;
mod deliveries;
mod endpoints;
mod error;
mod events;
mod flows;
mod ops;
mod subscriptions;
pub mod views;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use body::{read_json, JsonBody};
pub use error::{ApiError, ErrorBody};
pub use events::{Accepted, MAX_BATCH};

use crate::auth::{ApiKeys, Principal};
use crate::catalog::Catalog;
use crate::ingest::Ingestor;
use crate::registry::Registry;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The catalog.
    pub catalog: Catalog,
    /// The store (reads of events and deliveries, retries and replays).
    pub store: Arc<dyn Store>,
    /// Endpoints and subscriptions.
    pub registry: Registry,
    /// Ingestion.
    pub ingestor: Arc<Ingestor>,
    /// API keys.
    pub keys: ApiKeys,
    /// Base URL for links.
    pub public_url: String,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// An authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Caller(state.keys.authenticate(header)?))
    }
}

/// An authenticated caller allowed to administer.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        if !p.admin {
            return Err(ApiError::Forbidden(format!(
                "the API key \"{}\" may not administer Herald",
                p.name
            )));
        }
        Ok(Admin(p))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Cataloged business events, delivered to Azure Service Bus, Event Hubs and signed webhooks."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole API as a router, plus its OpenAPI document.
pub fn app(state: AppState) -> Router {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(events::router())
        .merge(catalog::router())
        .merge(endpoints::router())
        .merge(subscriptions::router())
        .merge(deliveries::router())
        .merge(flows::router())
        .merge(dataverse::router())
        .merge(ops::router())
        .split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
