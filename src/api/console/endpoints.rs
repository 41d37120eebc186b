//! Endpoints of every kind (webhooks, flow callbacks, Service Bus, Event Hubs): their health,
//! success rate and attempt times over the last hour, their subscriptions and recent
//! deliveries, and, for an admin, a form that creates a webhook endpoint, enable/disable,
//! subscribing and unsubscribing, and secret rotation (a new secret is shown once, on the
//! page that made it, as the API shows it once).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::charts;
use super::form::Form;
use super::overview::LastHour;
use super::pages::{millis, render, render_with, Frame, PageError};
use super::session::{Acting, Posted, Session};
use crate::api::views::EndpointView;
use crate::api::AppState;
use crate::model::exchange::{host_of, masked_url};
use crate::model::{Browse, Endpoint, EndpointId, EndpointKind, Scheme, Subscription};
use crate::registry::{EndpointInput, RegistryError, Signing, SubscriptionInput};
use crate::store::health::Resume;

/// Endpoint names by id (deleted endpoints are missing).
pub async fn names(state: &AppState) -> Result<HashMap<EndpointId, String>, PageError> {
    Ok(state
        .registry
        .endpoints()
        .await?
        .into_iter()
        .map(|e| (e.id, e.name))
        .collect())
}

/// What kind of endpoint, as operators name it.
fn kind_of(e: &Endpoint) -> &'static str {
    match e.settings.kind() {
        EndpointKind::Webhook if e.name.starts_with(crate::api::FLOW_PREFIX) => "flow callback",
        EndpointKind::Webhook => "webhook",
        EndpointKind::ServiceBus => "Service Bus",
        EndpointKind::EventHubs => "Event Hubs",
    }
}

/// Where an endpoint delivers to, with nothing secret in it; for a key that may not
/// administer, only the host.
fn target_of(e: &Endpoint, admin: bool) -> String {
    let view = EndpointView::from(e);
    match (view.url, view.namespace, view.entity) {
        (Some(url), _, _) if admin => masked_url(&url),
        (Some(url), _, _) => host_of(&url),
        (None, Some(ns), Some(entity)) if admin => format!("{ns}/{entity}"),
        (None, Some(ns), Some(_)) => ns,
        _ => String::new(),
    }
}

/// The endpoints `session` may see: every one for an admin key; for another, those that a
/// subscription of one of its solutions delivers to (as the API shows endpoints to admins
/// only, a key of some solutions sees no other solution's receivers).
pub async fn visible(state: &AppState, session: &Session) -> Result<Vec<Endpoint>, PageError> {
    let all = state.registry.endpoints().await?;
    if session.principal.admin {
        return Ok(all);
    }
    let used: std::collections::HashSet<EndpointId> = state
        .store
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| session.principal.may_use(&s.solution))
        .map(|s| s.endpoint_id)
        .collect();
    Ok(all.into_iter().filter(|e| used.contains(&e.id)).collect())
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
    let rows: Vec<Row> = visible(&state, &session)
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
    id: &str,
    notice: Option<String>,
    shown: Option<String>,
) -> Result<Response, PageError> {
    let e = state.registry.endpoint(id).await?;
    let admin = session.principal.admin;
    if !admin && !visible(state, session).await?.iter().any(|v| v.id == e.id) {
        return Err(PageError::not_found(format!(
            "No endpoint \"{id}\" that this key may see."
        )));
    }
    let (minutes, hour) = LastHour::read(state)
        .await?
        .minutes(|r| r.endpoint_id == Some(e.id));
    let series: Vec<(u64, u64)> = minutes.iter().map(|c| (c.succeeded, c.failed)).collect();
    let health = state.registry.endpoint_health(e.id).await?;
    let recent = state
        .store
        .console()
        .browse(&Browse {
            endpoint_id: Some(e.id),
            limit: 20,
            solutions: session.principal.solutions.clone(),
            ..Default::default()
        })
        .await?;
    let subscriptions: Vec<SubscriptionRow> = state
        .registry
        .subscriptions()
        .await?
        .iter()
        .filter(|s| s.endpoint_id == e.id && session.principal.may_use(&s.solution))
        .map(SubscriptionRow::of)
        .collect();
    let view = EndpointView::from(&e);
    Ok(render(
        "endpoint.html",
        minijinja::context! {
            frame => Frame::of(session, "endpoints"),
            endpoint => minijinja::context! {
                id => e.id.to_string(), name => e.name, kind => kind_of(&e), target => target_of(&e, admin),
                is_webhook => matches!(e.settings.kind(), EndpointKind::Webhook),
                secrets => view.secrets, headers => view.headers, auth => view.auth,
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
            recent => super::deliveries::rows(&recent.rows),
            subscriptions => subscriptions,
            events => if admin { subscribable(state, session) } else { Vec::new() },
            own => HashMap::from([(e.id.to_string(), e.name.clone())]),
            notice => notice,
            shown => shown,
        },
    ))
}

/// One endpoint.
pub async fn one(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    endpoint_page(&state, &session, &id, None, None).await
}

/// Disables an endpoint.
pub async fn disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let reason = form
        .filled("reason")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("disabled in the console by {}", session.principal.name));
    state.registry.disable_endpoint(&id, &reason).await?;
    Ok(Redirect::to(&format!("/console/endpoints/{id}")).into_response())
}

