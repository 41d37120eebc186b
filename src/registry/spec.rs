//! What a user declares for an endpoint or a subscription, in the admin API's bodies and in
//! the configuration file alike; the registry checks it and turns it into the model's records.

use std::num::NonZeroU32;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::destinations::kind::InputError;
use crate::destinations::kinds::{input_references, input_schemas, DestinationInput};
use crate::model::{AmqpOptions, EndpointKind, Filter, MessageFormat, Mode, Stage};

/// An endpoint to create or replace: the fields every endpoint has, and its destination as
/// its kind takes it. On the wire it is one JSON object whose `kind` says which fields apply;
/// a field of another kind is refused by name.
#[derive(Debug, Clone)]
pub struct EndpointInput {
    /// Unique name.
    pub name: String,
    /// Deliveries per second to this endpoint, all instances together, with an optional burst.
    pub rate_limit: Option<crate::model::RateLimit>,
    /// Deliveries in flight at once to this endpoint.
    pub max_concurrency: Option<NonZeroU32>,
    /// Where it sends and how: the input of its kind.
    pub destination: DestinationInput,
}

/// The fields every endpoint has, whatever its kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Shared {
    /// Unique name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// Kind of destination.
    kind: EndpointKind,
    /// Deliveries per second to this endpoint, all instances together, with an optional
    /// burst: `{"per_second": 200, "burst": 10}`. A receiver's `429` with `Retry-After`
    /// lowers it for a while.
    #[serde(default)]
    rate_limit: Option<crate::model::RateLimit>,
    /// Deliveries in flight at once to this endpoint.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295.0)]
    max_concurrency: Option<NonZeroU32>,
}

/// The names of the fields of [`Shared`].
const SHARED: [&str; 4] = ["name", "kind", "rate_limit", "max_concurrency"];

impl EndpointInput {
    /// An endpoint's input from a JSON object: the shared fields, then the fields of its kind;
    /// a wrong or unknown field is named.
    pub fn from_json(mut fields: Map<String, Value>) -> Result<Self, InputError> {
        let shared: Map<String, Value> = SHARED
            .iter()
            .filter_map(|k| fields.remove(*k).map(|v| ((*k).to_owned(), v)))
            .collect();
        let shared: Shared =
            serde_path_to_error::deserialize(Value::Object(shared)).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                // A missing field is reported at the object; name it.
                match message.strip_prefix("missing field `") {
                    Some(rest) => InputError::new(rest.trim_end_matches('`'), "is required"),
                    None => {
                        InputError::new(if path == "." { "body".into() } else { path }, message)
                    }
                }
            })?;
        Ok(EndpointInput {
            name: shared.name,
            rate_limit: shared.rate_limit,
            max_concurrency: shared.max_concurrency,
            destination: DestinationInput::parse(shared.kind, fields)?,
        })
    }

    /// An endpoint called `name` sending to `destination`, without a rate limit or a
    /// concurrency of its own.
    pub fn new(name: impl Into<String>, destination: DestinationInput) -> Self {
        EndpointInput {
            name: name.into(),
            rate_limit: None,
            max_concurrency: None,
            destination,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EndpointKind {
        self.destination.kind()
    }
}

/// From a configuration file: the same object as the API takes.
impl<'de> Deserialize<'de> for EndpointInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = Map::<String, Value>::deserialize(d)?;
        EndpointInput::from_json(fields)
            .map_err(|e| serde::de::Error::custom(format!("`{}` {}", e.field, e.message)))
    }
}

/// In the OpenAPI document: one object per kind (`oneOf`, told apart by `kind`), each with
/// the shared fields and its kind's.
impl utoipa::PartialSchema for EndpointInput {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(shared)) = Shared::schema() else {
            unreachable!("a derived struct schema is an object")
        };
        let mut one_of = OneOfBuilder::new();
        for (kind, input) in input_schemas() {
            let mut object = shared.clone();
            object.properties.insert(
                "kind".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([kind.as_str()]))
                    .description(Some(format!(
                        "`{}`: {}",
                        kind.as_str(),
                        kind.display_name()
                    )))
                    .into(),
            );
            if let RefOr::T(Schema::Object(own)) = input {
                object.properties.extend(own.properties);
                object.required.extend(own.required);
            }
            one_of = one_of.item(Schema::Object(object));
        }
        one_of
            .discriminator(Some(Discriminator::new("kind")))
            .into()
    }
}

impl ToSchema for EndpointInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <Shared as ToSchema>::schemas(schemas);
        input_references(schemas);
    }
}

/// A subscription to create or replace.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Unique name; generated when absent.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// A cataloged event's unique name (or give `category`).
    #[serde(default)]
    pub event: Option<String>,
    /// A category: every event cataloged in it (with `solution`).
    #[serde(default)]
    pub category: Option<String>,
    /// The solution of `category` (optional when only one solution has such a category).
    #[serde(default)]
    pub solution: Option<String>,
    /// The endpoint, by id or name.
    pub endpoint: String,
    /// Message format.
    #[serde(default)]
    pub format: MessageFormat,
    /// Conditions on parameter values; all must hold.
    #[serde(default)]
    pub filter: Filter,
    /// Whether it is active (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Order among the subscriptions of one event, lower first (default 1).
    #[serde(default)]
    pub rank: Option<i32>,
    /// `async` (default): a delivery after the event is stored. `sync`: a webhook called in
    /// the request path before the event is stored, whose refusal cancels the event; only on
    /// events that allow `sync_and_async` steps.
    #[serde(default)]
    pub mode: Mode,
    /// Stage of a synchronous step: `pre_validation`, `pre_operation` (default) or
    /// `post_operation`.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Service Bus and Event Hubs endpoints: parameters promoted to application properties,
    /// session id and partition key parameters, time to live.
    #[serde(default)]
    pub amqp: AmqpOptions,
    /// A plug-in that reshapes what this subscription sends (body, headers or application
    /// properties, subject, partition key) or drops the delivery.
    #[serde(default)]
    pub transform: Option<crate::model::Transform>,
    /// On a table's events: filtering attributes (`Update` only) and pre- and post-images.
    #[serde(default)]
    pub row: crate::model::RowOptions,
}
