//! Subscriptions' transformations: a plug-in run on each delivery before it is sent, given the
//! message as the subscription's format makes it, answering what to change (`{"message":
//! {…}}`), nothing (`{}`), or `{"drop": true}`. The answer is checked here (no header Herald
//! sets or signs, names and values that HTTP and AMQP accept) and becomes a [`Reshaped`] the
//! destination applies, so the attempt log shows what was actually sent.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::PluginRuntime;
use crate::destinations::{Outbound, Reshaped};
use crate::formats::dataverse;
use crate::model::{EndpointKind, MessageFormat, PluginSettings, Transform};
use crate::plugins::document::{self, Purpose};
use crate::plugins::Answer;

/// What a transformation decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Reshaping {
    /// Send the message with these changes.
    Send(Reshaped),
    /// Do not send it: the delivery is done.
    Drop,
}

/// Headers a transformation may not set: Herald's own, the signature's, and those HTTP
/// computes.
fn reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || name.starts_with("herald-")
        || name.starts_with("x-ms-")
        || matches!(
            name.as_str(),
            "content-type"
                | "content-length"
                | "host"
                | "transfer-encoding"
                | "connection"
                | "traceparent"
                | "authorization"
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answered {
    #[serde(default)]
    message: Option<MessageChange>,
    #[serde(default)]
    drop: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageChange {
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    partition_key: Option<String>,
    // Accepted and ignored: the input's own field, so a plug-in may answer it back.
    #[serde(default, rename = "destination")]
    _destination: Option<Value>,
}

/// The body a destination of `kind` would send for `message`, as JSON.
fn body_of(message: &Outbound<'_>, kind: EndpointKind) -> Value {
    let bytes = match (message.format, kind) {
        (MessageFormat::Cloudevents, EndpointKind::Webhook) => message.cloudevents_json(),
        (MessageFormat::Dataverse, _) => {
            let origin = dataverse::Origin {
                organization: message.organization,
            };
            let context = dataverse::remote_execution_context(
                message.event,
                message.delivery_id,
                message.definition,
                &origin,
                None,
                message.row,
            );
            return context;
        }
        _ => message.params_json(),
    };
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Runs `transform` on `message` (to an endpoint of `kind`); `Err` says why it failed, naming
/// the plug-in.
pub async fn transform(
    runtime: &PluginRuntime,
    transform: &Transform,
    message: &Outbound<'_>,
    kind: EndpointKind,
) -> Result<Reshaping, String> {
    let settings = PluginSettings {
        plugin: transform.plugin.clone(),
        version: transform.version,
        config: transform.config.clone(),
        secure_config: None,
        allowed_hosts: Vec::new(),
    };
    let loaded = runtime.load(&settings).await.map_err(|e| e.to_string())?;
    let event = &message.event.event;
    let mut extra = Map::new();
    extra.insert(
        "delivery".into(),
        json!({"id": message.delivery_id.to_string(), "subscription": message.subscription_id.to_string()}),
    );
    extra.insert(
        "message".into(),
        json!({
            "destination": kind.as_str(),
            "format": message.format.as_str(),
            "body": body_of(message, kind),
            "content_type": "application/json",
            "headers": {},
            "properties": {},
            "subject": event.name.as_str(),
            "partition_key": null,
        }),
    );
    let doc = document::event(event, &event.params, &event.pipeline.shared_variables);
    let input = document::input(Purpose::Transform, &loaded.version, &settings, doc, extra);
    // A transformation may emit nothing and reach no host: it only reshapes.
    let answer = runtime
        .sandbox
        .run(
            &loaded.compiled,
            &loaded.version,
            &input,
            Default::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let text = match answer {
        Answer::Ok(text) => text,
        Answer::Refused(reason) => {
            return Err(format!(
                "transformation {} refused: {reason}",
                loaded.version
            ))
        }
    };
    reshaping(&text).map_err(|e| format!("transformation {} answered {e}", loaded.version))
}

/// What an answer asks for.
pub fn reshaping(text: &str) -> Result<Reshaping, String> {
    let answered: Answered = serde_json::from_str(text).map_err(|e| {
        format!("what Herald cannot read: {e} (expected {{\"message\": {{…}}}}, {{\"drop\": true}} or {{}})")
    })?;
    if answered.drop {
        return Ok(Reshaping::Drop);
    }
    let Some(change) = answered.message else {
        return Ok(Reshaping::Send(Reshaped::default()));
    };
    let mut reshaped = Reshaped::default();
    if let Some(body) = change.body {
        let text_body = change
            .content_type
            .as_deref()
            .is_some_and(|t| !t.contains("json"));
        reshaped.body = Some(match (body, text_body) {
            (Value::String(s), true) => bytes::Bytes::from(s),
            (value, _) => bytes::Bytes::from(value.to_string()),
        });
        reshaped.content_type = change.content_type;
    } else if change.content_type.is_some() {
        return Err("a content_type without a body".into());
    }
    if let Some(t) = &reshaped.content_type {
        http::HeaderValue::from_str(t).map_err(|_| format!("an invalid content_type `{t}`"))?;
    }
    for (name, value) in change.headers {
        let Value::String(value) = value else {
            return Err(format!("header `{name}` whose value is not a string"));
        };
        if reserved(&name) {
            return Err(format!("header `{name}`, which Herald sets itself"));
        }
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("an invalid header name `{name}`"))?;
        http::HeaderValue::from_str(&value)
            .map_err(|_| format!("an invalid value for header `{name}`"))?;
        reshaped.headers.push((name, value));
    }
    for (name, value) in change.properties {
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(format!(
                "property `{name}` that is not a string, number or boolean"
            ));
        }
        reshaped.properties.push((name, value));
    }
    reshaped.subject = change.subject;
    reshaped.partition_key = change.partition_key;
    Ok(Reshaping::Send(reshaped))
}

/// The outbound message with `reshaped` applied.
pub fn apply<'a>(message: &Outbound<'a>, reshaped: Reshaped) -> Outbound<'a> {
    Outbound {
        reshaped: Some(Arc::new(reshaped)),
        ..message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_answer_sends_unchanged_and_drop_drops() {
        assert_eq!(reshaping("{}"), Ok(Reshaping::Send(Reshaped::default())));
        assert_eq!(reshaping(r#"{"drop": true}"#), Ok(Reshaping::Drop));
    }

    #[test]
    fn a_json_body_is_serialized_and_a_text_body_kept_as_text() {
        let Ok(Reshaping::Send(r)) = reshaping(r#"{"message": {"body": {"a": 1}}}"#) else {
            panic!()
        };
        assert_eq!(r.body.as_deref(), Some(br#"{"a":1}"#.as_slice()));
        let Ok(Reshaping::Send(r)) =
            reshaping(r#"{"message": {"body": "hi", "content_type": "text/plain"}}"#)
        else {
            panic!()
        };
        assert_eq!(r.body.as_deref(), Some(b"hi".as_slice()));
    }

    #[test]
    fn herald_s_own_headers_cannot_be_set() {
        for name in [
            "webhook-signature",
            "Content-Type",
            "herald-depth",
            "x-ms-dynamics-depth",
        ] {
            let answer = format!(r#"{{"message": {{"headers": {{"{name}": "x"}}}}}}"#);
            assert!(reshaping(&answer).is_err(), "{name}");
        }
        assert!(reshaping(r#"{"message": {"headers": {"x-card": "teams"}}}"#).is_ok());
        assert!(reshaping(r#"{"message": {"properties": {"p": [1]}}}"#).is_err());
        assert!(reshaping(r#"{"unknown": 1}"#).is_err());
    }
}
