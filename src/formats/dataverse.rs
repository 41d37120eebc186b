//! The JSON of a Dataverse `RemoteExecutionContext`, as Dataverse posts it to service
//! endpoints (webhooks, Service Bus, Event Hubs), so subscribers written against Dataverse
//! parse Herald's messages unchanged. It uses the WCF data-contract JSON conventions that
//! Dataverse's serializer writes: dates as `/Date(ms)/`, parameters as `[{"key", "value"}]`
//! lists, typed values tagged with `__type`.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::model::{
    Column, DeliveryId, Event, EventDefinition, ImageKind, ParamType, Parameter, RowMessage,
    RowOptions, Stage,
};

const CONTRACTS: &str = "http://schemas.microsoft.com/xrm/2011/Contracts";
/// `Mode`: synchronous (a step in the request path).
const MODE_SYNC: i64 = 0;
/// `Mode`: asynchronous.
const MODE_ASYNC: i64 = 1;

/// Webhook bodies above this size drop their parameters and images (Dataverse's limit).
pub const WEBHOOK_LIMIT: usize = 256 * 1024;

/// The parts of the context that come from where Herald runs, not from the event.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// `OrganizationName` (and the `x-ms-dynamics-organization` header).
    pub organization: &'a str,
}

/// The `RemoteExecutionContext` of one delivery of `event`, or of one synchronous step's call
/// when `stage` is set (`Mode` 0, that `Stage`); an asynchronous delivery runs at
/// post-operation (`Mode` 1, `Stage` 40). A table's event is its message on its table, with
/// `Target` typed as Dataverse types it and the images `row` registers.
pub fn remote_execution_context(
    event: &Event,
    delivery: DeliveryId,
    definition: Option<&EventDefinition>,
    origin: &Origin<'_>,
    stage: Option<Stage>,
    row: &RowOptions,
) -> Value {
    let entity = primary_entity(definition);
    let declared = |fields: Option<&[Parameter]>, key: &str| {
        fields
            .and_then(|f| f.iter().find(|p| p.name == key))
            .map(|p| p.ty.clone())
    };
    let pairs = |values: &Map<String, Value>, fields: Option<&[Parameter]>| -> Vec<Value> {
        values
            .iter()
            .map(|(key, value)| {
                json!({"key": key, "value": typed(declared(fields, key).as_ref(), value)})
            })
            .collect()
    };
    let change = row_change(event, definition, row);
    let inputs = match &change {
        Some(change) => vec![json!({"key": "Target", "value": change.target})],
        None => pairs(&event.params, definition.map(|d| d.parameters.as_slice())),
    };
    let outputs = pairs(
        &event.pipeline.response,
        definition.map(|d| d.response_properties.as_slice()),
    );
    let shared = pairs(&event.pipeline.shared_variables, None);
    let (mode, stage_number, in_transaction) = match stage {
        Some(stage) => (MODE_SYNC, stage.number(), stage != Stage::PreValidation),
        None => (MODE_ASYNC, Stage::PostOperation.number(), false),
    };
    let nil = Uuid::nil().to_string();
    let correlation = Uuid::parse_str(&event.correlation_id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, event.correlation_id.as_bytes()));
    json!({
        "BusinessUnitId": nil,
        "CorrelationId": correlation.to_string(),
        "Depth": event.depth,
        "InitiatingUserAzureActiveDirectoryObjectId": nil,
        "InitiatingUserId": nil,
        "InputParameters": inputs,
        "IsExecutingOffline": false,
        "IsInTransaction": in_transaction,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": message_name(event, definition),
        "Mode": mode,
        "OperationCreatedOn": wcf_date(event.received_at),
        "OperationId": event.id.uuid().to_string(),
        "OrganizationId": Uuid::new_v5(&Uuid::NAMESPACE_DNS, origin.organization.as_bytes()).to_string(),
        "OrganizationName": origin.organization,
        "OutputParameters": outputs,
        "OwningExtension": {
            "Id": nil, "KeyAttributes": [], "LogicalName": "sdkmessageprocessingstep", "Name": null, "RowVersion": null,
        },
        "ParentContext": null,
        "PostEntityImages": change.as_ref().map_or_else(Vec::new, |c| c.post.clone()),
        "PreEntityImages": change.as_ref().map_or_else(Vec::new, |c| c.pre.clone()),
        "PrimaryEntityId": change.as_ref().map_or(nil.clone(), |c| c.id.clone()),
        "PrimaryEntityName": entity,
        "RequestId": delivery.uuid().to_string(),
        "SecondaryEntityName": "none",
        "SharedVariables": shared,
        "Stage": stage_number,
        "UserAzureActiveDirectoryObjectId": nil,
        "UserId": nil,
    })
}

