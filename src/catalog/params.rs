//! Checking the request parameters of one event occurrence against its definition.
//! Every problem is reported, each naming its parameter, so a caller can fix all at once.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::model::definition::{EventDefinition, ParamType, Parameter};

/// One parameter that is wrong, and why.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ParamProblem {
    /// The parameter's name as the caller sent it (or should have).
    pub parameter: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Largest absolute Money value Dataverse accepts.
const MONEY_MAX: f64 = 922_337_203_685_477.0;
/// Largest absolute Decimal value Dataverse accepts.
const DECIMAL_MAX: f64 = 100_000_000_000.0;

/// Checks `params` against `event`; `Ok` when every parameter is valid.
pub fn validate(
    event: &EventDefinition,
    params: &Map<String, Value>,
) -> Result<(), Vec<ParamProblem>> {
    check_fields(&event.parameters, params, Required::Check, || {
        format!("is not a parameter of {}", event.unique_name)
    })
}

/// Checks response property values set so far against `event`'s response properties:
/// each must be declared and of its type; with `complete`, every required one must be set.
pub fn validate_response(
    event: &EventDefinition,
    response: &Map<String, Value>,
    complete: bool,
) -> Result<(), Vec<ParamProblem>> {
    let required = if complete {
        Required::Check
    } else {
        Required::Later
    };
    check_fields(&event.response_properties, response, required, || {
        format!("is not a response property of {}", event.unique_name)
    })
}

/// Whether missing required fields are problems now.
#[derive(PartialEq)]
enum Required {
    Check,
    Later,
}

/// Checks `values` against `fields`: every value declared and of its type, every required
/// field present when `required` says so. `unknown` says why an undeclared name is wrong.
fn check_fields(
    fields: &[Parameter],
    values: &Map<String, Value>,
    required: Required,
    unknown: impl Fn() -> String,
) -> Result<(), Vec<ParamProblem>> {
    let mut problems = Vec::new();
    for p in fields {
        match values.get(&p.name) {
            None | Some(Value::Null) if p.required && required == Required::Check => {
                problems.push(ParamProblem {
                    parameter: p.name.clone(),
                    problem: format!("is required ({})", p.ty.name()),
                })
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                if let Err(problem) = check_value(&p.ty, v) {
                    problems.push(ParamProblem {
                        parameter: p.name.clone(),
                        problem,
                    });
                }
            }
        }
    }
    for name in values.keys() {
        if !fields.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = fields.iter().map(|p| p.name.as_str()).collect();
            let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(k) => format!("; did you mean \"{k}\"? (names are case-sensitive)"),
                None if known.is_empty() => "; it declares none".to_owned(),
                None => format!("; they are: {}", known.join(", ")),
            };
            problems.push(ParamProblem {
                parameter: name.clone(),
                problem: format!("{}{hint}", unknown()),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Checks one value against its type; the error says what was expected.
fn check_value(ty: &ParamType, v: &Value) -> Result<(), String> {
    match ty {
        ParamType::Boolean => v
            .as_bool()
            .map(drop)
            .ok_or_else(|| expected("true or false", v)),
        ParamType::DateTime => {
            let s = v
                .as_str()
                .ok_or_else(|| expected("an ISO 8601 date-time string", v))?;
            check_datetime(s)
        }
        ParamType::Decimal { precision } => check_number(v, precision.unwrap_or(10), DECIMAL_MAX),
        ParamType::Money { precision } => check_number(v, precision.unwrap_or(4), MONEY_MAX),
        ParamType::Float => match v.as_f64() {
            Some(f) if f.is_finite() => Ok(()),
            _ => Err(expected("a number", v)),
        },
        ParamType::Integer => match v.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Ok(()),
            Some(i) => Err(format!("{i} is outside the 32-bit integer range")),
            None => Err(expected("a whole number", v)),
        },
        ParamType::Guid => {
            let s = v.as_str().ok_or_else(|| expected("a GUID string", v))?;
            parse_guid(s)
                .map(drop)
                .ok_or_else(|| format!("\"{s}\" is not a GUID in its 36-character form, e.g. 6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"))
        }
        ParamType::String { max_length } => {
            let s = v.as_str().ok_or_else(|| expected("a string", v))?;
            let len = s.chars().count();
            match max_length {
                Some(max) if len > *max as usize => {
                    Err(format!("is {len} characters long; at most {max} allowed"))
                }
                _ => Ok(()),
            }
        }
        ParamType::StringArray => {
            let items = v
                .as_array()
                .ok_or_else(|| expected("an array of strings", v))?;
            match items.iter().position(|i| !i.is_string()) {
                Some(i) => Err(format!("item {i} is not a string")),
                None => Ok(()),
            }
        }
        ParamType::Picklist { options } => {
            let n = v
                .as_i64()
                .ok_or_else(|| expected("the integer value of an option", v))?;
            if options.iter().any(|o| i64::from(o.value) == n) {
                Ok(())
            } else {
                let allowed: Vec<String> = options
                    .iter()
                    .map(|o| format!("{} ({})", o.value, o.label))
                    .collect();
                Err(format!(
                    "{n} is not an option; allowed: {}",
                    allowed.join(", ")
                ))
            }
        }
        ParamType::Entity { entity } => check_entity(v, entity.as_deref()),
        ParamType::EntityCollection { entity } => {
            let items = v
                .as_array()
                .ok_or_else(|| expected("an array of entity objects", v))?;
            for (i, item) in items.iter().enumerate() {
                check_entity(item, entity.as_deref()).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        ParamType::EntityReference { entity } => check_reference(v, entity.as_deref()),
    }
}

fn expected(what: &str, v: &Value) -> String {
    let got = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("expected {what}, got {got}")
}

/// A Money or Decimal: a JSON number within range and with at most `places` decimals.
fn check_number(v: &Value, places: u8, max: f64) -> Result<(), String> {
    let Value::Number(n) = v else {
        return Err(expected("a number", v));
    };
    let f = n
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| expected("a finite number", v))?;
    if f.abs() > max {
        return Err(format!("{n} is out of range (at most ±{max})"));
    }
    let decimals = decimal_places(&n.to_string());
    if decimals > u32::from(places) {
        return Err(format!(
            "{n} has {decimals} decimal places; at most {places} allowed"
        ));
    }
    Ok(())
}

/// Decimal places of a number's shortest text form (`12.345` → 3, `1e-7` → 7, `1.5e2` → 0).
fn decimal_places(text: &str) -> u32 {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let fraction = mantissa
        .split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len() as i64);
    u32::try_from((fraction - exponent).max(0)).unwrap_or(u32::MAX)
}

/// The table an object names by `@odata.type` (`Microsoft.Dynamics.CRM.account` → `account`).
fn odata_table(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("@odata.type")?
        .as_str()?
        .strip_prefix("Microsoft.Dynamics.CRM.")
}

fn check_entity(v: &Value, entity: Option<&str>) -> Result<(), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| expected("an entity object", v))?;
    match (entity, odata_table(obj)) {
        (Some(want), Some(got)) if want != got => {
            Err(format!("is a \"{got}\" row; expected \"{want}\""))
        }
        _ => Ok(()),
    }
}

