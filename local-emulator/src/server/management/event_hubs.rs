//! Event Hubs management: `READ` of `com.microsoft:eventhub` (hub properties) and of
//! `com.microsoft:partition` (partition properties), with every field the SDKs read.

use super::{map, Answer, ManagementError, Request};
use crate::server::codec::Value;
use crate::server::context::Context;

/// `READ`: the properties of a hub or of one of its partitions.
pub(super) fn read(ctx: &Context, r: &Request) -> Answer {
    let name = r.app_text("name");
    match r.app_text("type") {
        "com.microsoft:eventhub" => hub(ctx, name),
        "com.microsoft:partition" => partition(ctx, name, r.app_text("partition")),
        other => Err(ManagementError::NotImplemented(format!(
            "READ of '{other}' is not supported"
        ))),
    }
}

fn not_found(name: &str) -> ManagementError {
    ManagementError::NotFound(format!("event hub '{name}' not found"))
}

fn hub(ctx: &Context, name: &str) -> Answer {
    let h = ctx
        .broker
        .with(|b, _| b.hub_info(name))
        .ok_or_else(|| not_found(name))?;
    let ids = (0..h.partitions)
        .map(|i| Value::String(i.to_string()))
        .collect();
    Ok((
        200,
        map(vec![
            ("name", Value::str(&h.name)),
            ("type", Value::sym("com.microsoft:eventhub")),
            ("created_at", Value::Timestamp(h.created_ms)),
            ("partition_count", Value::Int(h.partitions as i32)),
            ("partition_ids", Value::Array(ids)),
        ]),
    ))
}

fn partition(ctx: &Context, name: &str, id: &str) -> Answer {
    let p: usize = id.parse().map_err(|_| not_found(name))?;
    let i = ctx
        .broker
        .with(|b, _| b.partition_info(name, p))
        .ok_or_else(|| not_found(name))?;
    Ok((
        200,
        map(vec![
            ("name", Value::str(name)),
            ("type", Value::sym("com.microsoft:partition")),
            ("partition", Value::str(id)),
            ("begin_sequence_number", Value::Long(i.begin_seq)),
            ("last_enqueued_sequence_number", Value::Long(i.last_seq)),
            (
                "last_enqueued_offset",
                Value::String(i.last_offset.to_string()),
            ),
            (
                "last_enqueued_time_utc",
                Value::Timestamp(i.last_enqueued_ms),
            ),
            ("is_partition_empty", Value::Bool(i.empty)),
            // The Rust SDK requires it; the emulator has no geo-replication epochs.
            ("last_enqueued_sequence_number_epoch", Value::Long(0)),
        ]),
    ))
}
