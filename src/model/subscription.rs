//! Subscriptions route an event (or a whole category) to an endpoint, in a message format,
//! optionally only when its parameters pass a filter; the vocabulary of modes, stages,
//! formats, filters and AMQP options.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ids::{EndpointId, SubscriptionId};
use super::table::RowOptions;

/// A subscription's transformation: a plug-in run on each delivery before it is sent, which
/// may change the body, headers or application properties, subject and partition key, or drop
/// the delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// The plug-in's name.
    #[schema(min_length = 1, max_length = 100)]
    pub plugin: String,
    /// A version to pin; absent follows the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// A configuration string given to the plug-in (not secret: shown in the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 16384)]
    pub config: Option<String>,
}

/// A subscription: an event or a whole category routed to an endpoint.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Its unique name.
    pub name: String,
    /// The solution of the event or category.
    pub solution: String,
    /// The event subscribed to (or `None` with a category).
    pub event: Option<String>,
    /// The category subscribed to (or `None` with an event).
    pub category: Option<String>,
    /// Where deliveries go.
    pub endpoint_id: EndpointId,
    /// The message format.
    pub format: MessageFormat,
    /// Conditions on parameter values; all must hold.
    pub filter: Filter,
    /// Whether new events create deliveries.
    pub enabled: bool,
    /// Order among subscriptions of one event (lower first).
    pub rank: i32,
    /// Asynchronous (a delivery) or synchronous (in the request path).
    pub mode: Mode,
    /// The stage of a synchronous step.
    pub stage: Option<Stage>,
    /// How events become AMQP messages (Service Bus and Event Hubs endpoints).
    pub amqp: AmqpOptions,
    /// Why it was disabled by Herald (a receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// The plug-in that reshapes (or drops) what this subscription sends.
    pub transform: Option<Transform>,
    /// On a table's event: filtering attributes and images.
    pub row: RowOptions,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    pub updated_at: OffsetDateTime,
}

/// How deliveries of a subscription are written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// CloudEvents 1.0: structured JSON for webhooks, binary mode on AMQP.
    #[default]
    Cloudevents,
    /// The event's parameters alone as a JSON object: what a flow's trigger receives.
    Params,
    /// A Dataverse `RemoteExecutionContext`, for subscribers written against Dataverse.
    Dataverse,
}

impl MessageFormat {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageFormat::Cloudevents => "cloudevents",
            MessageFormat::Params => "params",
            MessageFormat::Dataverse => "dataverse",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cloudevents" => Some(MessageFormat::Cloudevents),
            "params" => Some(MessageFormat::Params),
            "dataverse" => Some(MessageFormat::Dataverse),
            _ => None,
        }
    }
}

/// When a subscription runs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// After the event is stored, through the delivery engine (retries, dead letters).
    #[default]
    Async,
    /// In the request path, before the event is stored; a refusal cancels the event.
    /// Only on events whose `allowed_steps` is `sync_and_async`.
    Sync,
}

/// Where in the pipeline a synchronous step runs (Dataverse's stages).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Stage 10: before the main operation, outside the transaction.
    PreValidation,
    /// Stage 20: before the main operation, inside the transaction.
    PreOperation,
    /// Stage 40: after the main operation, still inside the transaction: the event is stored
    /// only when these steps pass too. They may set response properties and shared variables,
    /// not parameters (the operation has run on them).
    PostOperation,
}

impl Mode {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "async" => Some(Mode::Async),
            "sync" => Some(Mode::Sync),
            _ => None,
        }
    }
}

impl Stage {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::PreValidation => "pre_validation",
            Stage::PreOperation => "pre_operation",
            Stage::PostOperation => "post_operation",
        }
    }

    /// Dataverse's number for the stage (`Stage` of the execution context).
    pub fn number(&self) -> i64 {
        match self {
            Stage::PreValidation => 10,
            Stage::PreOperation => 20,
            Stage::PostOperation => 40,
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pre_validation" => Some(Stage::PreValidation),
            "pre_operation" => Some(Stage::PreOperation),
            "post_operation" => Some(Stage::PostOperation),
            _ => None,
        }
    }
}

