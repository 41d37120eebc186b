//! The catalog's data model: solutions, categories and event definitions, modelled on
//! Dataverse Custom API (the `customapi` and `customapirequestparameter` tables).

use serde::{Deserialize, Serialize};

use super::name::EventName;
use utoipa::ToSchema;

/// The URL an event's JSON Schema is served at (CloudEvents `dataschema`).
pub fn schema_url(public_url: &str, unique_name: &str) -> String {
    format!("{public_url}/v1/catalog/events/{unique_name}/schema")
}

/// A solution: owns events; its publisher prefix starts every event name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    /// Unique name of the solution, e.g. `contoso`.
    pub unique_name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Publisher prefix without the underscore, e.g. `contoso`; event names start with `contoso_`.
    pub publisher_prefix: String,
}

/// Which custom processing steps may be registered on an event (Dataverse's
/// "Allowed Custom Processing Step Type").
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AllowedSteps {
    /// No custom steps: the event cannot be subscribed to.
    None,
    /// Only asynchronous steps (deliveries after the event is stored).
    AsyncOnly,
    /// Synchronous and asynchronous steps.
    SyncAndAsync,
}

/// What an event definition is in Dataverse terms.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A Custom API action (the recommended kind).
    #[default]
    CustomApi,
    /// A custom process action, cataloged for backward compatibility.
    CustomProcessAction,
}

/// The type of a request parameter (Dataverse Custom API parameter types).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(tag = "type")]
pub enum ParamType {
    /// `true` or `false`.
    Boolean,
    /// An ISO 8601 / RFC 3339 date and time with an offset.
    DateTime,
    /// A decimal number; `precision` is the number of decimal places allowed (default 10).
    Decimal {
        /// Decimal places allowed, 0 to 10.
        #[serde(skip_serializing_if = "Option::is_none")]
        precision: Option<u8>,
    },
    /// A table row as a JSON object (optionally with `@odata.type`).
    Entity {
        /// Logical name of the table the row must be of, if constrained.
        #[serde(skip_serializing_if = "Option::is_none")]
        entity: Option<String>,
    },
    /// A list of table rows.
    EntityCollection {
        /// Logical name of the table the rows must be of, if constrained.
        #[serde(skip_serializing_if = "Option::is_none")]
        entity: Option<String>,
    },
    /// A reference to a row: `{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "…"}`
    /// or `{"logical_name": "account", "id": "…"}`.
    EntityReference {
        /// Logical name of the table the reference must point into, if constrained.
        #[serde(skip_serializing_if = "Option::is_none")]
        entity: Option<String>,
    },
    /// A 64-bit floating point number.
    Float,
    /// A 32-bit signed integer.
    Integer,
    /// A currency amount; `precision` is the number of decimal places allowed (default 4).
    Money {
        /// Decimal places allowed, 0 to 4.
        #[serde(skip_serializing_if = "Option::is_none")]
        precision: Option<u8>,
    },
    /// One value of a fixed option set, given by its integer value.
    Picklist {
        /// The options.
        options: Vec<PicklistOption>,
    },
    /// Text, at most `max_length` characters when set.
    String {
        /// Maximum length in characters.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_length: Option<u32>,
    },
    /// A list of strings.
    StringArray,
    /// A GUID.
    Guid,
}

impl ParamType {
    /// The Dataverse name of the type.
    pub fn name(&self) -> &'static str {
        match self {
            ParamType::Boolean => "Boolean",
            ParamType::DateTime => "DateTime",
            ParamType::Decimal { .. } => "Decimal",
            ParamType::Entity { .. } => "Entity",
            ParamType::EntityCollection { .. } => "EntityCollection",
            ParamType::EntityReference { .. } => "EntityReference",
            ParamType::Float => "Float",
            ParamType::Integer => "Integer",
            ParamType::Money { .. } => "Money",
            ParamType::Picklist { .. } => "Picklist",
            ParamType::String { .. } => "String",
            ParamType::StringArray => "StringArray",
            ParamType::Guid => "Guid",
        }
    }

    /// All type names, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "Boolean",
        "DateTime",
        "Decimal",
        "Entity",
        "EntityCollection",
        "EntityReference",
        "Float",
        "Integer",
        "Money",
        "Picklist",
        "String",
        "StringArray",
        "Guid",
    ];
}

