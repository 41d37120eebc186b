//! A Dataverse environment as a source: what its webhook service endpoint posts (the
//! `RemoteExecutionContext` JSON of a Create, Update, Delete or custom message) turned into
//! the matching cataloged event — a table's event with its `Target` and images, or a custom
//! event with its parameters. The inverse of `formats::dataverse`: what Herald writes in the
//! Dataverse format reads back as the event it was.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use subtle::ConstantTimeEq;

use super::{SourceConfig, SourceState, SourceStatus, SourceView};
use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::ingest::Submission;
use crate::model::{row_event_name, RowImages, RowMessage, SecretString};

/// A configured Dataverse source.
#[derive(Debug, Clone)]
pub struct DataverseSource {
    /// Its configuration (checked: `auth` and `solution` are set).
    pub config: SourceConfig,
    /// What it has taken.
    pub status: SourceStatus,
}

impl DataverseSource {
    /// The source `config`, listening.
    pub fn new(config: SourceConfig) -> Self {
        let solutions: Vec<String> = config.solution.iter().cloned().collect();
        let mut view = SourceView::new(
            &config.name,
            "dataverse",
            format!("POST /v1/sources/{}/events", config.name),
            solutions,
        );
        view.state = SourceState::Listening;
        let status = SourceStatus::new(view);
        Self { config, status }
    }

    /// Whether a request with these headers and query pairs carries the source's secret
    /// (compared in constant time).
    pub fn authorized<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        query: &[(String, String)],
    ) -> bool {
        let given = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let (presented, expected) = match &self.config.auth {
            Some(DataverseAuth::WebhookKey { key }) => (given("code"), key),
            Some(DataverseAuth::HttpHeader { name, value }) => (header(name), value),
            Some(DataverseAuth::HttpQueryString { name, value }) => (given(name), value),
            None => return false,
        };
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.expose().as_bytes())))
    }

    /// Who its events are sent by: a caller of its solution only.
    pub fn caller(&self) -> Principal {
        Principal {
            name: format!("source:{}", self.config.name),
            solutions: Some(self.config.solution.iter().cloned().collect()),
            admin: false,
            system: false,
        }
    }

    /// The solution its posts belong to.
    pub fn solution(&self) -> &str {
        self.config.solution.as_deref().unwrap_or_default()
    }
}

/// How a Dataverse service endpoint authenticates to Herald, as Dataverse sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataverseAuth {
    /// `WebhookKey`: the key as the `code` query parameter.
    WebhookKey {
        /// The key.
        key: SecretString,
    },
    /// `HttpHeader`: a header with this value.
    HttpHeader {
        /// The header's name.
        name: String,
        /// Its value.
        value: SecretString,
    },
    /// `HttpQueryString`: a query parameter with this value.
    HttpQueryString {
        /// The parameter's name.
        name: String,
        /// Its value.
        value: SecretString,
    },
}

/// Why a post is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct PostError {
    /// The field of the context.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn wrong(field: &'static str, problem: impl Into<String>) -> PostError {
    PostError {
        field,
        problem: problem.into(),
    }
}

/// The submission a posted context makes for a source of `solution` named `source`.
pub fn submission(
    catalog: &Catalog,
    solution: &str,
    source: &str,
    context: &Value,
) -> Result<Submission, PostError> {
    let text = |field: &'static str| {
        context
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| wrong(field, "is missing: this is not a RemoteExecutionContext"))
    };
    let message = text("MessageName")?;
    let entity = context
        .get("PrimaryEntityName")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let request = text("RequestId")
        .or_else(|_| text("OperationId"))
        .map_err(|_| {
            wrong(
                "RequestId",
                "is missing: Dataverse sends it with every post",
            )
        })?;
    let inputs = context.get("InputParameters").unwrap_or(&Value::Null);
    let depth = context
        .get("Depth")
        .and_then(Value::as_u64)
        .map_or(1, |d| d.clamp(1, 1000) as u32);
    let prefix = catalog
        .solutions()
        .iter()
        .find(|s| s.unique_name == solution)
        .map_or(solution, |s| s.publisher_prefix.as_str());
    let row_message = RowMessage::parse(message);
    let table = catalog
        .table(entity)
        .filter(|t| t.solution == solution && row_message.is_some_and(|m| t.messages.contains(&m)));
    let (name, params, images) = match (row_message, table) {
        (Some(m), Some(table)) => {
            let target =
                pair(inputs, "Target").ok_or_else(|| wrong("InputParameters", "has no Target"))?;
            let exposed = |row: Map<String, Value>| -> Map<String, Value> {
                row.into_iter()
                    .filter(|(k, _)| table.column(k).is_some())
                    .collect()
            };
            let id = target.get("Id").cloned().unwrap_or(Value::Null);
            let mut attributes = match m {
                RowMessage::Delete => Map::new(),
                _ => exposed(entity_attributes(target)),
            };
            if !attributes.contains_key(&table.primary_key) {
                attributes.insert(table.primary_key.clone(), id);
            }
            let image = |field| {
                context
                    .get(field)
                    .and_then(|list| list.as_array())
                    .and_then(|l| l.first())
                    .map(|first| exposed(entity_attributes(&first["value"])))
            };
            let changed = (m == RowMessage::Update).then(|| {
                attributes
                    .keys()
                    .filter(|k| **k != table.primary_key)
                    .cloned()
                    .collect()
            });
            let images = RowImages {
                pre: image("PreEntityImages"),
                post: image("PostEntityImages"),
                changed,
            };
            (
                row_event_name(prefix, &table.logical_name, m),
                json!({"Target": attributes}),
                Some(images),
            )
        }
        _ => {
            // A custom message: the cataloged event of that name, its inputs as parameters.
            let params: Map<String, Value> = inputs
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| Some((i["key"].as_str()?.to_owned(), plain(&i["value"]))))
                        .collect()
                })
                .unwrap_or_default();
            (message.to_owned(), Value::Object(params), None)
        }
    };
    Ok(Submission {
        name,
        params,
        idempotency_key: Some(format!("dataverse:{source}:{request}")),
        correlation_id: context
            .get("CorrelationId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        depth,
        traceparent: None,
        images,
    })
}

