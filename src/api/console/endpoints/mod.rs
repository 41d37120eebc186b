//! Endpoints of every kind (webhooks, flow callbacks, Service Bus, Event Hubs): their health,
//! success rate and attempt times over the last hour, their subscriptions and recent
//! deliveries, and, for an admin, a form that creates a webhook endpoint, enable/disable,
//! subscribing and unsubscribing, and secret rotation (a new secret is shown once, on the
//! page that made it, as the API shows it once).

mod new;
mod subscriptions;

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::charts;
use super::hour::LastHour;
use super::pages::{millis, render, Frame, PageError};
use super::session::{Acting, Posted, Session};
use crate::api::path::{PathId, PathIds};
use crate::api::views::EndpointView;
use crate::api::AppState;
use crate::model::exchange::{host_of, masked_url};
use crate::model::{Browse, Endpoint, EndpointId, EndpointKind, Scheme, SecretId};
use crate::store::health::Resume;

pub use new::{create, new_form};
pub use subscriptions::{add_subscription, remove_subscription};

/// What kind of endpoint, as operators name it.
fn kind_of(e: &Endpoint) -> &'static str {
    match e.settings.kind() {
        EndpointKind::Webhook if e.name.starts_with(crate::api::FLOW_PREFIX) => "flow callback",
        kind => kind.display_name(),
    }
}

/// Where an endpoint delivers to, with nothing secret in it; for a key that may not
/// administer, only the host.
fn target_of(e: &Endpoint, admin: bool) -> String {
    let view = EndpointView::from(e);
    let view = view.destination;
    match (view.url, view.namespace, view.entity) {
        (Some(url), _, _) if admin => masked_url(&url),
        (Some(url), _, _) => host_of(&url),
        (None, Some(ns), Some(entity)) if admin => format!("{ns}/{entity}"),
        (None, Some(ns), Some(_)) => ns,
        _ => String::new(),
    }
}

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    kind: &'static str,
    target: String,
    state: &'static str,
    attempts: u64,
    success_percent: Option<u64>,
    mean_ms: Option<u64>,
    max_ms: u64,
}

/// Every endpoint with its last hour.
pub async fn list(State(state): State<AppState>, session: Session) -> Result<Response, PageError> {
    let counts = LastHour::read(&state).await?.by_endpoint();
    let board = state.registry.health();
    let admin = session.principal.admin;
    let rows: Vec<Row> = super::seen::visible(&state, &session)
        .await?
        .iter()
        .map(|e| {
            let c = counts.get(&e.id).copied().unwrap_or_default();
            Row {
                id: e.id.to_string(),
                name: e.name.clone(),
                kind: kind_of(e),
                target: target_of(e, admin),
                state: board.state(e.id).as_str(),
                attempts: c.attempts(),
                success_percent: (c.attempts() > 0).then(|| c.succeeded * 100 / c.attempts()),
                mean_ms: c.mean_ms(),
                max_ms: c.max_ms,
            }
        })
        .collect();
    Ok(render(
        "endpoints.html",
        minijinja::context! { frame => Frame::of(&session, "endpoints"), endpoints => rows },
    ))
}

