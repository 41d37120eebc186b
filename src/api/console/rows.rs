//! A delivery as a row of a list: the deliveries page and an endpoint's page show the same rows.

use std::collections::HashMap;

use serde::Serialize;

use super::pages::millis;
use crate::model::{Delivery, EndpointId};

/// A delivery in a list.
#[derive(Serialize)]
pub struct Row {
    id: String,
    event_name: String,
    endpoint_id: String,
    /// The endpoint's name; none once it was deleted.
    endpoint: Option<String>,
    status: &'static str,
    attempts: u32,
    created_at: i64,
    changed_at: i64,
    last_error: Option<String>,
}

/// The rows of a page, with the names of their endpoints from `endpoints`.
pub fn rows(list: &[(Delivery, String)], endpoints: &HashMap<EndpointId, String>) -> Vec<Row> {
    list.iter()
        .map(|(d, name)| Row {
            id: d.id.to_string(),
            event_name: name.clone(),
            endpoint_id: d.endpoint_id.to_string(),
            endpoint: endpoints.get(&d.endpoint_id).cloned(),
            status: d.status.as_str(),
            attempts: d.attempts,
            created_at: millis(d.created_at),
            changed_at: millis(d.finished_at.unwrap_or(d.next_attempt_at)),
            last_error: d.last_error.clone(),
        })
        .collect()
}