/// One option of a picklist parameter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PicklistOption {
    /// The integer value sent by callers.
    pub value: i32,
    /// Its label.
    pub label: String,
}

/// A typed request parameter of an event.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Parameter {
    /// Name as callers send it, e.g. `CustomerId`.
    pub name: String,
    /// Type and its constraints.
    #[serde(flatten)]
    pub ty: ParamType,
    /// Whether callers must send it.
    pub required: bool,
    /// What it means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An event definition, modelled on a Dataverse Custom API action.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct EventDefinition {
    /// Unique name, starting with the solution's publisher prefix and `_`.
    pub unique_name: EventName,
    /// Unique name of the solution that owns it.
    pub solution: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// What the event means.
    #[serde(default)]
    pub description: Option<String>,
    /// `global`, or the logical name of the table the event is bound to.
    pub binding: String,
    /// Which processing steps may be registered.
    pub allowed_steps: AllowedSteps,
    /// The event already happened elsewhere: async steps only, no response properties.
    #[serde(default)]
    pub external: bool,
    /// Custom API or custom process action.
    #[serde(default)]
    pub kind: EventKind,
    /// Request parameters.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Response properties (never on external events): typed like parameters; synchronous
    /// steps set them and the caller gets them back. A required one must be set by a step.
    #[serde(default)]
    pub response_properties: Vec<Parameter>,
    /// A function rather than an action (only actions can be cataloged).
    pub is_function: bool,
    /// A private Custom API (cannot be cataloged).
    pub is_private: bool,
    /// The plug-in type of the main operation, if any (never on external events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_type: Option<String>,
    /// Whether a custom process action is activated; a disabled one cannot be invoked.
    pub enabled: bool,
    /// The category the event is cataloged under; `None` for an uncataloged definition,
    /// which can be neither invoked nor subscribed to.
    pub category: Option<String>,
    /// For a table's event (`Create`, `Update`, `Delete` of its rows): the message and the
    /// table's primary key; the table is `binding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<RowEvent>,
}

impl EventDefinition {
    /// The parameter called `name`, if any.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The response property called `name`, if any.
    pub fn response_property(&self, name: &str) -> Option<&Parameter> {
        self.response_properties.iter().find(|p| p.name == name)
    }
}

/// A message of a table: what happened to a row.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum RowMessage {
    /// A row was inserted.
    Create,
    /// A row was changed.
    Update,
    /// A row was removed.
    Delete,
}

impl RowMessage {
    /// The message's name, as Dataverse writes it in `MessageName`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RowMessage::Create => "Create",
            RowMessage::Update => "Update",
            RowMessage::Delete => "Delete",
        }
    }

    /// Parses a message name (`Create`, `Update`, `Delete`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Create" => Some(RowMessage::Create),
            "Update" => Some(RowMessage::Update),
            "Delete" => Some(RowMessage::Delete),
            _ => None,
        }
    }
}

/// One exposed column of a cataloged table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Column {
    /// The attribute's logical name, as events carry it (`contoso_total`).
    pub name: String,
    /// The column's name in the source database, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Its Dataverse type.
    #[serde(flatten)]
    pub ty: ParamType,
    /// What it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Column {
    /// The column's name in the source database.
    pub fn source_name(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }
}

/// What a cataloged event of a table is: the message, and the attribute naming the row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RowEvent {
    /// The message.
    pub message: RowMessage,
    /// The table's primary key attribute.
    pub primary_key: String,
    /// The table's exposed columns, so formats type each attribute (in the catalog's table).
    #[serde(skip)]
    #[schema(ignore)]
    pub columns: std::sync::Arc<[Column]>,
}

/// A category of a solution's catalog, grouping its high-value events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Unique name of the solution the category belongs to.
    pub solution: String,
    /// Name of the category, unique within the solution, e.g. `Sales`.
    pub name: String,
    /// What the category holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Unique names of the events cataloged in it.
    #[serde(default)]
    pub events: Vec<String>,
}
