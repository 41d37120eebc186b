//! One decoded row change as Dataverse sees it: the message, `Target` (the new row on
//! `Create`; the key and the changed attributes on `Update`; the key on `Delete`) and the row
//! before and after, limited to the columns the cataloged table exposes.
//!
//! What the source's replica identity gives: with `FULL`, the old row comes whole, so an
//! update has a pre-image, knows which attributes changed (`Target` holds only those) and
//! fills TOASTed values it did not touch; with `DEFAULT`, an update sends no old row (only
//! the key, when the key changed), so it has no pre-image, every attribute counts as changed,
//! and a large value it did not touch is absent from `Target` and the post-image.

use serde_json::{Map, Value};

use super::pgoutput::{Datum, OldKind, Relation};
use super::values::value;
use crate::model::{RowImages, RowMessage, TableDefinition};

/// A row change ready to be submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// What happened.
    pub message: RowMessage,
    /// Dataverse's `Target`.
    pub target: Map<String, Value>,
    /// The row before and after.
    pub images: RowImages,
}

/// The exposed attributes of `tuple`: `(attribute, value)`, `None` for a TOASTed value the
/// change did not send.
fn attributes(
    table: &TableDefinition,
    relation: &Relation,
    tuple: &[Datum],
) -> Vec<(String, Option<Value>)> {
    relation
        .columns
        .iter()
        .zip(tuple)
        .filter_map(|(c, datum)| {
            let column = table.by_source_name(&c.name)?;
            let v = match datum {
                Datum::Null => Some(Value::Null),
                Datum::Unchanged => None,
                Datum::Text(text) => Some(value(&column.ty, text)),
            };
            Some((column.name.clone(), v))
        })
        .collect()
}

