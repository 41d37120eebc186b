//! One delivery as an AMQP message, the same for Service Bus and Event Hubs (the mapping is
//! written down in the README):
//!
//! - properties: `message-id` = delivery id (stable across retries), `subject` = event name,
//!   `content-type`, `correlation-id` = the event's correlation id, `creation-time`;
//! - header: durable, and the subscription's time to live;
//! - application properties: in the CloudEvents format, the attributes in the AMQP binding's
//!   binary mode (`cloudEvents:id`, `cloudEvents:type`, …); in the Dataverse format, the
//!   properties Dataverse's Service Bus messages carry; in every format, `herald-depth` (the
//!   event's depth, to send back with an event raised while handling this one) and the
//!   parameters the subscription promotes, under their own names;
//! - body: one data section (JSON).

use std::time::{Duration, SystemTime};

use azure_core_amqp::message::{
    AmqpApplicationProperties, AmqpMessageBody, AmqpMessageHeader, AmqpMessageId,
    AmqpMessageProperties,
};
use azure_core_amqp::{AmqpMessage, AmqpSimpleValue, AmqpTimestamp};
use serde_json::Value;

use crate::destinations::{Outbound, Outcome};
use crate::formats::{cloudevents, dataverse};
use crate::model::{Exchange, MessageFormat};

/// The application property prefix of CloudEvents attributes in binary mode.
pub const CLOUDEVENTS_PREFIX: &str = "cloudEvents:";
/// The application property with the event's depth (`herald-depth` on webhooks).
pub const DEPTH_PROPERTY: &str = "herald-depth";
/// Dataverse's application property namespace.
const XRM: &str = "http://schemas.microsoft.com/xrm/2011/Claims/";

/// A message ready to send, with what routes it.
#[derive(Debug, Clone)]
pub struct Built {
    /// The message.
    pub message: AmqpMessage,
    /// Event Hubs partition key, from the subscription's parameter.
    pub partition_key: Option<String>,
}

/// Why an event cannot become an AMQP message; never cured by retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The Dataverse context is too large even without its parameters.
    #[error(
        "the Dataverse message is over {0} KiB even without its parameters; it cannot be sent"
    )]
    DataverseTooLarge(usize),
    /// The session id parameter's value is too long.
    #[error("the session id is over 128 characters; Service Bus refuses it")]
    SessionIdTooLong,
    /// The partition key parameter's value is too long.
    #[error("the partition key is over 128 characters; Event Hubs refuses it")]
    PartitionKeyTooLong,
    /// The session id or partition key parameter is neither text nor a number.
    #[error(
        "parameter \"{0}\" is not a text or number, so it cannot be a session id or partition key"
    )]
    NotText(String),
}

