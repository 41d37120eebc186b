//! The entry points of Herald's fuzz targets (`fuzz/`) and of the test that replays their
//! corpora: each takes arbitrary bytes, runs one of Herald's parsers on them, and must never
//! panic. What they return is not looked at; what they check, they check with `assert!`
//! (a value that validates must also be written as Dataverse writes it, and so on).

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::model::{DeliveryId, Event, EventId, Filter};

/// One fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name, as `fuzz/` and the corpus replay call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("catalog", catalog),
    ("params", params),
    ("dataverse", dataverse),
    ("config", config),
    ("filters", filters),
];

/// A catalog file: loaded (with Herald's built-in solution) and, when it loads, every event's
/// JSON Schema written.
pub fn catalog(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalog) = crate::catalog::load_texts(&[(PathBuf::from("fuzz.toml"), text.into())]) {
        for c in catalog.categories() {
            for e in catalog.events_in(&c.solution, &c.name) {
                let schema = crate::catalog::event_schema(e, "https://herald.example/schema");
                assert!(schema.is_object());
            }
        }
    }
}

/// A request body as `POST /v1/events/{event}` reads it, validated against an event with a
/// parameter of every type.
pub fn params(data: &[u8]) {
    let Ok(body) = crate::api::parse_body::<Map<String, Value>>(data) else {
        return;
    };
    let _ = crate::catalog::validate(all_types(), &body);
}

/// A body as the Dataverse route (`POST /api/data/v9.2/{action}`) reads it: validated as the
/// action's parameters and, when valid, written as Dataverse's `RemoteExecutionContext`
/// (dates, entities and references converted to its data contracts).
pub fn dataverse(data: &[u8]) {
    let Ok(body) = crate::api::parse_body::<Map<String, Value>>(data) else {
        return;
    };
    let definition = all_types();
    if crate::catalog::validate(definition, &body).is_err() {
        return;
    }
    let event = Event {
        id: EventId::new(),
        name: definition.unique_name.clone(),
        solution: definition.solution.clone(),
        params: body,
        correlation_id: "fuzz".into(),
        caller: "fuzz".into(),
        received_at: time::OffsetDateTime::UNIX_EPOCH,
        depth: 1,
        pipeline: Default::default(),
        traceparent: None,
        images: None,
    };
    let context = crate::formats::dataverse::remote_execution_context(
        &event,
        DeliveryId::new(),
        Some(definition),
        &crate::formats::dataverse::Origin {
            organization: "fuzz",
        },
        None,
        &Default::default(),
    );
    assert!(serde_json::to_vec(&context).is_ok());
}

/// A configuration file, over the embedded defaults.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::from_toml(&[text]);
    }
}

/// A subscription's filter (the first line, JSON) applied to an event's parameters (the
/// rest, JSON).
pub fn filters(data: &[u8]) {
    let (filter, params) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(filter) = serde_json::from_slice::<Filter>(filter) else {
        return;
    };
    let Ok(params) = serde_json::from_slice::<Map<String, Value>>(params) else {
        return;
    };
    let _ = filter.matches(&params);
}

/// An event with a parameter of every type Custom API request parameters have.
fn all_types() -> &'static crate::model::EventDefinition {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            crate::catalog::load_texts(&[(PathBuf::from("all-types.toml"), ALL_TYPES.into())])
                .expect("the fuzz catalog is valid")
        })
        .cataloged("contoso_AllTypes")
        .expect("the fuzz catalog has its event")
}

/// The catalog of the ingestion tests: `contoso_AllTypes` has a parameter of every type.
const ALL_TYPES: &str = include_str!("../tests/catalogs/all-types.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_catalog_loads_and_every_target_takes_empty_and_plain_input() {
        assert_eq!(all_types().parameters.len(), 13);
        assert_eq!(all_types().unique_name, "contoso_AllTypes");
        for (_, run) in TARGETS {
            run(b"");
            run(b"{}");
            run(b"\xff\xfe");
        }
    }
}
