//! An endpoint's subscriptions on its page: listed for every key (those of its solutions), and
//! for an admin, subscribing to a cataloged event and unsubscribing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::endpoint_page;
use crate::api::console::catalog;
use crate::api::console::pages::PageError;
use crate::api::console::session::{Acting, Posted, Session};
use crate::api::path::{PathId, PathIds};
use crate::api::AppState;
use crate::model::{EndpointId, Mode, Subscription, SubscriptionId};
use crate::registry::{RegistryError, SubscriptionInput};

/// A subscription as the endpoint page lists it.
#[derive(Serialize)]
pub(super) struct SubscriptionRow {
    id: String,
    name: String,
    /// The event, or the category (`solution / category`) it takes every event of.
    what: String,
    mode: &'static str,
    enabled: bool,
    disabled_reason: Option<String>,
    filtered: bool,
}

impl SubscriptionRow {
    fn of(s: &Subscription) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            what: match (&s.event, &s.category) {
                (Some(event), _) => event.clone(),
                (None, Some(category)) => format!("every event of {} / {category}", s.solution),
                (None, None) => String::new(),
            },
            mode: match s.mode {
                Mode::Async => "after the event is stored",
                Mode::Sync => "in the request path",
            },
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            filtered: !s.filter.0.is_empty(),
        }
    }
}

/// The subscriptions that deliver to `endpoint`, of the solutions `session` may use.
pub(super) async fn of(
    state: &AppState,
    session: &Session,
    endpoint: EndpointId,
) -> Result<Vec<SubscriptionRow>, PageError> {
    Ok(state
        .registry
        .subscriptions(&session.principal.scope())
        .await?
        .iter()
        .filter(|s| s.endpoint_id == endpoint)
        .map(SubscriptionRow::of)
        .collect())
}

/// The cataloged events of one solution, for a form's list.
#[derive(Serialize)]
pub(super) struct Subscribable {
    solution: String,
    events: Vec<String>,
}

/// The cataloged events `session` may subscribe an endpoint to, by solution.
pub(super) fn subscribable(state: &AppState, session: &Session) -> Vec<Subscribable> {
    catalog::tree(state, session)
        .into_iter()
        .map(|(s, categories)| {
            let mut events: Vec<String> = categories
                .into_iter()
                .flat_map(|(_, events)| events)
                .map(|d| d.unique_name.to_string())
                .collect();
            events.sort();
            Subscribable {
                solution: s.unique_name.clone(),
                events,
            }
        })
        .filter(|s| !s.events.is_empty())
        .collect()
}

/// Why subscribing did not happen, as a sentence for the page; a store failure is logged,
/// not shown (its text is the database's).
pub(super) fn refusal(event: &str, e: RegistryError) -> String {
    match e {
        RegistryError::Store(e) => {
            tracing::error!(error = %e, event, "the console could not subscribe an endpoint");
            format!("Not subscribed to {event}: the store failed; see Herald's log.")
        }
        other => format!("Not subscribed to {event}: {other}."),
    }
}

/// Subscribes endpoint `endpoint` to cataloged event `event` (the subscription's name is
/// generated), if `session` may use the event.
pub(super) async fn subscribe(
    state: &AppState,
    session: &Session,
    endpoint: EndpointId,
    event: &str,
) -> Result<Subscription, RegistryError> {
    if catalog::visible(state, session, event).is_err() {
        return Err(RegistryError::invalid(
            "event",
            format!("\"{event}\" is not a cataloged event this key may use"),
        ));
    }
    state
        .registry
        .create_subscription(
            &session.principal.scope(),
            SubscriptionInput {
                event: Some(event.to_owned()),
                endpoint: endpoint.to_string(),
                ..Default::default()
            },
        )
        .await
}

/// Subscribes an endpoint to a cataloged event.
pub async fn add_subscription(
    State(state): State<AppState>,
    PathId(id, _): PathId<EndpointId, PageError>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let e = state
        .registry
        .endpoint(&session.principal.scope(), id)
        .await?;
    let event = form.filled("event").unwrap_or_default();
    let (notice, status) = match subscribe(&state, &session, e.id, event).await {
        Ok(s) => (
            format!("Subscribed to {event} ({}).", s.name),
            StatusCode::OK,
        ),
        Err(err) => {
            let status = match &err {
                RegistryError::Conflict(_) => StatusCode::CONFLICT,
                RegistryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            (refusal(event, err), status)
        }
    };
    let mut page = endpoint_page(&state, &session, id, Some(notice), None).await?;
    *page.status_mut() = status;
    Ok(page)
}

/// Removes one of an endpoint's subscriptions; its unfinished deliveries are cancelled.
pub async fn remove_subscription(
    State(state): State<AppState>,
    PathIds(id, subscription, _): PathIds<EndpointId, SubscriptionId, PageError>,
    Acting(Posted { session, .. }): Acting,
) -> Result<Response, PageError> {
    let scope = session.principal.scope();
    let e = state.registry.endpoint(&scope, id).await?;
    let s = state
        .registry
        .subscription(&scope, subscription)
        .await
        .ok()
        .filter(|s| s.endpoint_id == e.id)
        .ok_or_else(|| {
            PageError::not_found(format!(
                "Endpoint {} has no subscription \"{subscription}\" that this key may change.",
                e.name
            ))
        })?;
    state.registry.delete_subscription(&scope, s.id).await?;
    endpoint_page(
        &state,
        &session,
        id,
        Some(format!(
            "Unsubscribed {} from {}: its unfinished deliveries were cancelled.",
            s.name,
            s.event.as_deref().or(s.category.as_deref()).unwrap_or("")
        )),
        None,
    )
    .await
}
