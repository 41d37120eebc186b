//! The catalog: solutions → categories → events, each event with its parameters, its JSON
//! Schema and a form that sends a test event through the ingestor, so it is validated (and
//! authorized) exactly as the API validates it; problems are shown beside their fields.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::pages::{render, render_with, Frame, PageError};
use super::session::{Posted, Session};
use crate::api::AppState;
use crate::ingest::{IngestError, Submission};
use crate::model::{Category, EventDefinition, Parameter, Solution};

/// A parameter as the page shows it.
#[derive(Serialize)]
struct Param<'a> {
    name: &'a str,
    ty: String,
    constraints: String,
    required: bool,
    description: Option<&'a str>,
    /// How the form asks for it: `text`, `number`, `boolean`, `json`.
    input: &'static str,
    value: String,
    error: Option<String>,
}

/// The parameter's type name and its constraints, from its JSON form.
fn type_of(p: &Parameter) -> (String, String) {
    let v = serde_json::to_value(&p.ty).unwrap_or(Value::Null);
    let ty = v["type"].as_str().unwrap_or("?").to_owned();
    let constraints: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "type")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    (ty, constraints.join(", "))
}

/// How the form asks for a parameter of type `ty`.
fn input_of(ty: &str) -> &'static str {
    match ty {
        "Boolean" => "boolean",
        "Integer" | "Float" | "Decimal" | "Money" | "Picklist" => "number",
        "Entity" | "EntityCollection" | "EntityReference" | "StringArray" => "json",
        _ => "text",
    }
}

/// The value the API would get for the text of a form field: JSON for types that are not
/// text when it reads as JSON, the text itself otherwise (so the validator names what is
/// wrong with it, as it would for an API caller); an empty field is left out.
fn value_of(input: &str, text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        return None;
    }
    Some(match input {
        "text" => Value::String(text.to_owned()),
        _ => serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.to_owned())),
    })
}

fn params<'a>(
    d: &'a EventDefinition,
    values: &HashMap<&str, &str>,
    errors: &HashMap<String, String>,
) -> Vec<Param<'a>> {
    d.parameters
        .iter()
        .map(|p| {
            let (ty, constraints) = type_of(p);
            Param {
                name: &p.name,
                input: input_of(&ty),
                ty,
                constraints,
                required: p.required,
                description: p.description.as_deref(),
                value: values
                    .get(p.name.as_str())
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                error: errors.get(&p.name.to_ascii_lowercase()).cloned(),
            }
        })
        .collect()
}

/// A solution `session` may see, with its categories and their cataloged events (sorted by
/// name).
pub(super) type Branch<'a> = (&'a Solution, Vec<(&'a Category, Vec<&'a EventDefinition>)>);

/// The catalog as `session` may see it: solutions → categories → events.
pub(super) fn tree<'a>(state: &'a AppState, session: &Session) -> Vec<Branch<'a>> {
    let catalog = &state.catalog;
    catalog
        .solutions()
        .iter()
        .filter(|s| session.principal.may_use(&s.unique_name))
        .map(|s| {
            let categories = catalog
                .categories()
                .iter()
                .filter(|c| c.solution == s.unique_name)
                .map(|c| (c, catalog.events_in(&c.solution, &c.name)))
                .collect();
            (s, categories)
        })
        .collect()
}

/// The catalog page.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let solutions: Vec<Value> = tree(&state, &session)
        .into_iter()
        .map(|(s, categories)| {
            let categories: Vec<Value> = categories
                .into_iter()
                .map(|(c, events)| {
                    let events: Vec<Value> = events
                        .into_iter()
                        .map(|e| {
                            serde_json::json!({
                                "name": e.unique_name,
                                "display_name": e.display_name,
                                "description": e.description,
                                "parameters": e.parameters.len(),
                                "enabled": e.enabled,
                            })
                        })
                        .collect();
                    serde_json::json!({"name": c.name, "description": c.description, "events": events})
                })
                .collect();
            serde_json::json!({
                "name": s.unique_name, "display_name": s.display_name, "categories": categories,
            })
        })
        .collect();
    render(
        "catalog.html",
        minijinja::context! { frame => Frame::of(&session, "catalog"), solutions => solutions },
    )
}

/// The definition of `name`, if the session may see it.
pub(super) fn visible<'a>(
    state: &'a AppState,
    session: &Session,
    name: &str,
) -> Result<&'a EventDefinition, PageError> {
    state
        .catalog
        .cataloged(name)
        .filter(|d| session.principal.may_use(&d.solution))
        .ok_or_else(|| {
            PageError::not_found(format!(
                "No cataloged event called \"{name}\" that this key may see."
            ))
        })
}