/// `MessageName` (and the request name headers): a table event's message (`Update`), else the
/// event's unique name.
pub fn message_name(event: &Event, definition: Option<&EventDefinition>) -> String {
    match definition.and_then(|d| d.row.as_ref()) {
        Some(row) => row.message.as_str().to_owned(),
        None => event.name.to_string(),
    }
}

/// The parts of a context that a row change fills.
struct RowChange {
    id: String,
    target: Value,
    pre: Vec<Value>,
    post: Vec<Value>,
}

fn row_change(
    event: &Event,
    definition: Option<&EventDefinition>,
    options: &RowOptions,
) -> Option<RowChange> {
    let definition = definition?;
    let row = definition.row.as_ref()?;
    let table = definition.binding.as_str();
    let target = event.params.get("Target").and_then(Value::as_object)?;
    let id = row_id(table, target.get(&row.primary_key));
    let images = |kind| -> Vec<Value> {
        let Some(images) = &event.images else {
            return Vec::new();
        };
        options
            .images_of(kind, images)
            .map(|(key, image)| {
                json!({"key": key, "value": row_entity(table, &id, &row.columns, &image)})
            })
            .collect()
    };
    Some(RowChange {
        target: match row.message {
            RowMessage::Delete => reference(table, &id),
            _ => row_entity(table, &id, &row.columns, target),
        },
        pre: images(ImageKind::Pre),
        post: images(ImageKind::Post),
        id,
    })
}

/// A row's id as Dataverse writes it, a GUID: the key itself when it is one; for another key
/// (an integer, a text), a name-based UUID of the table and the key, the same every time.
pub fn row_id(table: &str, key: Option<&Value>) -> String {
    let text = match key {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return Uuid::nil().to_string(),
        Some(other) => other.to_string(),
    };
    match Uuid::try_parse(&text) {
        Ok(id) => id.to_string(),
        Err(_) => {
            Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{table}:{text}").as_bytes()).to_string()
        }
    }
}

/// A row as a Dataverse `Entity`, each attribute typed by its column.
fn row_entity(table: &str, id: &str, columns: &[Column], attributes: &Map<String, Value>) -> Value {
    let attributes: Vec<Value> = attributes
        .iter()
        .map(|(key, value)| {
            let ty = columns.iter().find(|c| c.name == *key).map(|c| &c.ty);
            json!({"key": key, "value": typed(ty, value)})
        })
        .collect();
    contract(
        "Entity",
        Map::from_iter([
            ("Attributes".into(), Value::Array(attributes)),
            ("EntityState".into(), Value::Null),
            ("FormattedValues".into(), json!([])),
            ("Id".into(), json!(id)),
            ("KeyAttributes".into(), json!([])),
            ("LogicalName".into(), json!(table)),
            ("RelatedEntities".into(), json!([])),
            ("RowVersion".into(), Value::Null),
        ]),
    )
}

/// `PrimaryEntityName`: the bound table, or `none` for a global event.
pub fn primary_entity(definition: Option<&EventDefinition>) -> String {
    match definition.map(|d| d.binding.as_str()) {
        Some("global") | None => "none".to_owned(),
        Some(table) => table.to_owned(),
    }
}

/// Service Bus messages above this size are stripped like oversized webhooks (Dataverse's limit).
pub const SERVICE_BUS_LIMIT: usize = 192 * 1024;

/// A Dataverse-format body for an AMQP destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpBody {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Whether it was stripped: set the `MessageMaxSizeExceeded` application property.
    pub size_exceeded: bool,
}

/// The body of a Dataverse-format Service Bus (or Event Hubs) message: stripped as Dataverse
/// strips it past `limit`; `None` when even the stripped message is too large, which
/// Dataverse does not send either (a permanent failure).
pub fn amqp_body(mut context: Value, limit: usize) -> Option<AmqpBody> {
    let body = serde_json::to_vec(&context).expect("JSON values always serialize");
    if body.len() <= limit {
        return Some(AmqpBody {
            body,
            size_exceeded: false,
        });
    }
    strip_for_size(&mut context);
    let body = serde_json::to_vec(&context).expect("JSON values always serialize");
    (body.len() <= limit).then_some(AmqpBody {
        body,
        size_exceeded: true,
    })
}

/// Strips what Dataverse strips from a message over its size limit; `true` if it did.
pub fn strip_for_size(context: &mut Value) -> bool {
    let Some(obj) = context.as_object_mut() else {
        return false;
    };
    obj.insert("ParentContext".into(), Value::Null);
    for key in ["InputParameters", "PreEntityImages", "PostEntityImages"] {
        obj.insert(key.into(), json!([]));
    }
    true
}

/// `/Date(milliseconds)/`, the WCF JSON form of a date.
fn wcf_date(t: time::OffsetDateTime) -> String {
    format!("/Date({})/", t.unix_timestamp_nanos() / 1_000_000)
}