/// One endpoint's page; `shown` is a secret made just now, shown this once.
async fn endpoint_page(
    state: &AppState,
    session: &Session,
    id: EndpointId,
    notice: Option<String>,
    shown: Option<String>,
) -> Result<Response, PageError> {
    let scope = session.principal.scope();
    let e = state.registry.endpoint(&scope, id).await?;
    let admin = session.principal.admin;
    let subscriptions = subscriptions::of(state, session, e.id).await?;
    let (minutes, hour) = LastHour::read(state)
        .await?
        .minutes(|r| r.endpoint_id == Some(e.id));
    let series: Vec<(u64, u64)> = minutes.iter().map(|c| (c.succeeded, c.failed)).collect();
    let health = state.registry.endpoint_health(e.id).await?;
    let recent = state
        .store
        .console()
        .browse(
            &scope,
            &Browse {
                endpoint_id: Some(e.id),
                limit: 20,
                ..Default::default()
            },
        )
        .await?;
    let view = EndpointView::from(&e);
    Ok(render(
        "endpoint.html",
        minijinja::context! {
            frame => Frame::of(session, "endpoints"),
            endpoint => minijinja::context! {
                id => e.id.to_string(), name => e.name, kind => kind_of(&e), target => target_of(&e, admin),
                is_webhook => matches!(e.settings.kind(), EndpointKind::Webhook),
                secrets => view.destination.secrets, headers => view.destination.headers, auth => view.destination.auth,
                rate_limit => e.rate_limit, max_concurrency => e.max_concurrency,
                created_at => millis(e.created_at), updated_at => millis(e.updated_at),
            },
            health => minijinja::context! {
                state => health.state.as_str(),
                consecutive_failures => health.consecutive_failures,
                last_error => health.last_error,
                disabled_reason => health.disabled_reason,
                failing_since => health.failing_since.map(millis),
                probe_at => health.probe_at.map(millis),
            },
            hour => minijinja::context! {
                attempts => hour.attempts(), succeeded => hour.succeeded, failed => hour.failed,
                success_percent => (hour.attempts() > 0).then(|| hour.succeeded * 100 / hour.attempts()),
                mean_ms => hour.mean_ms(), max_ms => hour.max_ms, dead_lettered => hour.dead_lettered,
            },
            chart => charts::columns("Attempts per minute at this endpoint, last hour", ("succeeded", Some("failed")), &series),
            recent => super::rows::rows(&recent.rows, &HashMap::from([(e.id, e.name.clone())])),
            subscriptions => subscriptions,
            events => if admin { subscriptions::subscribable(state, session) } else { Vec::new() },
            notice => notice,
            shown => shown,
        },
    ))
}

/// One endpoint.
pub async fn one(
    State(state): State<AppState>,
    session: Session,
    PathId(id, _): PathId<EndpointId, PageError>,
) -> Result<Response, PageError> {
    endpoint_page(&state, &session, id, None, None).await
}

/// Disables an endpoint.
pub async fn disable(
    State(state): State<AppState>,
    PathId(id, _): PathId<EndpointId, PageError>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let reason = form
        .filled("reason")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("disabled in the console by {}", session.principal.name));
    state
        .registry
        .disable_endpoint(&session.principal.scope(), id, &reason)
        .await?;
    Ok(Redirect::to(&format!("/console/endpoints/{id}")).into_response())
}

/// Enables an endpoint: its held deliveries are sent, or kept.
pub async fn enable(
    State(state): State<AppState>,
    PathId(id, _): PathId<EndpointId, PageError>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let resume = match form.get("held") {
        Some("keep") => Resume::Keep,
        _ => Resume::Deliver,
    };
    let (_, resumed) = state
        .registry
        .enable_endpoint(&session.principal.scope(), id, resume)
        .await?;
    if resumed > 0 {
        state.ingestor.wake();
    }
    endpoint_page(
        &state,
        &session,
        id,
        Some(format!("Enabled; {resumed} held deliveries were made due.")),
        None,
    )
    .await
}

/// Adds a signing secret (rotation): shown once, here.
pub async fn add_secret(
    State(state): State<AppState>,
    PathId(id, _): PathId<EndpointId, PageError>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let scheme = match form.get("scheme") {
        Some("v1a") => Scheme::V1a,
        _ => Scheme::V1,
    };
    let (_, generated) = state
        .registry
        .add_secret(&session.principal.scope(), id, None, Some(scheme))
        .await?;
    let notice = match &generated {
        Some(_) => "A new secret signs every delivery from now on, beside the older ones. Copy it now: it is not shown again. Retire the old secret once the receiver verifies with the new one.",
        None => "A new ed25519 key signs every delivery from now on, beside the older ones; receivers verify with its public key, listed below.",
    };
    endpoint_page(&state, &session, id, Some(notice.into()), generated).await
}

/// Retires a signing secret.
pub async fn retire_secret(
    State(state): State<AppState>,
    PathIds(id, secret, _): PathIds<EndpointId, SecretId, PageError>,
    Acting(Posted { session, .. }): Acting,
) -> Result<Response, PageError> {
    state
        .registry
        .retire_secret(&session.principal.scope(), id, secret)
        .await?;
    endpoint_page(
        &state,
        &session,
        id,
        Some("The secret was retired: it signs nothing from now on.".into()),
        None,
    )
    .await
}