/// Builds the message of `out`; `Err` is a permanent failure (a message that can never be sent).
pub fn build(out: &Outbound<'_>) -> Result<Built, MessageError> {
    let event = out.event;
    let options = out.amqp;
    let mut props = AmqpApplicationProperties::new();
    let body = match out.format {
        MessageFormat::Cloudevents => {
            let ce = |name: &str| format!("{CLOUDEVENTS_PREFIX}{name}");
            props.insert(ce("specversion"), "1.0");
            props.insert(ce("id"), event.id.to_string());
            props.insert(ce("source"), cloudevents::source(&event.solution));
            props.insert(ce("type"), event.name.to_string());
            props.insert(
                ce("time"),
                AmqpSimpleValue::TimeStamp(AmqpTimestamp(Some(event.received_at.into()))),
            );
            props.insert(ce("dataschema"), out.schema_url.clone());
            props.insert(ce("correlationid"), event.correlation_id.clone());
            out.params_json().to_vec()
        }
        MessageFormat::Params => out.params_json().to_vec(),
        MessageFormat::Dataverse => {
            let origin = dataverse::Origin {
                organization: out.organization,
            };
            let context = dataverse::remote_execution_context(
                event,
                out.delivery_id,
                out.definition,
                &origin,
                None,
                out.row,
            );
            let body = dataverse::amqp_body(context, dataverse::SERVICE_BUS_LIMIT).ok_or(
                MessageError::DataverseTooLarge(dataverse::SERVICE_BUS_LIMIT / 1024),
            )?;
            props.insert(format!("{XRM}Organization"), out.organization.to_owned());
            props.insert(
                format!("{XRM}EntityLogicalName"),
                dataverse::primary_entity(out.definition),
            );
            props.insert(
                format!("{XRM}RequestName"),
                dataverse::message_name(event, out.definition),
            );
            props.insert(format!("{XRM}InitiatingUserAgent"), "Herald".to_owned());
            if body.size_exceeded {
                props.insert("MessageMaxSizeExceeded".to_owned(), true);
            }
            body.body
        }
    };
    // Trace context, as the Azure SDKs carry it: `Diagnostic-Id` (what their Service Bus and
    // Event Hubs clients read) and `traceparent`, both the W3C traceparent.
    if let Some(traceparent) = &out.traceparent {
        props.insert("Diagnostic-Id".to_owned(), traceparent.clone());
        props.insert("traceparent".to_owned(), traceparent.clone());
    }
    // The depth travels back when a receiver sends an event while handling this one.
    props.insert(DEPTH_PROPERTY.to_owned(), i64::from(event.depth));
    for name in &options.properties {
        if let Some(v) = event.params.get(name).and_then(simple) {
            props.insert(name.clone(), v);
        }
    }
    let session_id = param_text(out, options.session_id.as_deref())?;
    if session_id.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(MessageError::SessionIdTooLong);
    }
    let mut partition_key = param_text(out, options.partition_key.as_deref())?;
    let mut body = body;
    let mut subject = event.name.to_string();
    let mut content_type = "application/json".to_owned();
    if let Some(reshaped) = out.reshaped.as_deref() {
        if let Some(b) = &reshaped.body {
            body = b.to_vec();
            content_type = reshaped
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into());
        }
        for (name, value) in &reshaped.properties {
            if let Some(v) = simple(value) {
                props.insert(name.clone(), v);
            }
        }
        if let Some(s) = &reshaped.subject {
            subject = s.clone();
        }
        if reshaped.partition_key.is_some() {
            partition_key = reshaped.partition_key.clone();
        }
    }
    if partition_key.as_ref().is_some_and(|s| s.len() > 128) {
        return Err(MessageError::PartitionKeyTooLong);
    }
    let message = AmqpMessage {
        body: AmqpMessageBody::Binary(vec![body]),
        header: Some(AmqpMessageHeader {
            durable: true,
            time_to_live: options.time_to_live.map(ttl),
            ..Default::default()
        }),
        application_properties: Some(props),
        properties: Some(AmqpMessageProperties {
            message_id: Some(AmqpMessageId::String(out.delivery_id.to_string())),
            subject: Some(subject),
            content_type: Some(content_type.into()),
            correlation_id: Some(AmqpMessageId::String(event.correlation_id.clone())),
            creation_time: Some(AmqpTimestamp(Some(SystemTime::from(event.received_at)))),
            group_id: session_id,
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Built {
        message,
        partition_key,
    })
}

/// Notes `built` in `x`: where it goes and what the message says about itself (properties,
/// then application properties). Nothing secret is in a message: credentials travel apart,
/// as the connection's CBS token.
pub fn note(x: &mut Exchange, built: &Built, location: &str) {
    x.target = location.to_owned();
    let m = &built.message;
    if let AmqpMessageBody::Binary(parts) = &m.body {
        if let Some(first) = parts.first() {
            x.sent(first);
        }
    }
    if let Some(p) = &m.properties {
        let id = |v: &AmqpMessageId| match v {
            AmqpMessageId::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        if let Some(v) = &p.message_id {
            x.header("message-id", &id(v));
        }
        if let Some(v) = &p.correlation_id {
            x.header("correlation-id", &id(v));
        }
        if let Some(v) = &p.subject {
            x.header("subject", v);
        }
        if let Some(v) = &p.content_type {
            x.header("content-type", &String::from(v.clone()));
        }
        if let Some(v) = &p.group_id {
            x.header("session-id", v);
        }
    }
    if let Some(key) = &built.partition_key {
        x.header("partition-key", key);
    }
    if let Some(ttl) = m.header.as_ref().and_then(|h| h.time_to_live) {
        x.header("ttl", &format!("{} ms", ttl.whole_milliseconds()));
    }
    if let Some(props) = &m.application_properties {
        for (name, value) in props.0.iter() {
            x.header(name, &simple_text(value));
        }
    }
}

/// The broker's answer, as operators read it: `accepted`, or the error.
pub fn disposition(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered { .. } => "accepted".into(),
        Outcome::Retry { error, .. } | Outcome::Permanent { error, .. } => {
            format!("refused: {}", crate::destinations::error_chain(error))
        }
        Outcome::Gone { .. } => "gone".into(),
    }
}

/// An application property's value as text.
fn simple_text(v: &AmqpSimpleValue) -> String {
    match v {
        AmqpSimpleValue::String(s) => s.clone(),
        AmqpSimpleValue::Boolean(b) => b.to_string(),
        AmqpSimpleValue::Long(n) => n.to_string(),
        AmqpSimpleValue::Int(n) => n.to_string(),
        AmqpSimpleValue::Double(n) => n.to_string(),
        AmqpSimpleValue::TimeStamp(AmqpTimestamp(Some(t))) => time::OffsetDateTime::from(*t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        other => format!("{other:?}"),
    }
}

fn ttl(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(d.as_millis().min(i64::MAX as u128) as i64)
}

/// A parameter as an application property value: strings, booleans, integers (long) and
/// other numbers (double) as themselves; objects and arrays as their JSON text; null dropped.
fn simple(v: &Value) -> Option<AmqpSimpleValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => AmqpSimpleValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AmqpSimpleValue::Long(i),
            None => AmqpSimpleValue::Double(n.as_f64()?),
        },
        Value::String(s) => AmqpSimpleValue::String(s.clone()),
        other => AmqpSimpleValue::String(other.to_string()),
    })
}