/// The value of `key` in a `[{"key", "value"}]` list.
fn pair<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|i| i["key"] == key)
        .map(|i| &i["value"])
}

/// The attributes of an `Entity` (or the key of an `EntityReference`: none), as plain JSON.
fn entity_attributes(entity: &Value) -> Map<String, Value> {
    entity["Attributes"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| Some((i["key"].as_str()?.to_owned(), plain(&i["value"]))))
                .collect()
        })
        .unwrap_or_default()
}

/// A value in Dataverse's typed JSON as Herald's plain JSON: `Money` and `OptionSetValue` as
/// their number, an `EntityReference` as `{"logical_name", "id"}`, an `Entity` as its
/// attributes, `/Date(ms)/` as RFC 3339.
pub fn plain(value: &Value) -> Value {
    match value {
        Value::Object(obj) => {
            let ty = obj
                .get("__type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let contract = ty.split(':').next().unwrap_or_default();
            match contract {
                "Money" | "OptionSetValue" => obj.get("Value").cloned().unwrap_or(Value::Null),
                "EntityReference" => json!({
                    "logical_name": obj.get("LogicalName").cloned().unwrap_or(Value::Null),
                    "id": obj.get("Id").cloned().unwrap_or(Value::Null),
                }),
                "Entity" => Value::Object(entity_attributes(value)),
                "EntityCollection" => Value::Array(
                    obj.get("Entities")
                        .and_then(Value::as_array)
                        .map(|items| {
                            items
                                .iter()
                                .map(|e| Value::Object(entity_attributes(e)))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                "OptionSetValueCollection" => obj.get("Values").cloned().unwrap_or(Value::Null),
                _ => value.clone(),
            }
        }
        Value::String(s) => wcf_date(s).map_or_else(|| value.clone(), Value::String),
        other => other.clone(),
    }
}

/// `/Date(1473727936000)/` (or with an offset, `/Date(1473727936000+0000)/`) as RFC 3339.
fn wcf_date(text: &str) -> Option<String> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let millis = inner
        .find(['+', '-'])
        .filter(|&i| i > 0)
        .map_or(inner, |i| &inner[..i]);
    let ms: i128 = millis.parse().ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_read_back_as_plain_json() {
        let c = "http://schemas.microsoft.com/xrm/2011/Contracts";
        assert_eq!(
            plain(&json!({"__type": format!("Money:{c}"), "Value": 12.5})),
            json!(12.5)
        );
        assert_eq!(
            plain(&json!({"__type": format!("OptionSetValue:{c}"), "Value": 3})),
            json!(3)
        );
        assert_eq!(
            plain(
                &json!({"__type": format!("EntityReference:{c}"), "Id": "a", "LogicalName": "systemuser", "Name": null})
            ),
            json!({"logical_name": "systemuser", "id": "a"})
        );
        assert_eq!(
            plain(&json!("/Date(1473727936000)/")),
            json!("2016-09-13T00:52:16Z")
        );
        assert_eq!(
            plain(&json!("/Date(1473727936000+0000)/")),
            json!("2016-09-13T00:52:16Z")
        );
        assert_eq!(plain(&json!("plain text")), json!("plain text"));
        let huge = format!("/Date({})/", i128::MAX);
        assert_eq!(plain(&json!(huge)), json!(huge));
    }
}
