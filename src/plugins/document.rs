//! The JSON documents a plug-in is given (`handle`'s input), one shape for every place it runs:
//! `kind` (`step`, `async`, `transform`), the plug-in, its registration's configuration, the
//! event, and what the place adds (a step's `stage`, a delivery's ids, a transformation's
//! `message`). Documented in docs/plugins.md.

use serde_json::{json, Map, Value};

use super::Version;
use crate::model::{Event, PluginSettings};

/// Why the plug-in is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A synchronous step, at its stage (`pre_validation`, `pre_operation`, `post_operation`).
    Step(&'static str),
    /// An asynchronous plug-in: a delivery.
    Async,
    /// A subscription's transformation.
    Transform,
}

/// The event as a plug-in sees it.
pub fn event(event: &Event, params: &Map<String, Value>, shared: &Map<String, Value>) -> Value {
    json!({
        "id": event.id.to_string(),
        "name": event.name.as_str(),
        "solution": event.solution,
        "time": event.received_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "correlation_id": event.correlation_id,
        "depth": event.depth,
        "params": params,
        "shared_variables": shared,
    })
}

/// The input of `version` registered with `settings` for `purpose`, about `event` (as
/// [`event`] made it); `extra` adds the place's own fields.
pub fn input(
    purpose: Purpose,
    version: &Version,
    settings: &PluginSettings,
    event: Value,
    extra: Map<String, Value>,
) -> String {
    let mut doc = Map::new();
    let kind = match purpose {
        Purpose::Step(stage) => {
            doc.insert("stage".into(), Value::from(stage));
            "step"
        }
        Purpose::Async => "async",
        Purpose::Transform => "transform",
    };
    doc.insert("kind".into(), Value::from(kind));
    doc.insert(
        "plugin".into(),
        json!({"name": version.name, "version": version.version}),
    );
    doc.insert("config".into(), settings.config.clone().into());
    doc.insert(
        "secure_config".into(),
        settings
            .secure_config
            .as_ref()
            .map(|s| s.expose().to_owned())
            .into(),
    );
    doc.insert("event".into(), event);
    doc.extend(extra);
    Value::Object(doc).to_string()
}