/// An entity reference: `{"@odata.type": "Microsoft.Dynamics.CRM.T", "Tid": GUID}` as
/// Dataverse takes it, or `{"logical_name": T, "id": GUID}`.
fn check_reference(v: &Value, entity: Option<&str>) -> Result<(), String> {
    const FORMS: &str = "{\"@odata.type\": \"Microsoft.Dynamics.CRM.account\", \"accountid\": \"<guid>\"} or {\"logical_name\": \"account\", \"id\": \"<guid>\"}";
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{}; write it as {FORMS}", expected("an object", v)))?;
    let (table, id) = if let Some(table) = odata_table(obj) {
        (table, obj.get(&format!("{table}id")))
    } else if let Some(table) = obj.get("logical_name").and_then(Value::as_str) {
        (table, obj.get("id"))
    } else {
        return Err(format!("does not name its table; write it as {FORMS}"));
    };
    if let Some(want) = entity.filter(|want| *want != table) {
        return Err(format!("refers to a \"{table}\" row; expected \"{want}\""));
    }
    match id.and_then(Value::as_str).and_then(parse_guid) {
        Some(_) => Ok(()),
        _ => Err(format!("needs the row's id as a GUID; write it as {FORMS}")),
    }
}

/// A GUID in the one form JSON Schema's `uuid` format names (8-4-4-4-12 hexadecimal
/// digits): not braced, not `urn:uuid:`, not without its hyphens.
fn parse_guid(s: &str) -> Option<uuid::Uuid> {
    (s.len() == 36)
        .then(|| uuid::Uuid::try_parse(s).ok())
        .flatten()
}

/// A date-time as RFC 3339 writes it (JSON Schema's `date-time`): `T` between date and time
/// (not a space), an offset, no leap second (`:60`, which no clock of a sender stores), and a
/// year after 0000.
fn check_datetime(s: &str) -> Result<(), String> {
    let wrong = || {
        format!("\"{s}\" is not an ISO 8601 date-time with an offset, e.g. 2026-11-22T10:30:00Z")
    };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| wrong())?;
    let b = s.as_bytes();
    if !matches!(b.get(10), Some(b'T' | b't')) || b.get(17..19) == Some(b"60") || t.year() < 1 {
        return Err(wrong());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_and_date_times_are_taken_in_their_schema_form_only() {
        assert!(parse_guid("6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10").is_some());
        assert!(parse_guid("6F1C1A2E-4D4B-4E0C-9A55-2B8F3C7D9E10").is_some());
        for wrong in [
            "urn:uuid:6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10",
            "{6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10}",
            "6f1c1a2e4d4b4e0c9a552b8f3c7d9e10",
        ] {
            assert!(parse_guid(wrong).is_none(), "{wrong}");
        }
        assert!(check_datetime("2026-11-22T10:30:00Z").is_ok());
        assert!(check_datetime("2026-11-22t10:30:00.5+01:00").is_ok());
        for wrong in [
            "2026-11-22 10:30:00Z",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "2026-11-22T10:30:00",
        ] {
            assert!(check_datetime(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn decimal_places_are_counted_from_the_shortest_form() {
        assert_eq!(decimal_places("12"), 0);
        assert_eq!(decimal_places("12.345"), 3);
        assert_eq!(decimal_places("12.50"), 1);
        assert_eq!(decimal_places("1e-7"), 7);
        assert_eq!(decimal_places("1.25e1"), 1);
        assert_eq!(decimal_places("1.5e2"), 0);
    }
}
