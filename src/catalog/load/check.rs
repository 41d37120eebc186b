//! The checks of one event definition: its name and solution prefix, binding, the rules of
//! Custom APIs and custom process actions, external events, and its typed parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{is_identifier, is_logical_name, unknown_solution, Problems, RawEvent, RawParameter};
use crate::model::definition::{
    AllowedSteps, EventDefinition, EventKind, ParamType, Parameter, Solution,
};
use crate::model::EventName;

pub(super) fn check_event(
    path: &Path,
    raw: &RawEvent,
    solutions: &BTreeMap<String, (PathBuf, Solution)>,
    problems: &mut Problems,
) -> Option<EventDefinition> {
    let item = Some(format!("event \"{}\"", raw.unique_name));
    let before = problems.0.len();
    match solutions.get(&raw.solution) {
        None => problems.push(
            path,
            item.clone(),
            Some("solution"),
            unknown_solution(&raw.solution),
        ),
        Some((_, s)) => {
            let prefix = format!("{}_", s.publisher_prefix);
            let rest = raw.unique_name.strip_prefix(&prefix);
            if !rest.is_some_and(|r| !r.is_empty() && is_identifier(r)) {
                let msg = format!(
                    "must start with the solution prefix \"{prefix}\" followed by letters and digits, e.g. \"{prefix}OrderShipped\""
                );
                problems.push(path, item.clone(), Some("unique_name"), msg);
            } else if let Err(e) = EventName::parse(&raw.unique_name) {
                problems.push(path, item.clone(), Some("unique_name"), e.to_string());
            }
        }
    }
    if raw.binding != "global" && !is_logical_name(&raw.binding) {
        let msg = "must be `global` or the logical name of a table (lower case), e.g. `account`";
        problems.push(path, item.clone(), Some("binding"), msg.to_owned());
    }
    if raw.external && raw.plugin_type.is_some() {
        let msg =
            "an external event already happened elsewhere, so it has no main-operation plug-in";
        problems.push(path, item.clone(), Some("plugin_type"), msg.to_owned());
    }
    match raw.kind {
        EventKind::CustomProcessAction => {
            if raw.allowed_steps != AllowedSteps::SyncAndAsync {
                let msg = "a custom process action cannot prevent synchronous steps: it must be `sync_and_async` (use a Custom API to forbid them)";
                problems.push(path, item.clone(), Some("allowed_steps"), msg.to_owned());
            }
        }
        EventKind::CustomApi => {
            if raw.enabled.is_some() {
                let msg = "only a custom process action can be enabled or disabled";
                problems.push(path, item.clone(), Some("enabled"), msg.to_owned());
            }
        }
    }
    if raw.external {
        if raw.allowed_steps != AllowedSteps::AsyncOnly {
            let msg = "an external event already happened elsewhere, so it must be `async_only`";
            problems.push(path, item.clone(), Some("allowed_steps"), msg.to_owned());
        }
        if !raw.response_properties.is_empty() {
            let msg = "an external event cannot have response properties";
            problems.push(
                path,
                item.clone(),
                Some("response_properties"),
                msg.to_owned(),
            );
        }
    }
    let parameters = typed_fields(path, &item, "parameters", &raw.parameters, problems);
    let response_properties = typed_fields(
        path,
        &item,
        "response_properties",
        &raw.response_properties,
        problems,
    );
    let unique_name = EventName::parse(&raw.unique_name).ok()?;
    (problems.0.len() == before).then(|| EventDefinition {
        unique_name,
        solution: raw.solution.clone(),
        display_name: raw.display_name.clone(),
        description: raw.description.clone(),
        binding: raw.binding.clone(),
        allowed_steps: raw.allowed_steps,
        external: raw.external,
        kind: raw.kind,
        parameters,
        response_properties,
        is_function: raw.is_function,
        is_private: raw.is_private,
        plugin_type: raw.plugin_type.clone(),
        enabled: raw.enabled.unwrap_or(true),
        category: None,
        row: None,
    })
}

