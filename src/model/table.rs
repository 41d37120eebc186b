//! Tables in the catalog: a table of the application's own database whose `Create`, `Update`
//! and `Delete` are cataloged events (Dataverse's table messages), what one row change
//! carries (the target, the row before and after), and what a subscription to one asks for
//! (filtering attributes, pre- and post-images).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use super::definition::{Column, RowEvent, RowMessage};

/// The unique name of the cataloged event for `message` on `table`: the table's logical name
/// then the message (`contoso_order_Update`); a table without the solution's prefix (a
/// standard table such as `account`) is named under the prefix (`contoso_account_Update`).
pub fn row_event_name(prefix: &str, table: &str, message: RowMessage) -> String {
    let lead = format!("{prefix}_");
    if table.starts_with(&lead) {
        format!("{table}_{}", message.as_str())
    } else {
        format!("{lead}{table}_{}", message.as_str())
    }
}

/// A cataloged table (Dataverse's table with its messages).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TableDefinition {
    /// Its logical name (`contoso_order`): `PrimaryEntityName`.
    pub logical_name: String,
    /// The solution that owns it.
    pub solution: String,
    /// The category its events are cataloged under.
    pub category: String,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What a row is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The attribute that identifies a row (`contoso_orderid`): `PrimaryEntityId`.
    pub primary_key: String,
    /// The columns it exposes; others are never read into events.
    pub columns: Vec<Column>,
    /// The messages that are events.
    pub messages: Vec<RowMessage>,
    /// The configured source whose database holds it (`[[sources]]` in the configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The table in that database, `schema.table` (default `public.` and the logical name).
    pub relation: String,
}

impl TableDefinition {
    /// The exposed column called `name` (its logical name).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The exposed column whose database name is `name`.
    pub fn by_source_name(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.source_name() == name)
    }
}

/// What one row change carries beside its `Target`: the whole row before and after, as far
/// as the source knows them, and which attributes changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowImages {
    /// The row before the change (exposed attributes), when the source sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<Map<String, Value>>,
    /// The row after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<Map<String, Value>>,
    /// The attributes an update changed; `None` when the source cannot tell (every
    /// filtering attribute then counts as changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

impl RowImages {
    /// Whether an update with these images passes a step's filtering attributes: one of
    /// them changed, or the source cannot tell which changed, or none are set.
    pub fn passes(&self, filtering: &[String]) -> bool {
        match &self.changed {
            _ if filtering.is_empty() => true,
            None => true,
            Some(changed) => filtering.iter().any(|f| changed.contains(f)),
        }
    }
}

/// Which image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    /// The row before the change (`PreEntityImages`).
    Pre,
    /// The row after the change (`PostEntityImages`).
    Post,
}

impl ImageKind {
    /// Whether a step on `message` can register this image, as Dataverse allows them: no
    /// pre-image on `Create` (there was no row), no post-image on `Delete` (there is none).
    pub fn allowed_on(self, message: RowMessage) -> bool {
        !matches!(
            (message, self),
            (RowMessage::Create, ImageKind::Pre) | (RowMessage::Delete, ImageKind::Post)
        )
    }
}

/// An image a subscription registers (Dataverse's step image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRegistration {
    /// Pre or post.
    pub kind: ImageKind,
    /// Its key in `PreEntityImages`/`PostEntityImages` (default `PreImage` or `PostImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// The attributes it includes; empty includes every exposed attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

impl ImageRegistration {
    /// Its key.
    pub fn key(&self) -> &str {
        self.name.as_deref().unwrap_or(match self.kind {
            ImageKind::Pre => "PreImage",
            ImageKind::Post => "PostImage",
        })
    }

    /// This image of a change, with only its attributes; `None` when the source did not send
    /// that image.
    pub fn of(&self, images: &RowImages) -> Option<Map<String, Value>> {
        let row = match self.kind {
            ImageKind::Pre => images.pre.as_ref(),
            ImageKind::Post => images.post.as_ref(),
        }?;
        Some(if self.attributes.is_empty() {
            row.clone()
        } else {
            row.iter()
                .filter(|(k, _)| self.attributes.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

/// What a subscription to a table's event asks for (Dataverse's step registration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowOptions {
    /// On `Update`: deliver only when one of these attributes changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filtering_attributes: Vec<String>,
    /// The images each delivery carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRegistration>,
}

impl RowOptions {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.filtering_attributes.is_empty() && self.images.is_empty()
    }

    /// The registered images of `kind` with their content.
    pub fn images_of<'a>(
        &'a self,
        kind: ImageKind,
        images: &'a RowImages,
    ) -> impl Iterator<Item = (&'a str, Map<String, Value>)> + 'a {
        self.images
            .iter()
            .filter(move |i| i.kind == kind)
            .filter_map(move |i| Some((i.key(), i.of(images)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn table_events_are_named_by_table_and_message_under_the_prefix() {
        assert_eq!(
            row_event_name("contoso", "contoso_order", RowMessage::Update),
            "contoso_order_Update"
        );
        assert_eq!(
            row_event_name("contoso", "account", RowMessage::Create),
            "contoso_account_Create"
        );
    }

    #[test]
    fn filtering_attributes_pass_when_one_changed_or_when_the_source_cannot_tell() {
        let known = RowImages {
            changed: Some(vec!["status".into()]),
            ..Default::default()
        };
        assert!(known.passes(&["status".into(), "total".into()]));
        assert!(!known.passes(&["total".into()]));
        assert!(known.passes(&[]));
        assert!(RowImages::default().passes(&["total".into()]));
    }

    #[test]
    fn an_image_keeps_only_its_attributes_and_is_absent_when_the_source_sent_none() {
        let images = RowImages {
            pre: None,
            post: Some(row(json!({"id": 1, "total": 5, "status": "new"}))),
            changed: None,
        };
        let post = ImageRegistration {
            kind: ImageKind::Post,
            name: None,
            attributes: vec!["total".into()],
        };
        assert_eq!(post.of(&images), Some(row(json!({"total": 5}))));
        assert_eq!(post.key(), "PostImage");
        let pre = ImageRegistration {
            kind: ImageKind::Pre,
            name: Some("Before".into()),
            attributes: vec![],
        };
        assert_eq!(pre.of(&images), None);
        assert!(!ImageKind::Pre.allowed_on(RowMessage::Create));
        assert!(!ImageKind::Post.allowed_on(RowMessage::Delete));
        assert!(ImageKind::Pre.allowed_on(RowMessage::Update));
    }
}