/// Enables an endpoint: its held deliveries are sent, or kept.
pub async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let resume = match form.get("held") {
        Some("keep") => Resume::Keep,
        _ => Resume::Deliver,
    };
    let (_, resumed) = state.registry.enable_endpoint(&id, resume).await?;
    if resumed > 0 {
        state.ingestor.wake();
    }
    endpoint_page(
        &state,
        &session,
        &id,
        Some(format!("Enabled; {resumed} held deliveries were made due.")),
        None,
    )
    .await
}

/// Adds a signing secret (rotation): shown once, here.
pub async fn add_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let scheme = match form.get("scheme") {
        Some("v1a") => Scheme::V1a,
        _ => Scheme::V1,
    };
    let (_, generated) = state.registry.add_secret(&id, None, Some(scheme)).await?;
    let notice = match &generated {
        Some(_) => "A new secret signs every delivery from now on, beside the older ones. Copy it now: it is not shown again. Retire the old secret once the receiver verifies with the new one.",
        None => "A new ed25519 key signs every delivery from now on, beside the older ones; receivers verify with its public key, listed below.",
    };
    endpoint_page(&state, &session, &id, Some(notice.into()), generated).await
}

/// Retires a signing secret.
pub async fn retire_secret(
    State(state): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    Acting(Posted { session, .. }): Acting,
) -> Result<Response, PageError> {
    state.registry.retire_secret(&id, &secret).await?;
    endpoint_page(
        &state,
        &session,
        &id,
        Some("The secret was retired: it signs nothing from now on.".into()),
        None,
    )
    .await
}

/// A subscription as the endpoint page lists it.
#[derive(Serialize)]
struct SubscriptionRow {
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
                crate::model::Mode::Async => "after the event is stored",
                crate::model::Mode::Sync => "in the request path",
            },
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            filtered: !s.filter.0.is_empty(),
        }
    }
}

/// The cataloged events `session` may subscribe an endpoint to, by solution, for a form's
/// list.
#[derive(Serialize)]
struct Subscribable {
    solution: String,
    events: Vec<String>,
}