fn known(attributes: Vec<(String, Option<Value>)>) -> Map<String, Value> {
    attributes
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

/// An inserted row.
pub fn insert(table: &TableDefinition, relation: &Relation, new: &[Datum]) -> RowChange {
    let row = known(attributes(table, relation, new));
    RowChange {
        message: RowMessage::Create,
        target: row.clone(),
        images: RowImages {
            pre: None,
            post: Some(row),
            changed: None,
        },
    }
}

/// An updated row.
pub fn update(
    table: &TableDefinition,
    relation: &Relation,
    old: Option<&(OldKind, Vec<Datum>)>,
    new: &[Datum],
) -> RowChange {
    let before = match old {
        Some((OldKind::Full, tuple)) => Some(known(attributes(table, relation, tuple))),
        _ => None,
    };
    let mut after = Map::new();
    for (name, v) in attributes(table, relation, new) {
        // A TOASTed value the update did not touch is the old row's, when that came whole.
        match v.or_else(|| before.as_ref().and_then(|b| b.get(&name).cloned())) {
            Some(v) => {
                after.insert(name, v);
            }
            None => continue,
        }
    }
    let changed: Option<Vec<String>> = before.as_ref().map(|b| {
        after
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    });
    let target = match &changed {
        Some(changed) => after
            .iter()
            .filter(|(k, _)| **k == table.primary_key || changed.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => after.clone(),
    };
    RowChange {
        message: RowMessage::Update,
        target,
        images: RowImages {
            pre: before,
            post: Some(after),
            changed,
        },
    }
}

/// A deleted row.
pub fn delete(
    table: &TableDefinition,
    relation: &Relation,
    old: &(OldKind, Vec<Datum>),
) -> RowChange {
    let (kind, tuple) = old;
    // The primary key alone: with identity FULL every column is flagged as part of the key.
    let key: Map<String, Value> = known(attributes(table, relation, tuple))
        .into_iter()
        .filter(|(k, _)| *k == table.primary_key)
        .collect();
    RowChange {
        message: RowMessage::Delete,
        target: key,
        images: RowImages {
            pre: (*kind == OldKind::Full).then(|| known(attributes(table, relation, tuple))),
            post: None,
            changed: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::pgoutput::RelationColumn;
    use super::*;
    use crate::model::{Column, ParamType};
    use serde_json::json;

    fn table() -> TableDefinition {
        let column = |name: &str, source: &str, ty| Column {
            name: name.into(),
            column: Some(source.into()),
            ty,
            description: None,
        };
        TableDefinition {
            logical_name: "contoso_order".into(),
            solution: "contoso".into(),
            category: "Sales".into(),
            display_name: None,
            description: None,
            primary_key: "contoso_orderid".into(),
            columns: vec![
                column("contoso_orderid", "id", ParamType::Integer),
                column(
                    "contoso_total",
                    "total",
                    ParamType::Money { precision: None },
                ),
                column(
                    "contoso_notes",
                    "notes",
                    ParamType::String { max_length: None },
                ),
            ],
            messages: vec![RowMessage::Create, RowMessage::Update, RowMessage::Delete],
            source: Some("app".into()),
            relation: "public.orders".into(),
        }
    }

    fn relation() -> Relation {
        let column = |name: &str, key| RelationColumn {
            name: name.into(),
            key,
            type_id: 25,
        };
        Relation {
            id: 1,
            namespace: "public".into(),
            name: "orders".into(),
            replica_identity: b'f',
            columns: vec![
                column("id", true),
                column("total", false),
                column("secret", false),
                column("notes", false),
            ],
        }
    }

    fn text(v: &str) -> Datum {
        Datum::Text(v.into())
    }

    #[test]
    fn an_insert_targets_the_exposed_columns_only() {
        let change = insert(
            &table(),
            &relation(),
            &[text("1"), text("5.5"), text("x"), Datum::Null],
        );
        assert_eq!(
            Value::Object(change.target),
            json!({"contoso_orderid": 1, "contoso_total": 5.5, "contoso_notes": null})
        );
        assert_eq!(change.images.pre, None);
    }

    #[test]
    fn a_full_identity_update_targets_the_changed_attributes_and_fills_untouched_toast() {
        let old = (
            OldKind::Full,
            vec![text("1"), text("5"), text("x"), text("long")],
        );
        let change = update(
            &table(),
            &relation(),
            Some(&old),
            &[text("1"), text("7"), text("x"), Datum::Unchanged],
        );
        assert_eq!(
            Value::Object(change.target),
            json!({"contoso_orderid": 1, "contoso_total": 7})
        );
        assert_eq!(
            change.images.changed,
            Some(vec!["contoso_total".to_owned()])
        );
        assert_eq!(change.images.post.unwrap()["contoso_notes"], json!("long"));
        assert_eq!(change.images.pre.unwrap()["contoso_total"], json!(5));
    }

    #[test]
    fn a_default_identity_update_has_no_pre_image_and_cannot_tell_what_changed() {
        let change = update(
            &table(),
            &relation(),
            None,
            &[text("1"), text("7"), text("x"), Datum::Unchanged],
        );
        assert_eq!(change.images.pre, None);
        assert_eq!(change.images.changed, None);
        assert_eq!(
            Value::Object(change.target),
            json!({"contoso_orderid": 1, "contoso_total": 7})
        );
    }

    #[test]
    fn a_delete_targets_the_key_and_has_a_pre_image_only_with_full_identity() {
        let key_only = (
            OldKind::Key,
            vec![text("1"), Datum::Null, Datum::Null, Datum::Null],
        );
        let change = delete(&table(), &relation(), &key_only);
        assert_eq!(Value::Object(change.target), json!({"contoso_orderid": 1}));
        assert_eq!(change.images.pre, None);
        let full = (
            OldKind::Full,
            vec![text("1"), text("5"), text("x"), text("n")],
        );
        assert_eq!(
            delete(&table(), &relation(), &full)
                .images
                .pre
                .unwrap()
                .len(),
            3
        );
    }
}
