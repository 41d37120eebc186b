//! CloudEvents 1.0. Webhooks get the structured JSON mode (`application/cloudevents+json`):
//! `id` = event id, `source` = `/herald/{solution}`, `type` = the event's unique name,
//! `time` = when Herald accepted it, `dataschema` = the event's JSON Schema URL,
//! `data` = the parameters, plus the `correlationid` extension.

use serde_json::{json, Value};

use crate::model::Event;

/// The media type of structured-mode JSON.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The `source` attribute of events of `solution`.
pub fn source(solution: &str) -> String {
    format!("/herald/{solution}")
}

/// The structured-mode JSON of `event`, whose data is `data` (its parameters, or a row
/// change's target and images).
pub fn structured_json(event: &Event, schema_url: &str, data: &Value) -> Vec<u8> {
    let time = event
        .received_at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a stored time formats as RFC 3339");
    let doc = json!({
        "specversion": "1.0",
        "id": event.id.to_string(),
        "source": source(&event.solution),
        "type": event.name,
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": schema_url,
        "correlationid": event.correlation_id,
        "data": data,
    });
    serde_json::to_vec(&doc).expect("JSON values always serialize")
}