fn event_page(
    state: &AppState,
    session: &Session,
    d: &EventDefinition,
    form: FormState<'_>,
    status: StatusCode,
) -> Response {
    let schema = crate::catalog::event_schema(
        d,
        &crate::catalog::schema_url(&state.public_url, &d.unique_name),
    );
    render_with(
        status,
        "event.html",
        minijinja::context! {
            frame => Frame::of(session, "catalog"),
            event => minijinja::context! {
                name => d.unique_name, display_name => d.display_name, description => d.description,
                solution => d.solution, category => d.category, binding => d.binding,
                enabled => d.enabled, external => d.external,
            },
            params => params(d, &form.values, &form.errors),
            schema => serde_json::to_string_pretty(&schema).unwrap_or_default(),
            may_send => session.principal.may_send(&d.solution) && d.enabled,
            error => form.error,
            accepted => form.accepted,
        },
    )
}

/// What the test form holds after a post.
#[derive(Default)]
struct FormState<'a> {
    values: HashMap<&'a str, &'a str>,
    errors: HashMap<String, String>,
    error: Option<String>,
    accepted: Option<Value>,
}

/// One event's page.
pub async fn event(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let d = visible(&state, &session, &name)?;
    Ok(event_page(
        &state,
        &session,
        d,
        FormState::default(),
        StatusCode::OK,
    ))
}

/// Sends a test event from the form.
pub async fn send_test(
    State(state): State<AppState>,
    Path(name): Path<String>,
    span: crate::api::trace::RequestSpan,
    Posted { session, form }: Posted,
) -> Result<Response, PageError> {
    let d = visible(&state, &session, &name)?;
    let mut fs = FormState::default();
    let mut params = Map::new();
    for p in &d.parameters {
        let text = form.get(&format!("p.{}", p.name)).unwrap_or_default();
        fs.values.insert(p.name.as_str(), text);
        let (ty, _) = type_of(p);
        if let Some(v) = value_of(input_of(&ty), text) {
            params.insert(p.name.clone(), v);
        }
    }
    let submission = Submission {
        name: d.unique_name.to_string(),
        params: Value::Object(params),
        idempotency_key: None,
        correlation_id: form.filled("correlation_id").map(str::to_owned),
        depth: 1,
        traceparent: span.traceparent(),
        images: None,
    };
    let refused = |fs: FormState<'_>, status| Ok(event_page(&state, &session, d, fs, status));
    let accepted = state
        .ingestor
        .submit(&session.principal, submission, &span.0)
        .await;
    let (id, deliveries) = match accepted {
        Ok(a) => (a.id, a.deliveries),
        Err(IngestError::Invalid { problems, .. }) => {
            for p in problems {
                fs.errors
                    .insert(p.parameter.to_ascii_lowercase(), p.problem);
            }
            fs.error = Some("The event was not sent: correct the fields marked below.".into());
            return refused(fs, StatusCode::BAD_REQUEST);
        }
        Err(IngestError::Store(e)) => return Err(e.into()),
        Err(e) => {
            fs.error = Some(format!("The event was not sent: {e}."));
            let status = crate::api::ApiError::from(e).parts().0;
            return refused(fs, status);
        }
    };
    let rows = match state
        .store
        .records()
        .event(&session.principal.scope(), id)
        .await?
    {
        Some((_, list)) => list,
        None => Vec::new(),
    };
    let names = super::seen::names(&state, &session.principal.scope()).await?;
    fs.accepted = Some(serde_json::json!({
        "id": id.to_string(),
        "deliveries": deliveries,
        "rows": rows.iter().map(|r| serde_json::json!({
            "id": r.id.to_string(),
            "endpoint": names.get(&r.endpoint_id).cloned().unwrap_or_else(|| r.endpoint_id.to_string()),
            "status": r.status.as_str(),
        })).collect::<Vec<_>>(),
    }));
    Ok(event_page(&state, &session, d, fs, StatusCode::OK).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_text_becomes_what_an_api_caller_would_send() {
        assert_eq!(value_of("number", "42"), Some(serde_json::json!(42)));
        assert_eq!(
            value_of("number", "forty"),
            Some(serde_json::json!("forty"))
        );
        assert_eq!(value_of("boolean", "true"), Some(serde_json::json!(true)));
        assert_eq!(value_of("text", "42"), Some(serde_json::json!("42")));
        assert_eq!(
            value_of("json", "{\"a\":1}"),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(value_of("text", "  "), None);
    }
}