/// The text of the parameter `name` names (session id, partition key); `None` when the
/// event does not have it.
fn param_text(out: &Outbound<'_>, name: Option<&str>) -> Result<Option<String>, MessageError> {
    let Some(name) = name else { return Ok(None) };
    Ok(match out.event.params.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Some(_) => return Err(MessageError::NotText(name.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AmqpOptions;
    use crate::model::{DeliveryId, EventId, SubscriptionId};
    use crate::model::{Event, OutgoingEvent};

    fn event(params: Value) -> OutgoingEvent {
        OutgoingEvent::new(Event {
            id: EventId::new(),
            name: crate::model::EventName::parse("contoso_CustomerPurchase").unwrap(),
            solution: "contoso".into(),
            params: params.as_object().cloned().unwrap_or_default(),
            correlation_id: "corr-1".into(),
            caller: "t".into(),
            received_at: time::OffsetDateTime::now_utc(),
            depth: 1,
            pipeline: Default::default(),
            traceparent: None,
            images: None,
        })
    }

    fn build_with(
        format: MessageFormat,
        e: &OutgoingEvent,
        amqp: &AmqpOptions,
    ) -> Result<Built, MessageError> {
        build(&Outbound {
            delivery_id: DeliveryId::new(),
            subscription_id: SubscriptionId::new(),
            format,
            event: e,
            schema_url: "https://h/schema".into(),
            definition: None,
            organization: "org",
            amqp,
            stage: None,
            traceparent: Some(TRACEPARENT.into()),
            reshaped: None,
            row: &Default::default(),
        })
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_context_travels_as_the_azure_sdks_carry_it() {
        let e = event(serde_json::json!({}));
        let b = build_with(MessageFormat::Cloudevents, &e, &Default::default()).unwrap();
        for name in ["Diagnostic-Id", "traceparent"] {
            assert_eq!(
                prop(&b, name),
                Some(&AmqpSimpleValue::String(TRACEPARENT.into())),
                "{name}"
            );
        }
    }

    fn prop<'a>(b: &'a Built, name: &str) -> Option<&'a AmqpSimpleValue> {
        b.message.application_properties.as_ref()?.0.get(name)
    }

    #[test]
    fn cloudevents_attributes_and_promoted_parameters_become_application_properties() {
        let e = event(
            serde_json::json!({"Total": 250.5, "Count": 3, "Currency": "EUR", "Items": ["a"], "Gone": null, "Customer": "c-1"}),
        );
        let amqp = AmqpOptions {
            properties: vec![
                "Total".into(),
                "Count".into(),
                "Items".into(),
                "Gone".into(),
            ],
            session_id: Some("Customer".into()),
            time_to_live: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let b = build_with(MessageFormat::Cloudevents, &e, &amqp).unwrap();
        assert_eq!(
            prop(&b, "cloudEvents:type"),
            Some(&AmqpSimpleValue::String("contoso_CustomerPurchase".into()))
        );
        assert_eq!(
            prop(&b, "cloudEvents:id"),
            Some(&AmqpSimpleValue::String(e.id.to_string()))
        );
        assert_eq!(prop(&b, "Total"), Some(&AmqpSimpleValue::Double(250.5)));
        assert_eq!(prop(&b, "Count"), Some(&AmqpSimpleValue::Long(3)));
        assert_eq!(
            prop(&b, "Items"),
            Some(&AmqpSimpleValue::String("[\"a\"]".into()))
        );
        assert_eq!(prop(&b, "Gone"), None);
        let p = b.message.properties.as_ref().unwrap();
        assert_eq!(p.subject.as_deref(), Some("contoso_CustomerPurchase"));
        assert_eq!(p.group_id.as_deref(), Some("c-1"));
        assert_eq!(
            p.correlation_id,
            Some(AmqpMessageId::String("corr-1".into()))
        );
        let h = b.message.header.as_ref().unwrap();
        assert_eq!(
            h.time_to_live,
            Some(azure_core::time::Duration::seconds(60))
        );
        assert!(h.durable);
    }

    #[test]
    fn the_dataverse_format_carries_dataverse_properties_and_is_stripped_when_too_large() {
        let e = event(serde_json::json!({"Notes": "x".repeat(200 * 1024)}));
        let b = build_with(MessageFormat::Dataverse, &e, &AmqpOptions::default()).unwrap();
        assert_eq!(
            prop(
                &b,
                "http://schemas.microsoft.com/xrm/2011/Claims/RequestName"
            ),
            Some(&AmqpSimpleValue::String("contoso_CustomerPurchase".into()))
        );
        assert_eq!(
            prop(&b, "MessageMaxSizeExceeded"),
            Some(&AmqpSimpleValue::Boolean(true))
        );
        let AmqpMessageBody::Binary(body) = &b.message.body else {
            panic!("a data section")
        };
        assert!(body[0].len() < dataverse::SERVICE_BUS_LIMIT);
        assert_eq!(prop(&b, "cloudEvents:type"), None);
    }

    #[test]
    fn partition_keys_come_from_parameters_and_must_be_text_or_numbers() {
        let e = event(serde_json::json!({"Customer": 42, "Items": ["a"]}));
        let amqp = AmqpOptions {
            partition_key: Some("Customer".into()),
            ..Default::default()
        };
        assert_eq!(
            build_with(MessageFormat::Params, &e, &amqp)
                .unwrap()
                .partition_key
                .as_deref(),
            Some("42")
        );
        let amqp = AmqpOptions {
            partition_key: Some("Items".into()),
            ..Default::default()
        };
        assert!(build_with(MessageFormat::Params, &e, &amqp).is_err());
    }
}
