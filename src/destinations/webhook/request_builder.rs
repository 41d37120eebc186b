//! Builds a webhook request for one delivery: the URL (with Dataverse's query-string
//! authentication), the body in the subscription's format, and the headers that go with it.
//! Signing is added by the client over the body built here.

use reqwest::Url;
use serde_json::Value;

use crate::destinations::Outbound;
use crate::formats::{cloudevents, dataverse};
use crate::model::MessageFormat;
use crate::model::{WebhookAuth, WebhookSettings};

/// A request ready to sign and send.
pub struct Built {
    /// Where to send it.
    pub url: Url,
    /// The body.
    pub body: bytes::Bytes,
    /// Its media type.
    pub content_type: std::borrow::Cow<'static, str>,
    /// Headers besides content type and signature.
    pub headers: Vec<(String, String)>,
    /// The names of those headers whose values are secrets (authentication, secret static
    /// headers): masked wherever the request is shown.
    pub secret: Vec<String>,
}

/// The endpoint's URL with its authentication, the headers every request to it carries, and
/// the names of those that are secrets.
pub struct Target {
    /// The URL, with query-string authentication.
    pub url: Url,
    /// Authentication and static headers.
    pub headers: Vec<(String, String)>,
    /// The names of the secret ones.
    pub secret: Vec<String>,
}

/// The endpoint's URL with its authentication, and the headers every request to it carries
/// (authentication, static headers); `Err` when the URL is unusable.
pub fn target(settings: &WebhookSettings) -> Result<Target, url::ParseError> {
    let mut url = Url::parse(&settings.url)?;
    let mut headers = Vec::new();
    let mut secret = Vec::new();
    match &settings.auth {
        Some(WebhookAuth::HttpHeader { values }) => {
            headers.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            secret.extend(values.keys().cloned());
        }
        Some(WebhookAuth::WebhookKey { key }) => {
            url.query_pairs_mut().append_pair("code", key);
        }
        Some(WebhookAuth::HttpQueryString { values }) => {
            url.query_pairs_mut().extend_pairs(values.iter());
        }
        None => {}
    }
    headers.extend(
        settings
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone())),
    );
    secret.extend(
        settings
            .headers
            .iter()
            .filter(|h| h.secret)
            .map(|h| h.name.clone()),
    );
    Ok(Target {
        url,
        headers,
        secret,
    })
}