/// The typed fields of a list (`parameters` or `response_properties`): names unique and
/// well formed, types known; each problem names its field.
fn typed_fields(
    path: &Path,
    item: &Option<String>,
    list: &str,
    raws: &[RawParameter],
    problems: &mut Problems,
) -> Vec<Parameter> {
    let mut fields: Vec<Parameter> = Vec::new();
    for (i, p) in raws.iter().enumerate() {
        let field = |f: &str| format!("{list}[{i}].{f}");
        if fields.iter().any(|q| q.name == p.name) {
            let msg = format!("duplicate name \"{}\"", p.name);
            problems.push(path, item.clone(), Some(&field("name")), msg);
            continue;
        }
        if !is_identifier(&p.name) {
            let msg = "must be letters, digits and underscores, starting with a letter".to_owned();
            problems.push(path, item.clone(), Some(&field("name")), msg);
        }
        match param_type(p) {
            Ok(ty) => fields.push(Parameter {
                name: p.name.clone(),
                ty,
                required: p.required,
                description: p.description.clone(),
            }),
            Err((f, msg)) => problems.push(path, item.clone(), Some(&field(f)), msg),
        }
    }
    fields
}

/// Builds a parameter's type from its raw fields; on error, the field and the message.
pub(super) fn param_type(p: &RawParameter) -> Result<ParamType, (&'static str, String)> {
    let only = |field: &'static str, present: bool, types: &str| {
        if present {
            Err((
                field,
                format!("`{field}` only applies to {types} parameters"),
            ))
        } else {
            Ok(())
        }
    };
    let ty = match p.type_name.as_str() {
        "Boolean" => ParamType::Boolean,
        "DateTime" => ParamType::DateTime,
        "Decimal" => ParamType::Decimal {
            precision: precision(p.precision, 10)?,
        },
        "Entity" => ParamType::Entity {
            entity: p.entity.clone(),
        },
        "EntityCollection" => ParamType::EntityCollection {
            entity: p.entity.clone(),
        },
        "EntityReference" => ParamType::EntityReference {
            entity: p.entity.clone(),
        },
        "Float" => ParamType::Float,
        "Integer" => ParamType::Integer,
        "Money" => ParamType::Money {
            precision: precision(p.precision, 4)?,
        },
        "Picklist" => {
            let options = p.options.clone().unwrap_or_default();
            if options.is_empty() {
                return Err(("options", "a Picklist needs at least one option".to_owned()));
            }
            for (i, o) in options.iter().enumerate() {
                if options[..i].iter().any(|q| q.value == o.value) {
                    return Err(("options", format!("option value {} appears twice", o.value)));
                }
            }
            ParamType::Picklist { options }
        }
        "String" => ParamType::String {
            max_length: p.max_length,
        },
        "StringArray" => ParamType::StringArray,
        "Guid" => ParamType::Guid,
        other => {
            let msg = format!(
                "unknown type \"{other}\"; expected one of: {}",
                ParamType::NAMES.join(", ")
            );
            return Err(("type", msg));
        }
    };
    let name = p.type_name.as_str();
    only(
        "max_length",
        p.max_length.is_some() && name != "String",
        "String",
    )?;
    only(
        "precision",
        p.precision.is_some() && !matches!(name, "Money" | "Decimal"),
        "Money and Decimal",
    )?;
    only(
        "options",
        p.options.is_some() && name != "Picklist",
        "Picklist",
    )?;
    let entity_types = ["Entity", "EntityCollection", "EntityReference"];
    only(
        "entity",
        p.entity.is_some() && !entity_types.contains(&name),
        "Entity, EntityCollection and EntityReference",
    )?;
    Ok(ty)
}

fn precision(value: Option<u8>, max: u8) -> Result<Option<u8>, (&'static str, String)> {
    match value {
        Some(v) if v > max => Err(("precision", format!("must be between 0 and {max}"))),
        v => Ok(v),
    }
}
