//! The checks of a cataloged table (`[[tables]]`): its names, columns and messages, and the
//! event definitions it makes, one per message (`contoso_order_Update`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::check::param_type;
use super::{is_identifier, is_logical_name, unknown_solution, Problems, RawParameter};
use crate::model::definition::{AllowedSteps, EventDefinition, EventKind, ParamType, Parameter};
use crate::model::{
    row_event_name, Category, Column, EventName, PicklistOption, RowEvent, RowMessage, Solution,
    TableDefinition,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    logical_name: String,
    solution: String,
    category: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    primary_key: String,
    #[serde(default = "all_messages")]
    messages: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    relation: Option<String>,
    #[serde(default)]
    columns: Vec<RawColumn>,
}

fn all_messages() -> Vec<String> {
    ["Create", "Update", "Delete"].map(String::from).to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(default)]
    column: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_length: Option<u32>,
    #[serde(default)]
    precision: Option<u8>,
    #[serde(default)]
    options: Option<Vec<PicklistOption>>,
    #[serde(default)]
    entity: Option<String>,
}

/// Checks every table; the valid ones with the events they make (not yet in `events`).
pub(super) fn tables<'a>(
    parsed: impl Iterator<Item = (&'a PathBuf, &'a [RawTable])>,
    solutions: &BTreeMap<String, (PathBuf, Solution)>,
    categories: &[Category],
    defined: &BTreeMap<String, (PathBuf, String)>,
    problems: &mut Problems,
) -> (Vec<TableDefinition>, Vec<EventDefinition>) {
    let mut tables: Vec<TableDefinition> = Vec::new();
    let mut events = Vec::new();
    for (path, raws) in parsed {
        for raw in raws {
            let item = Some(format!("table \"{}\"", raw.logical_name));
            if tables.iter().any(|t| t.logical_name == raw.logical_name) {
                let msg = "duplicate table name".to_owned();
                problems.push(path, item, Some("logical_name"), msg);
                continue;
            }
            if let Some(table) = check_table(path, raw, solutions, categories, problems) {
                let made = table_events(&table, solutions);
                let mut clash = false;
                for e in &made {
                    if let Some((first, _)) = defined.get(e.unique_name.as_str()) {
                        let msg = format!(
                            "its {} event \"{}\" is also defined as an event in {}",
                            e.row.as_ref().map_or("", |r| r.message.as_str()),
                            e.unique_name,
                            first.display()
                        );
                        problems.push(path, item.clone(), Some("messages"), msg);
                        clash = true;
                    }
                }
                if !clash {
                    events.extend(made);
                    tables.push(table);
                }
            }
        }
    }
    (tables, events)
}

fn check_table(
    path: &Path,
    raw: &RawTable,
    solutions: &BTreeMap<String, (PathBuf, Solution)>,
    categories: &[Category],
    problems: &mut Problems,
) -> Option<TableDefinition> {
    let item = Some(format!("table \"{}\"", raw.logical_name));
    let before = problems.0.len();
    let mut push = |field: &str, msg: String| problems.push(path, item.clone(), Some(field), msg);
    if !is_logical_name(&raw.logical_name) {
        push(
            "logical_name",
            "must be lower-case letters, digits and `_`, starting with a letter, e.g. `contoso_order`".into(),
        );
    }
    if !solutions.contains_key(&raw.solution) {
        push("solution", unknown_solution(&raw.solution));
    } else if !categories
        .iter()
        .any(|c| c.solution == raw.solution && c.name == raw.category)
    {
        push(
            "category",
            format!(
                "solution \"{}\" has no category \"{}\"; add it under [[categories]]",
                raw.solution, raw.category
            ),
        );
    }
    let mut messages = Vec::new();
    for (i, m) in raw.messages.iter().enumerate() {
        match RowMessage::parse(m) {
            Some(m) if messages.contains(&m) => push(
                &format!("messages[{i}]"),
                format!("\"{}\" appears twice", m.as_str()),
            ),
            Some(m) => messages.push(m),
            None => push(
                &format!("messages[{i}]"),
                format!("\"{m}\" is not a table message: use Create, Update or Delete"),
            ),
        }
    }
    if messages.is_empty() {
        push(
            "messages",
            "enable at least one of Create, Update and Delete".into(),
        );
    }
    let mut columns: Vec<Column> = Vec::new();
    for (i, c) in raw.columns.iter().enumerate() {
        let field = |f: &str| format!("columns[{i}].{f}");
        if !is_logical_name(&c.name) {
            push(
                &field("name"),
                "must be lower-case letters, digits and `_`, starting with a letter".into(),
            );
        }
        if columns.iter().any(|o| o.name == c.name) {
            push(&field("name"), format!("duplicate column \"{}\"", c.name));
        }
        if let Some(source) = &c.column {
            if source.is_empty() || source.len() > 63 || source.contains('"') {
                push(
                    &field("column"),
                    "a database column name: 1 to 63 characters, no `\"`".into(),
                );
            }
        }
        if columns
            .iter()
            .any(|o| o.source_name() == c.column.as_deref().unwrap_or(&c.name))
        {
            push(
                &field("column"),
                "two attributes read the same database column".into(),
            );
        }
        let as_parameter = RawParameter {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
            required: false,
            description: None,
            max_length: c.max_length,
            precision: c.precision,
            options: c.options.clone(),
            entity: c.entity.clone(),
        };
        match param_type(&as_parameter) {
            Ok(ty) => columns.push(Column {
                name: c.name.clone(),
                column: c.column.clone(),
                ty,
                description: c.description.clone(),
            }),
            Err((f, msg)) => push(&field(f), msg),
        }
    }
    if columns.is_empty() {
        push(
            "columns",
            "expose at least the primary key column under [[tables.columns]]".into(),
        );
    } else if !columns.iter().any(|c| c.name == raw.primary_key) {
        push(
            "primary_key",
            format!("\"{}\" is not one of the table's columns", raw.primary_key),
        );
    }
    let relation = raw
        .relation
        .clone()
        .unwrap_or_else(|| format!("public.{}", raw.logical_name));
    let formed = relation.split_once('.').is_some_and(|(schema, table)| {
        is_identifier(schema) && is_identifier(table) && schema.len() <= 63 && table.len() <= 63
    });
    if !formed {
        push(
            "relation",
            "the table in its database as `schema.table` (letters, digits and `_`, each at most 63), e.g. `public.orders`".into(),
        );
    }
    if let Some(source) = &raw.source {
        if !is_identifier(source) {
            push(
                "source",
                "the name of a source of the configuration ([[sources]])".into(),
            );
        }
    }
    (problems.0.len() == before).then(|| TableDefinition {
        logical_name: raw.logical_name.clone(),
        solution: raw.solution.clone(),
        category: raw.category.clone(),
        display_name: raw.display_name.clone(),
        description: raw.description.clone(),
        primary_key: raw.primary_key.clone(),
        columns,
        messages,
        source: raw.source.clone(),
        relation,
    })
}