/// How a subscription's events become AMQP messages (Service Bus and Event Hubs endpoints).
/// Each field names a parameter of the event; see the README's message mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AmqpOptions {
    /// Parameters copied into application properties, under their own names, so topic
    /// subscriptions can filter on them (SQL and correlation filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// The parameter whose value becomes the Service Bus `session-id` (ordered processing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The parameter whose value becomes the Event Hubs partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// The messages' time to live, e.g. `"1h"` (Service Bus; the entity's default when absent).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = "1h")]
    pub time_to_live: Option<std::time::Duration>,
}

impl AmqpOptions {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The parameter names these options refer to, with the field naming each.
    pub fn parameters(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.properties
            .iter()
            .map(|p| ("amqp.properties", p.as_str()))
            .chain(
                self.session_id
                    .iter()
                    .map(|p| ("amqp.session_id", p.as_str())),
            )
            .chain(
                self.partition_key
                    .iter()
                    .map(|p| ("amqp.partition_key", p.as_str())),
            )
    }
}

/// A comparison on one parameter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal to `value`.
    Eq,
    /// Not equal to `value` (true when the parameter is absent).
    Ne,
    /// Equal to one of the items of `value` (an array).
    In,
    /// Greater than `value` (numbers, or strings such as dates).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Present and not null (`value` is ignored).
    Exists,
}

/// One condition of a filter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The parameter's name.
    pub parameter: String,
    /// The comparison.
    pub op: Op,
    /// The value compared with.
    #[serde(default)]
    pub value: Value,
}

/// Conditions on parameter values; an event passes when all hold (an empty filter passes all).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(transparent)]
pub struct Filter(pub Vec<Condition>);

impl Filter {
    /// Whether `params` pass.
    pub fn matches(&self, params: &Map<String, Value>) -> bool {
        self.0
            .iter()
            .all(|c| c.matches(lookup(params, &c.parameter).filter(|v| !v.is_null())))
    }
}

/// The parameter called `name`; a name that no parameter has and that holds dots walks into
/// objects (`Target.contoso_total`, an attribute of a row change's target).
fn lookup<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    params.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = params.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.as_object()?.get(part))
    })
}

impl Condition {
    fn matches(&self, actual: Option<&Value>) -> bool {
        use std::cmp::Ordering::*;
        match (self.op, actual) {
            (Op::Exists, a) => a.is_some(),
            (Op::Ne, a) => a != Some(&self.value),
            (_, None) => false,
            (Op::Eq, Some(a)) => *a == self.value,
            (Op::In, Some(a)) => self.value.as_array().is_some_and(|items| items.contains(a)),
            (Op::Gt, Some(a)) => compare(a, &self.value) == Some(Greater),
            (Op::Gte, Some(a)) => matches!(compare(a, &self.value), Some(Greater | Equal)),
            (Op::Lt, Some(a)) => compare(a, &self.value) == Some(Less),
            (Op::Lte, Some(a)) => matches!(compare(a, &self.value), Some(Less | Equal)),
        }
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_filter_passes_only_when_every_condition_holds() {
        let f = filter(json!([
            {"parameter": "Currency", "op": "eq", "value": "EUR"},
            {"parameter": "Total", "op": "gte", "value": 100}
        ]));
        let params = |v: Value| v.as_object().unwrap().clone();
        assert!(f.matches(&params(json!({"Currency": "EUR", "Total": 100}))));
        assert!(!f.matches(&params(json!({"Currency": "EUR", "Total": 99.99}))));
        assert!(!f.matches(&params(json!({"Total": 500}))));
    }

    #[test]
    fn a_dotted_name_reaches_into_a_row_change_target() {
        let params = json!({"Target": {"contoso_total": 120, "contoso_status": "new"}});
        let params = params.as_object().unwrap();
        assert!(
            filter(json!([{"parameter": "Target.contoso_total", "op": "gt", "value": 100}]))
                .matches(params)
        );
        assert!(!filter(json!([{"parameter": "Target.missing", "op": "exists"}])).matches(params));
    }

    #[test]
    fn ne_and_exists_treat_null_as_absent() {
        let params = json!({"A": null}).as_object().unwrap().clone();
        assert!(!filter(json!([{"parameter": "A", "op": "exists"}])).matches(&params));
        assert!(filter(json!([{"parameter": "A", "op": "ne", "value": 1}])).matches(&params));
        assert!(!filter(json!([{"parameter": "B", "op": "in", "value": [1]}])).matches(&params));
    }
}
