//! A column's text value, as `pgoutput` sends it, in the JSON form of its Dataverse type. The
//! replication session pins `DateStyle` to ISO and `TimeZone` to UTC, so dates arrive in one
//! form. A value that does not read as its declared type travels as its text, unchanged.

use serde_json::{json, Number, Value};

use crate::model::ParamType;

/// `text` as a value of `ty`.
pub fn value(ty: &ParamType, text: &str) -> Value {
    let as_text = || Value::String(text.to_owned());
    match ty {
        ParamType::Boolean => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => as_text(),
        },
        ParamType::Integer | ParamType::Picklist { .. } => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| as_text()),
        ParamType::Decimal { .. } | ParamType::Money { .. } | ParamType::Float => text
            .parse::<Number>()
            .map(Value::Number)
            .unwrap_or_else(|_| as_text()),
        ParamType::DateTime => date_time(text).map_or_else(as_text, Value::String),
        ParamType::EntityReference { entity } => match entity {
            Some(table) => json!({"logical_name": table, "id": text}),
            None => as_text(),
        },
        ParamType::Entity { .. } | ParamType::EntityCollection { .. } => {
            serde_json::from_str(text).unwrap_or_else(|_| as_text())
        }
        ParamType::StringArray => array(text).map_or_else(as_text, Value::from),
        ParamType::String { .. } | ParamType::Guid => as_text(),
    }
}

/// An ISO-style PostgreSQL date, timestamp or timestamptz (`2026-12-07 21:44:06.5+00`) as
/// RFC 3339 (`2026-12-07T21:44:06.5Z`); a value without an offset is taken as UTC.
fn date_time(text: &str) -> Option<String> {
    if text.len() == 10 {
        return Some(format!("{text}T00:00:00Z"));
    }
    let (date, time) = text.split_once(' ')?;
    let offset_at = time.rfind(['+', '-']);
    let (clock, offset) = match offset_at {
        Some(i) => time.split_at(i),
        None => (time, ""),
    };
    let offset = match offset {
        "" | "+00" | "+00:00" => "Z".to_owned(),
        o if o.len() == 3 => format!("{o}:00"),
        o => o.to_owned(),
    };
    let rfc3339 = format!("{date}T{clock}{offset}");
    time::OffsetDateTime::parse(&rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|_| rfc3339)
}

/// A one-dimensional PostgreSQL array literal of text (`{a,"b c",NULL}`); `None` for any
/// other shape.
fn array(text: &str) -> Option<Vec<Value>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None;
                }
                item.push(c);
                chars.next();
            }
        }
        items.push(if !quoted && item == "NULL" {
            Value::Null
        } else {
            Value::String(item)
        });
        match chars.next() {
            Some(',') => continue,
            None => return Some(items),
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_take_their_dataverse_types() {
        assert_eq!(value(&ParamType::Boolean, "t"), json!(true));
        assert_eq!(value(&ParamType::Integer, "42"), json!(42));
        assert_eq!(
            value(&ParamType::Money { precision: None }, "12.50"),
            json!(12.5)
        );
        assert_eq!(
            value(&ParamType::DateTime, "2026-12-07 21:44:06.123+00"),
            json!("2026-12-07T21:44:06.123Z")
        );
        assert_eq!(
            value(&ParamType::DateTime, "2026-12-07 21:44:06+05:30"),
            json!("2026-12-07T21:44:06+05:30")
        );
        assert_eq!(
            value(&ParamType::DateTime, "2026-12-07"),
            json!("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            value(
                &ParamType::EntityReference {
                    entity: Some("account".into())
                },
                "abc"
            ),
            json!({"logical_name": "account", "id": "abc"})
        );
        assert_eq!(
            value(&ParamType::Entity { entity: None }, r#"{"a": 1}"#),
            json!({"a": 1})
        );
    }

    #[test]
    fn arrays_are_read_with_quotes_escapes_and_nulls_and_odd_values_stay_text() {
        assert_eq!(
            value(&ParamType::StringArray, r#"{a,"b c","d\"e",NULL}"#),
            json!(["a", "b c", "d\"e", null])
        );
        assert_eq!(value(&ParamType::StringArray, "{}"), json!([]));
        assert_eq!(value(&ParamType::StringArray, "{{a}}"), json!("{{a}}"));
        assert_eq!(value(&ParamType::Integer, "many"), json!("many"));
        assert_eq!(value(&ParamType::Float, "NaN"), json!("NaN"));
    }
}