/// Builds the request; `Err` when the endpoint's URL is unusable.
pub fn build(settings: &WebhookSettings, message: &Outbound<'_>) -> Result<Built, url::ParseError> {
    let Target {
        url,
        mut headers,
        secret,
    } = target(settings)?;
    let (body, content_type) = match message.format {
        MessageFormat::Cloudevents => (
            message.cloudevents_json(),
            cloudevents::STRUCTURED_CONTENT_TYPE,
        ),
        MessageFormat::Params => (message.params_json(), "application/json"),
        MessageFormat::Dataverse => {
            let origin = dataverse::Origin {
                organization: message.organization,
            };
            let mut context = dataverse::remote_execution_context(
                message.event,
                message.delivery_id,
                message.definition,
                &origin,
                message.stage,
                message.row,
            );
            let mut body = to_vec(&context);
            if body.len() > dataverse::WEBHOOK_LIMIT {
                // As Dataverse: drop the parameters and images, and say so.
                dataverse::strip_for_size(&mut context);
                body = to_vec(&context);
                headers.push(("x-ms-dynamics-msg-size-exceeded".into(), "true".into()));
            }
            headers.push((
                "x-ms-dynamics-organization".into(),
                message.organization.to_owned(),
            ));
            headers.push((
                "x-ms-dynamics-entity-name".into(),
                dataverse::primary_entity(message.definition),
            ));
            headers.push((
                "x-ms-dynamics-request-name".into(),
                dataverse::message_name(message.event, message.definition),
            ));
            headers.push((
                "x-ms-correlation-request-id".into(),
                message.event.correlation_id.clone(),
            ));
            headers.push((
                "x-ms-dynamics-depth".into(),
                message.event.depth.to_string(),
            ));
            (body.into(), "application/json")
        }
    };
    // What a receiver sends back with an event it raises while handling this one, so the
    // new event gets this one's depth + 1 and its correlation id (loop prevention).
    headers.push((DEPTH_HEADER.into(), message.event.depth.to_string()));
    headers.push((
        "x-correlation-id".into(),
        message.event.correlation_id.clone(),
    ));
    // W3C trace context: the receiver's span continues the attempt's.
    if let Some(traceparent) = &message.traceparent {
        headers.push(("traceparent".into(), traceparent.clone()));
    }
    let (body, content_type) = match message.reshaped.as_deref() {
        Some(reshaped) => {
            headers.extend(reshaped.headers.iter().cloned());
            match &reshaped.body {
                Some(body) => (
                    body.clone(),
                    std::borrow::Cow::Owned(
                        reshaped
                            .content_type
                            .clone()
                            .unwrap_or_else(|| "application/json".into()),
                    ),
                ),
                None => (body, std::borrow::Cow::Borrowed(content_type)),
            }
        }
        None => (body, std::borrow::Cow::Borrowed(content_type)),
    };
    if message.stage.is_some() && !message.event.pipeline.shared_variables.is_empty() {
        headers.push((
            SHARED_VARIABLES_HEADER.into(),
            ascii_json(&Value::Object(
                message.event.pipeline.shared_variables.clone(),
            )),
        ));
    }
    Ok(Built {
        url,
        body,
        content_type,
        headers,
        secret,
    })
}

/// The header with the event's depth on every webhook request.
pub const DEPTH_HEADER: &str = "herald-depth";
/// The header with the shared variables the earlier steps set, on a synchronous step's call
/// (as JSON; Dataverse-format calls also carry them in `SharedVariables`).
pub const SHARED_VARIABLES_HEADER: &str = "herald-shared-variables";

/// `v` as JSON in visible ASCII (characters past ASCII escaped), fit for a header value.
fn ascii_json(v: &Value) -> String {
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryId, EventId, SubscriptionId};
    use crate::model::{Event, OutgoingEvent};

    #[test]
    fn a_dataverse_message_over_256_kb_drops_its_parameters_and_says_so() {
        let mut params = serde_json::Map::new();
        params.insert("Notes".into(), Value::String("x".repeat(300 * 1024)));
        let event = OutgoingEvent::new(Event {
            id: EventId::new(),
            name: crate::model::EventName::parse("contoso_Big").unwrap(),
            solution: "contoso".into(),
            params,
            correlation_id: "c".into(),
            caller: "t".into(),
            received_at: time::OffsetDateTime::now_utc(),
            depth: 1,
            pipeline: Default::default(),
            traceparent: None,
            images: None,
        });
        let settings = WebhookSettings {
            url: "https://example.com/h".into(),
            secrets: vec![],
            timeout: None,
            auth: None,
            headers: Vec::new(),
            validation: Default::default(),
        };
        let message = Outbound {
            delivery_id: DeliveryId::new(),
            subscription_id: SubscriptionId::new(),
            format: MessageFormat::Dataverse,
            event: &event,
            schema_url: String::new(),
            definition: None,
            organization: "org",
            amqp: &Default::default(),
            stage: None,
            traceparent: None,
            reshaped: None,
            row: &Default::default(),
        };
        let built = build(&settings, &message).unwrap();
        assert!(built.body.len() < dataverse::WEBHOOK_LIMIT);
        assert!(built
            .headers
            .contains(&("x-ms-dynamics-msg-size-exceeded".into(), "true".into())));
        let context: Value = serde_json::from_slice(&built.body).unwrap();
        assert_eq!(context["InputParameters"], serde_json::json!([]));
        assert_eq!(context["MessageName"], "contoso_Big");
    }
}
