//! The form that makes a webhook endpoint (admin keys only): problems beside their fields,
//! the registry's refusals included, and the generated secret shown once, on the page that
//! answers the form, as the API shows it once. Service Bus and Event Hubs endpoints carry
//! credentials and are declared through the API or the configuration.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{endpoint_page, subscriptions};
use crate::api::console::catalog;
use crate::api::console::form::Form;
use crate::api::console::pages::{render_with, Frame, PageError};
use crate::api::console::session::{Acting, Posted, Session};
use crate::api::AppState;
use crate::destinations::kinds::DestinationInput;
use crate::destinations::webhook::WebhookInput;
use crate::registry::{EndpointInput, RegistryError, Signing};

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
        if !self.event.is_empty() && catalog::visible(state, session, &self.event).is_err() {
            self.errors.insert(
                "event",
                format!(
                    "\"{}\" is not a cataloged event this key may use.",
                    self.event
                ),
            );
        }
        self.errors.is_empty().then(|| {
            EndpointInput::new(
                self.name.clone(),
                DestinationInput::Webhook(WebhookInput {
                    url: Some(self.url.clone()),
                    signing: Some(signing),
                    timeout,
                    ..Default::default()
                }),
            )
        })
    }

    /// Puts the registry's refusal beside its field, or above the form; the status to answer
    /// with.
    fn refused(&mut self, e: RegistryError) -> Result<StatusCode, PageError> {
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
                Ok(StatusCode::BAD_REQUEST)
            }
            RegistryError::Conflict(why) => {
                self.errors.insert("name", format!("Taken: {why}."));
                Ok(StatusCode::CONFLICT)
            }
            other => Err(other.into()),
        }
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
            events => subscriptions::subscribable(state, session),
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
    let (endpoint, secret) = match state
        .registry
        .create_endpoint(&session.principal.scope(), input)
        .await
    {
        Ok(made) => made,
        Err(e) => {
            let status = f.refused(e)?;
            if f.error.is_none() {
                f.error =
                    Some("The endpoint was not created: correct the fields marked below.".into());
            }
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
        match subscriptions::subscribe(&state, &session, endpoint.id, &f.event).await {
            Ok(s) => notice.push_str(&format!(" It receives {} ({}).", f.event, s.name)),
            Err(e) => {
                notice.push(' ');
                notice.push_str(&subscriptions::refusal(&f.event, e));
                notice.push_str(" Subscribe it below.");
            }
        }
    }
    let id = endpoint.id;
    let mut page = match endpoint_page(&state, &session, id, Some(notice.clone()), secret.clone())
        .await
    {
        Ok(page) => page,
        // The endpoint exists and its secret is known only here: a page that cannot be read
        // in full still shows it.
        Err(e) => {
            tracing::warn!(endpoint = %id, error = %e.message, "the new endpoint's page could not be read; showing its secret alone");
            render_with(
                StatusCode::CREATED,
                "endpoint_made.html",
                minijinja::context! {
                    frame => Frame::of(&session, "endpoints"),
                    endpoint => minijinja::context! { id => id, name => endpoint.name },
                    notice => notice,
                    shown => secret,
                },
            )
        }
    };
    *page.status_mut() = StatusCode::CREATED;
    Ok(page)
}
