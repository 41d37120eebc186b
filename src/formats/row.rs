//! A row change in the JSON formats (CloudEvents `data`, the params body): `target`, and the
//! images the subscription registered as `preImage` and `postImage` (the first of each kind;
//! the Dataverse format carries every registered image under its name).

use serde_json::{Map, Value};

use crate::model::{Event, ImageKind, RowOptions};

/// The data of `event` for a subscription with `options`, when the event is a row change.
pub fn data(event: &Event, options: &RowOptions) -> Option<Value> {
    let images = event.images.as_ref()?;
    let mut data = Map::new();
    data.insert(
        "target".into(),
        event.params.get("Target").cloned().unwrap_or(Value::Null),
    );
    for (kind, key) in [(ImageKind::Pre, "preImage"), (ImageKind::Post, "postImage")] {
        if let Some((_, image)) = options.images_of(kind, images).next() {
            data.insert(key.into(), Value::Object(image));
        }
    }
    Some(Value::Object(data))
}

/// Whether the body of `event` for `options` is the same for every subscription (so it can
/// be encoded once): anything but a row change whose subscription registered images.
pub fn shared(event: &Event, options: &RowOptions) -> bool {
    event.images.is_none() || options.images.is_empty()
}