fn subscribable(state: &AppState, session: &Session) -> Vec<Subscribable> {
    let catalog = &state.catalog;
    catalog
        .solutions()
        .iter()
        .filter(|s| session.principal.may_use(&s.unique_name))
        .map(|s| {
            let mut events: Vec<String> = catalog
                .categories()
                .iter()
                .filter(|c| c.solution == s.unique_name)
                .flat_map(|c| catalog.events_in(&c.solution, &c.name))
                .map(|d| d.unique_name.clone())
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

/// A subscription of endpoint `endpoint` to cataloged event `event` (its name generated).
async fn subscribe(
    state: &AppState,
    endpoint: EndpointId,
    event: &str,
) -> Result<Subscription, RegistryError> {
    let input: SubscriptionInput = serde_json::from_value(serde_json::json!({
        "event": event,
        "endpoint": endpoint.to_string(),
    }))
    .map_err(|e| RegistryError::invalid("event", e.to_string()))?;
    state.registry.create_subscription(input).await
}

/// What the new-endpoint form holds: the values sent, to show again, and the problems by
/// field (`name`, `url`, `signing`, `timeout`, `event`).
#[derive(Default, Serialize)]
struct NewEndpoint {
    name: String,
    url: String,
    signing: String,
    timeout: String,
    event: String,
    errors: HashMap<&'static str, String>,
    error: Option<String>,
}

impl NewEndpoint {
    fn from_form(form: &Form) -> Self {
        let text = |name: &str| form.filled(name).unwrap_or_default().to_owned();
        Self {
            name: text("name"),
            url: text("url"),
            signing: text("signing"),
            timeout: text("timeout"),
            event: text("event"),
            ..Default::default()
        }
    }

    /// The endpoint to create, or the problems found before asking the registry (which
    /// checks the rest: the URL's scheme and network, a taken name).
    fn input(&mut self, state: &AppState, session: &Session) -> Option<EndpointInput> {
        if self.name.is_empty() {
            self.errors
                .insert("name", "Give the endpoint a name.".into());
        }
        if self.url.is_empty() {
            self.errors
                .insert("url", "Give the receiver's URL (https://…).".into());
        }
        let signing = match self.signing.as_str() {
            "" | "v1" => Signing::V1,
            "v1a" => Signing::V1a,
            "both" => Signing::Both,
            _ => {
                self.errors
                    .insert("signing", "Choose v1, v1a or both.".into());
                Signing::V1
            }
        };
        let timeout = match self.timeout.as_str() {
            "" => None,
            text => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => {
                    self.errors.insert(
                        "timeout",
                        "Write a duration such as 10s or 1m, or leave it empty for the default."
                            .into(),
                    );
                    None
                }
            },
        };
        if !self.event.is_empty()
            && !subscribable(state, session)
                .iter()
                .any(|s| s.events.contains(&self.event))
        {
            self.errors.insert(
                "event",
                format!(
                    "\"{}\" is not a cataloged event this key may use.",
                    self.event
                ),
            );
        }
        self.errors.is_empty().then(|| EndpointInput {
            name: self.name.clone(),
            kind: EndpointKind::Webhook,
            url: Some(self.url.clone()),
            signing: Some(signing),
            timeout,
            ..Default::default()
        })
    }

    /// Puts the registry's refusal beside its field, or above the form.
    fn refused(&mut self, e: RegistryError) -> Result<(), PageError> {
        match e {
            RegistryError::Invalid { field, problem } => {
                // The registry's problems read after the field's name ("is refused: …") or
                // alone ("not a valid URL: …").
                let label = field_label(&field);
                let shown = if problem.starts_with("is ") || problem.starts_with("must ") {
                    format!("{label} {problem}.")
                } else {
                    format!("{label}: {problem}.")
                };
                match ["name", "url", "signing", "timeout"]
                    .into_iter()
                    .find(|f| *f == field)
                {
                    Some(f) => {
                        self.errors.insert(f, shown);
                    }
                    None => self.error = Some(shown),
                }
            }
            RegistryError::Conflict(why) => {
                self.errors.insert("name", format!("Taken: {why}."));
            }
            other => return Err(other.into()),
        }
        Ok(())
    }
}

/// How the form names a field the registry refused.
fn field_label(field: &str) -> &str {
    match field {
        "name" => "The name",
        "url" => "The URL",
        "signing" => "The signature scheme",
        "timeout" => "The timeout",
        other => other,
    }
}

fn new_page(
    state: &AppState,
    session: &Session,
    form: &NewEndpoint,
    status: StatusCode,
) -> Response {
    render_with(
        status,
        "endpoint_new.html",
        minijinja::context! {
            frame => Frame::of(session, "endpoints"),
            form => form,
            events => subscribable(state, session),
        },
    )
}

/// The form that creates a webhook endpoint (admin keys only).
pub async fn new_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    if !session.principal.admin {
        return Err(PageError::forbidden(
            "Only an admin key may create endpoints.",
        ));
    }
    Ok(new_page(
        &state,
        &session,
        &NewEndpoint::default(),
        StatusCode::OK,
    ))
}

/// Creates a webhook endpoint (and, if asked, its subscription to one event); its page shows
/// the generated secret this once.
pub async fn create(
    State(state): State<AppState>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let mut f = NewEndpoint::from_form(&form);
    let Some(input) = f.input(&state, &session) else {
        f.error = Some("The endpoint was not created: correct the fields marked below.".into());
        return Ok(new_page(&state, &session, &f, StatusCode::BAD_REQUEST));
    };
    let (endpoint, secret) = match state.registry.create_endpoint(input).await {
        Ok(made) => made,
        Err(e) => {
            f.refused(e)?;
            if f.error.is_none() {
                f.error =
                    Some("The endpoint was not created: correct the fields marked below.".into());
            }
            let status = if f.errors.contains_key("name") {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            return Ok(new_page(&state, &session, &f, status));
        }
    };
    let mut notice = match &secret {
        Some(_) => "Created. Copy its signing secret now: it is not shown again.".to_owned(),
        None => "Created. Receivers verify its v1a signatures with the public key listed below."
            .to_owned(),
    };
    if !f.event.is_empty() {
        // The endpoint exists by now and its secret is shown only on this answer: a refused
        // subscription is told here, never in place of the secret.
        match subscribe(&state, endpoint.id, &f.event).await {
            Ok(s) => notice.push_str(&format!(" It receives {} ({}).", f.event, s.name)),
            Err(e) => notice.push_str(&format!(
                " It was not subscribed to {}: {e}. Subscribe it below.",
                f.event
            )),
        }
    }
    let mut page = endpoint_page(
        &state,
        &session,
        &endpoint.id.to_string(),
        Some(notice),
        secret,
    )
    .await?;
    *page.status_mut() = StatusCode::CREATED;
    Ok(page)
}

/// Subscribes an endpoint to a cataloged event.
pub async fn add_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Acting(Posted { session, form }): Acting,
) -> Result<Response, PageError> {
    let e = state.registry.endpoint(&id).await?;
    let event = form.filled("event").unwrap_or_default();
    let notice = if !subscribable(&state, &session)
        .iter()
        .any(|s| s.events.iter().any(|n| n == event))
    {
        format!("Not subscribed: \"{event}\" is not a cataloged event this key may use.")
    } else {
        match subscribe(&state, e.id, event).await {
            Ok(s) => format!("Subscribed to {event} ({}).", s.name),
            Err(RegistryError::Store(e)) => return Err(e.into()),
            Err(err) => format!("Not subscribed to {event}: {err}."),
        }
    };
    endpoint_page(&state, &session, &id, Some(notice), None).await
}

/// Removes one of an endpoint's subscriptions; its unfinished deliveries are cancelled.
pub async fn remove_subscription(
    State(state): State<AppState>,
    Path((id, subscription)): Path<(String, String)>,
    Acting(Posted { session, .. }): Acting,
) -> Result<Response, PageError> {
    let s = state.registry.subscription(&subscription).await?;
    let e = state.registry.endpoint(&id).await?;
    if s.endpoint_id != e.id {
        return Err(PageError::not_found(format!(
            "Endpoint {} has no subscription \"{subscription}\".",
            e.name
        )));
    }
    state.registry.delete_subscription(s.id).await?;
    endpoint_page(
        &state,
        &session,
        &id,
        Some(format!(
            "Unsubscribed from {}: its unfinished deliveries were cancelled.",
            s.name
        )),
        None,
    )
    .await
}
