//! JSON Schema (draft 2020-12) for each event's request parameters, generated from its
//! definition. Written here rather than with `schemars` because the schema comes from
//! catalog data at run time, not from Rust types.

use serde_json::{json, Map, Value};

use crate::model::definition::{EventDefinition, ParamType};

/// The draft this generator writes.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema of `event`'s request parameters; `id` is its `$id` (the URL it is served at).
pub fn event_schema(event: &EventDefinition, id: &str) -> Value {
    let mut properties = Map::new();
    for p in &event.parameters {
        let mut schema = param_schema(&p.ty);
        if let (Some(obj), Some(d)) = (schema.as_object_mut(), &p.description) {
            obj.insert("description".into(), json!(d));
        }
        properties.insert(p.name.clone(), schema);
    }
    let required: Vec<&str> = event
        .parameters
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    let mut schema = json!({
        "$schema": DIALECT,
        "$id": id,
        "title": event.display_name.as_deref().unwrap_or(&event.unique_name),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if let (Some(obj), Some(d)) = (schema.as_object_mut(), &event.description) {
        obj.insert("description".into(), json!(d));
    }
    schema
}

fn param_schema(ty: &ParamType) -> Value {
    match ty {
        ParamType::Boolean => json!({"type": "boolean"}),
        ParamType::DateTime => json!({"type": "string", "format": "date-time"}),
        ParamType::Decimal { precision } => {
            number(precision.unwrap_or(10), 100_000_000_000.0, "Decimal")
        }
        ParamType::Money { precision } => {
            number(precision.unwrap_or(4), 922_337_203_685_477.0, "Money")
        }
        ParamType::Float => json!({"type": "number"}),
        ParamType::Integer => json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
        ParamType::Guid => json!({"type": "string", "format": "uuid"}),
        ParamType::String {
            max_length: Some(n),
        } => json!({"type": "string", "maxLength": n}),
        ParamType::String { max_length: None } => json!({"type": "string"}),
        ParamType::StringArray => json!({"type": "array", "items": {"type": "string"}}),
        ParamType::Picklist { options } => json!({
            "type": "integer",
            "enum": options.iter().map(|o| o.value).collect::<Vec<_>>(),
            "x-options": options,
        }),
        ParamType::Entity { entity } => entity_schema(entity.as_deref()),
        ParamType::EntityCollection { entity } => {
            json!({"type": "array", "items": entity_schema(entity.as_deref())})
        }
        ParamType::EntityReference { entity } => reference_schema(entity.as_deref()),
    }
}

fn number(places: u8, max: f64, kind: &str) -> Value {
    json!({
        "type": "number",
        "minimum": -max,
        "maximum": max,
        "x-precision": places,
        "description": format!("{kind} with at most {places} decimal places"),
    })
}

fn entity_schema(entity: Option<&str>) -> Value {
    match entity {
        Some(t) => json!({
            "type": "object",
            "properties": {"@odata.type": {"const": format!("Microsoft.Dynamics.CRM.{t}")}},
        }),
        None => json!({"type": "object"}),
    }
}

fn reference_schema(entity: Option<&str>) -> Value {
    let odata = match entity {
        Some(t) => json!({
            "type": "object",
            "properties": {
                "@odata.type": {"const": format!("Microsoft.Dynamics.CRM.{t}")},
                format!("{t}id"): {"type": "string", "format": "uuid"},
            },
            "required": ["@odata.type", format!("{t}id")],
        }),
        None => json!({
            "type": "object",
            "properties": {"@odata.type": {"type": "string", "pattern": "^Microsoft\\.Dynamics\\.CRM\\."}},
            "required": ["@odata.type"],
        }),
    };
    let plain = json!({
        "type": "object",
        "properties": {
            "logical_name": match entity { Some(t) => json!({"const": t}), None => json!({"type": "string"}) },
            "id": {"type": "string", "format": "uuid"},
        },
        "required": ["logical_name", "id"],
    });
    json!({"anyOf": [odata, plain]})
}