/// A typed value: `__type` first, as the WCF deserializer requires (serde_json keeps
/// insertion order in this build).
fn contract(name: &str, fields: Map<String, Value>) -> Value {
    let mut ordered = Map::new();
    ordered.insert("__type".into(), json!(format!("{name}:{CONTRACTS}")));
    ordered.extend(fields);
    Value::Object(ordered)
}

/// A parameter value in Dataverse's typed JSON form.
fn typed(ty: Option<&ParamType>, value: &Value) -> Value {
    match (ty, value) {
        (Some(ParamType::Money { .. }), Value::Number(_)) => {
            contract("Money", Map::from_iter([("Value".into(), value.clone())]))
        }
        (Some(ParamType::Picklist { .. }), Value::Number(_)) => contract(
            "OptionSetValue",
            Map::from_iter([("Value".into(), value.clone())]),
        ),
        (Some(ParamType::DateTime), Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| json!(wcf_date(t)))
                .unwrap_or_else(|_| value.clone())
        }
        (Some(ParamType::EntityReference { .. }), Value::Object(obj)) => {
            let (table, id) = reference_parts(obj);
            reference(&table, &id)
        }
        (Some(ParamType::Entity { .. }), Value::Object(obj)) => entity(obj),
        (Some(ParamType::EntityCollection { .. }), Value::Array(items)) => contract(
            "EntityCollection",
            Map::from_iter([
                (
                    "Entities".into(),
                    Value::Array(
                        items
                            .iter()
                            .map(|i| i.as_object().map_or(Value::Null, entity))
                            .collect(),
                    ),
                ),
                ("EntityName".into(), Value::Null),
                ("MoreRecords".into(), json!(false)),
            ]),
        ),
        _ => value.clone(),
    }
}

/// An `EntityReference` to row `id` of `table`.
fn reference(table: &str, id: &str) -> Value {
    contract(
        "EntityReference",
        Map::from_iter([
            ("Id".into(), json!(id)),
            ("KeyAttributes".into(), json!([])),
            ("LogicalName".into(), json!(table)),
            ("Name".into(), Value::Null),
            ("RowVersion".into(), Value::Null),
        ]),
    )
}

fn reference_parts(obj: &Map<String, Value>) -> (String, String) {
    let odata = obj
        .get("@odata.type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix("Microsoft.Dynamics.CRM."));
    let table = odata
        .or_else(|| obj.get("logical_name").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let id = obj
        .get(&format!("{table}id"))
        .or_else(|| obj.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (table, id)
}

fn entity(obj: &Map<String, Value>) -> Value {
    let table = obj
        .get("@odata.type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix("Microsoft.Dynamics.CRM."))
        .unwrap_or_default();
    let attributes: Vec<Value> = obj
        .iter()
        .filter(|(k, _)| !k.starts_with('@'))
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    contract(
        "Entity",
        Map::from_iter([
            ("Attributes".into(), Value::Array(attributes)),
            ("EntityState".into(), Value::Null),
            ("FormattedValues".into(), json!([])),
            (
                "Id".into(),
                json!(obj
                    .get(&format!("{table}id"))
                    .and_then(Value::as_str)
                    .unwrap_or("00000000-0000-0000-0000-000000000000")),
            ),
            ("KeyAttributes".into(), json!([])),
            ("LogicalName".into(), json!(table)),
            ("RelatedEntities".into(), json!([])),
            ("RowVersion".into(), Value::Null),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_bus_body_over_192_kb_is_stripped_and_marked_or_refused() {
        let small = json!({"MessageName": "m", "InputParameters": [{"key": "a", "value": 1}]});
        assert!(!amqp_body(small, SERVICE_BUS_LIMIT).unwrap().size_exceeded);
        let big = json!({"MessageName": "m", "InputParameters": [{"key": "a", "value": "x".repeat(200 * 1024)}]});
        let stripped = amqp_body(big, SERVICE_BUS_LIMIT).unwrap();
        assert!(stripped.size_exceeded && stripped.body.len() < SERVICE_BUS_LIMIT);
        let still_big = json!({"MessageName": "x".repeat(200 * 1024)});
        assert_eq!(amqp_body(still_big, SERVICE_BUS_LIMIT), None);
    }

    #[test]
    fn typed_values_use_dataverse_contracts() {
        let money = typed(Some(&ParamType::Money { precision: None }), &json!(42.5));
        assert_eq!(
            serde_json::to_string(&money).unwrap(),
            format!(r#"{{"__type":"Money:{CONTRACTS}","Value":42.5}}"#)
        );
        let when = typed(Some(&ParamType::DateTime), &json!("1970-01-01T00:00:01Z"));
        assert_eq!(when, json!("/Date(1000)/"));
        let r = typed(
            Some(&ParamType::EntityReference { entity: None }),
            &json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"}),
        );
        assert_eq!(r["LogicalName"], "account");
        assert_eq!(r["Id"], "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10");
    }
}
