//! The Power Automate custom connector definition: OpenAPI 2.0 (the version connectors
//! use), built from the catalog, with the `x-ms-*` extensions of webhook triggers.

use serde_json::{json, Map, Value};

use super::AppState;
use crate::catalog::event_schema;
use crate::model::Scope;

/// The connector definition for this Herald, with the events of `scope`.
pub fn definition(state: &AppState, scope: &Scope) -> Value {
    let url = url::Url::parse(&state.public_url).ok();
    let host = url.as_ref().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_owned(),
        })
    });
    let scheme = url.as_ref().map_or("https", |u| u.scheme());
    let mut paths = Map::new();
    event_triggers(state, scope, &mut paths);
    dynamic_trigger(&mut paths);
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Herald",
            "description": "Triggers on cataloged business events sent to Herald.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "host": host.unwrap_or_else(|| "localhost".into()),
        "basePath": "/",
        "schemes": [scheme],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "api_key": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Bearer <API key>"},
        },
        "security": [{"api_key": []}],
        "paths": paths,
    })
}

/// One webhook trigger per subscribable cataloged event of `scope`.
fn event_triggers(state: &AppState, scope: &Scope, paths: &mut Map<String, Value>) {
    for category in state.catalog.categories() {
        if !scope.covers(&category.solution) {
            continue;
        }
        for event in state.catalog.events_in(&category.solution, &category.name) {
            if event.allowed_steps == crate::model::AllowedSteps::None {
                continue;
            }
            let title = event.display_name.as_deref().unwrap_or(&event.unique_name);
            paths.insert(
                format!("/v1/flows/events/{}/subscriptions", event.unique_name),
                json!({"post": {
                    "operationId": format!("When_{}", event.unique_name),
                    "summary": format!("When {title} happens"),
                    "description": event.description.clone().unwrap_or_else(|| format!("Triggers when {} is sent to Herald.", event.unique_name)),
                    "x-ms-trigger": "single",
                    "parameters": [notification_body(None)],
                    "responses": {"201": {"description": "Subscribed"}},
                    "x-ms-notification-content": {
                        "description": format!("The parameters of {}", event.unique_name),
                        "schema": swagger_schema(event_schema(event, "")),
                    },
                }}),
            );
        }
    }
}

/// The trigger over every event (the event chosen from a dynamic list, its schema fetched
/// dynamically), and the internal operations it and the per-event triggers use.
fn dynamic_trigger(paths: &mut Map<String, Value>) {
    paths.insert(
        "/v1/flows/subscriptions".into(),
        json!({"post": {
            "operationId": "WhenAnEventHappens",
            "summary": "When a cataloged event happens",
            "description": "Triggers when the chosen cataloged event is sent to Herald.",
            "x-ms-trigger": "single",
            "parameters": [notification_body(Some(json!({
                "type": "string",
                "title": "Event",
                "description": "The cataloged event",
                "x-ms-dynamic-values": {"operationId": "ListEvents", "value-path": "unique_name", "value-title": "display_name"},
            })))],
            "responses": {"201": {"description": "Subscribed"}},
            "x-ms-notification-content": {
                "description": "The parameters of the event",
                "schema": {
                    "type": "object",
                    "x-ms-dynamic-schema": {"operationId": "GetEventSchema", "parameters": {"unique_name": {"parameter": "event"}}},
                },
            },
        }}),
    );
    paths.insert(
        "/v1/flows/subscriptions/{id}".into(),
        json!({"delete": {
            "operationId": "DeleteTrigger",
            "summary": "Unsubscribe",
            "x-ms-visibility": "internal",
            "parameters": [{"name": "id", "in": "path", "required": true, "type": "string"}],
            "responses": {"204": {"description": "Unsubscribed"}},
        }}),
    );
    paths.insert(
        "/v1/flows/events".into(),
        json!({"get": {
            "operationId": "ListEvents",
            "summary": "List the cataloged events",
            "x-ms-visibility": "internal",
            "responses": {"200": {"description": "The events", "schema": {"type": "array", "items": {
                "type": "object",
                "properties": {"unique_name": {"type": "string"}, "display_name": {"type": "string"}, "description": {"type": "string"}},
            }}}},
        }}),
    );
    paths.insert(
        "/v1/flows/events/{unique_name}/schema".into(),
        json!({"get": {
            "operationId": "GetEventSchema",
            "summary": "The schema of an event's parameters",
            "x-ms-visibility": "internal",
            "parameters": [{"name": "unique_name", "in": "path", "required": true, "type": "string"}],
            "responses": {"200": {"description": "JSON Schema", "schema": {"type": "object"}}},
        }}),
    );
}

/// The body parameter of a subscription: the flow's callback URL (filled in by Power
/// Automate, hence internal), and optionally the chosen event.
fn notification_body(event: Option<Value>) -> Value {
    let mut properties = json!({
        "notificationUrl": {"type": "string", "x-ms-notification-url": true, "x-ms-visibility": "internal", "title": ""},
    });
    let mut required = vec!["notificationUrl"];
    if let Some(event) = event {
        properties["event"] = event;
        required.push("event");
    }
    json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object", "properties": properties, "required": required}})
}

/// A draft 2020-12 schema made acceptable to OpenAPI 2.0, whose schema objects are a subset
/// of draft 4: no `$schema`/`$id`, no `const`, no `anyOf` (an entity reference becomes an
/// object).
fn swagger_schema(mut schema: Value) -> Value {
    fn clean(v: &mut Value) {
        if let Value::Object(obj) = v {
            obj.remove("$schema");
            obj.remove("$id");
            obj.remove("const");
            if obj.remove("anyOf").is_some() {
                obj.insert("type".into(), json!("object"));
            }
            // Recurse into subschemas only: property names are parameters, not keywords.
            if let Some(Value::Object(props)) = obj.get_mut("properties") {
                props.values_mut().for_each(clean);
            }
            if let Some(items) = obj.get_mut("items") {
                clean(items);
            }
        }
    }
    clean(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        if obj
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            obj.remove("required");
        }
    }
    schema
}
