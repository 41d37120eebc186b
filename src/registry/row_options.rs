//! The rules of a subscription to a table's events (Dataverse's step registration rules):
//! filtering attributes only on `Update`, images only where the message has that image,
//! attributes the table exposes; and filter names that reach into a row's target.

use crate::catalog::Catalog;
use crate::model::{EventDefinition, ImageKind, RowMessage, RowOptions, TableDefinition};

use super::RegistryError;

/// Checks `options` against every event the subscription covers.
pub(super) fn check(
    catalog: &Catalog,
    events: &[&EventDefinition],
    options: &RowOptions,
) -> Result<(), RegistryError> {
    if options.is_empty() {
        return Ok(());
    }
    for def in events {
        let (Some(row), Some(table)) = (&def.row, catalog.table(&def.binding)) else {
            return Err(RegistryError::invalid(
                "row",
                format!(
                    "\"{}\" is not an event of a table: filtering attributes and images apply to table events only",
                    def.unique_name
                ),
            ));
        };
        if !options.filtering_attributes.is_empty() && row.message != RowMessage::Update {
            return Err(RegistryError::invalid(
                "row.filtering_attributes",
                format!(
                    "filtering attributes apply to Update only; \"{}\" is {}",
                    def.unique_name,
                    row.message.as_str()
                ),
            ));
        }
        for (i, name) in options.filtering_attributes.iter().enumerate() {
            exposed(table, name, &format!("row.filtering_attributes[{i}]"))?;
        }
        for (i, image) in options.images.iter().enumerate() {
            let field = format!("row.images[{i}]");
            if !image.kind.allowed_on(row.message) {
                let what = match image.kind {
                    ImageKind::Pre => "a Create has no pre-image (there was no row)",
                    ImageKind::Post => "a Delete has no post-image (there is no row)",
                };
                return Err(RegistryError::invalid(
                    format!("{field}.kind"),
                    format!(
                        "{what}; \"{}\" is {}",
                        def.unique_name,
                        row.message.as_str()
                    ),
                ));
            }
            let key = image.key();
            if key.is_empty()
                || key.len() > 100
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(RegistryError::invalid(
                    format!("{field}.name"),
                    "1 to 100 ASCII letters, digits and `_`",
                ));
            }
            if options.images[..i]
                .iter()
                .any(|o| o.kind == image.kind && o.key() == key)
            {
                return Err(RegistryError::invalid(
                    format!("{field}.name"),
                    format!("two images are called \"{key}\""),
                ));
            }
            for (j, name) in image.attributes.iter().enumerate() {
                exposed(table, name, &format!("{field}.attributes[{j}]"))?;
            }
        }
    }
    Ok(())
}

fn exposed(table: &TableDefinition, name: &str, field: &str) -> Result<(), RegistryError> {
    match table.column(name) {
        Some(_) => Ok(()),
        None => Err(RegistryError::invalid(
            field,
            format!(
                "\"{name}\" is not a column of table \"{}\" (it exposes {})",
                table.logical_name,
                table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Checks the name a filter condition tests: a parameter of `def`, or `Parameter.attribute`
/// for an attribute of a table event's `Target`.
pub(super) fn check_filter_name(
    catalog: &Catalog,
    def: &EventDefinition,
    name: &str,
) -> Result<(), RegistryError> {
    if def.parameter(name).is_some() {
        return Ok(());
    }
    let unknown = || {
        RegistryError::invalid(
            "filter",
            format!("\"{name}\" is not a parameter of {}", def.unique_name),
        )
    };
    let (parameter, attribute) = name.split_once('.').ok_or_else(unknown)?;
    def.parameter(parameter).ok_or_else(unknown)?;
    match (&def.row, catalog.table(&def.binding)) {
        (Some(_), Some(table)) => exposed(table, attribute, "filter"),
        // An attribute of an entity parameter of a custom event: its columns are not declared.
        _ => Ok(()),
    }
}