/// The event definitions of a checked table: one per enabled message, external, asynchronous
/// only (the change already happened in the application's database), cataloged in the
/// table's category, with Dataverse's one input parameter, `Target`.
fn table_events(
    table: &TableDefinition,
    solutions: &BTreeMap<String, (PathBuf, Solution)>,
) -> Vec<EventDefinition> {
    let Some((_, solution)) = solutions.get(&table.solution) else {
        return Vec::new();
    };
    let shown = table.display_name.as_deref().unwrap_or(&table.logical_name);
    table
        .messages
        .iter()
        .filter_map(|&message| {
            let name = row_event_name(&solution.publisher_prefix, &table.logical_name, message);
            let what = match message {
                RowMessage::Create => "created: `Target` holds the new row",
                RowMessage::Update => {
                    "updated: `Target` holds the primary key and the changed attributes"
                }
                RowMessage::Delete => "deleted: `Target` holds its primary key",
            };
            Some(EventDefinition {
                unique_name: EventName::parse(&name).ok()?,
                solution: table.solution.clone(),
                display_name: Some(format!("{shown} {}", message.as_str())),
                description: Some(format!("A row of {} was {what}", table.logical_name)),
                binding: table.logical_name.clone(),
                allowed_steps: AllowedSteps::AsyncOnly,
                external: true,
                kind: EventKind::CustomApi,
                parameters: vec![Parameter {
                    name: "Target".into(),
                    ty: ParamType::Entity {
                        entity: Some(table.logical_name.clone()),
                    },
                    required: true,
                    description: Some(format!("The {} row", table.logical_name)),
                }],
                response_properties: Vec::new(),
                is_function: false,
                is_private: false,
                plugin_type: None,
                enabled: true,
                category: Some(table.category.clone()),
                row: Some(RowEvent {
                    message,
                    primary_key: table.primary_key.clone(),
                    columns: table.columns.clone().into(),
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::catalog::{load_texts, CatalogError};
    use crate::model::RowMessage;

    const ORDERS: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Sales"

[[tables]]
logical_name = "contoso_order"
solution = "contoso"
category = "Sales"
primary_key = "contoso_orderid"
relation = "public.orders"
source = "app"

[[tables.columns]]
name = "contoso_orderid"
column = "id"
type = "Guid"

[[tables.columns]]
name = "contoso_total"
column = "total"
type = "Money"
"#;

    fn load(text: &str) -> Result<crate::catalog::Catalog, CatalogError> {
        load_texts(&[("orders.toml".into(), text.to_owned())])
    }

    #[test]
    fn a_table_catalogs_one_event_per_message_named_as_dataverse_names_them() {
        let catalog = load(ORDERS).unwrap();
        let update = catalog.cataloged("contoso_order_Update").unwrap();
        assert_eq!(update.binding, "contoso_order");
        assert_eq!(update.category.as_deref(), Some("Sales"));
        assert_eq!(update.row.as_ref().unwrap().message, RowMessage::Update);
        assert_eq!(update.parameters[0].name, "Target");
        assert!(catalog.cataloged("contoso_order_Create").is_some());
        assert!(catalog.cataloged("contoso_order_Delete").is_some());
        let table = catalog.table("contoso_order").unwrap();
        assert_eq!(table.by_source_name("total").unwrap().name, "contoso_total");
        assert_eq!(catalog.events_in("contoso", "Sales").len(), 3);
    }

    #[test]
    fn a_table_with_an_unknown_key_message_or_category_names_each_field() {
        let broken = ORDERS
            .replace(
                "primary_key = \"contoso_orderid\"",
                "primary_key = \"nope\"\nmessages = [\"Upsert\"]",
            )
            .replace(
                "category = \"Sales\"\nprimary",
                "category = \"Nope\"\nprimary",
            );
        let Err(CatalogError::Invalid(problems)) = load(&broken) else {
            panic!("a broken table must be refused");
        };
        let fields: Vec<_> = problems.iter().filter_map(|p| p.field.as_deref()).collect();
        assert!(fields.contains(&"primary_key"), "{problems:?}");
        assert!(fields.contains(&"messages[0]"), "{problems:?}");
        assert!(fields.contains(&"category"), "{problems:?}");
    }
}
