//! Reading SQLite rows into records.

use std::str::FromStr;

use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::store::{
    Attempt, DeliveryRecord, DeliveryStatus, Endpoint, EventRecord, StoreError, Subscription,
};
use crate::subscriptions::MessageFormat;

/// Unix milliseconds of a time.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time of unix milliseconds.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn time_col(row: &SqliteRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    Ok(from_millis(row.try_get(col)?))
}

fn corrupt(what: &'static str, msg: String) -> StoreError {
    StoreError::Corrupt {
        what,
        source: serde::de::Error::custom(msg),
    }
}

pub fn parse_id<T: FromStr>(row: &SqliteRow, col: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|e: T::Err| corrupt("id", e.to_string()))
}

fn json_col<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    col: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|source| StoreError::Corrupt { what, source })
}

pub fn event_from_row(row: &SqliteRow) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        id: parse_id(row, "id")?,
        name: row.try_get("name")?,
        solution: row.try_get("solution")?,
        params: json_col(row, "params", "event params")?,
        correlation_id: row
            .try_get::<Option<String>, _>("correlation_id")?
            .unwrap_or_default(),
        caller: row.try_get("caller")?,
        received_at: time_col(row, "received_at")?,
    })
}

pub fn delivery_from_row(row: &SqliteRow) -> Result<DeliveryRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(DeliveryRecord {
        id: parse_id(row, "id")?,
        event_id: parse_id(row, "event_id")?,
        subscription_id: parse_id(row, "subscription_id")?,
        endpoint_id: parse_id(row, "endpoint_id")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", status))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: time_col(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: time_col(row, "created_at")?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(from_millis),
    })
}

pub fn attempt_from_row(row: &SqliteRow) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        started_at: time_col(row, "started_at")?,
        duration_ms: row.try_get::<i64, _>("duration_ms")? as u64,
        outcome: row.try_get("outcome")?,
        http_status: row
            .try_get::<Option<i64>, _>("http_status")?
            .map(|s| s as u16),
        error: row.try_get("error")?,
    })
}

pub fn endpoint_from_row(row: &SqliteRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: parse_id(row, "id")?,
        name: row.try_get("name")?,
        settings: json_col(row, "settings", "endpoint settings")?,
        max_concurrency: row
            .try_get::<Option<i64>, _>("max_concurrency")?
            .map(|n| n as u32),
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

pub fn subscription_from_row(row: &SqliteRow) -> Result<Subscription, StoreError> {
    let format: String = row.try_get("format")?;
    Ok(Subscription {
        id: parse_id(row, "id")?,
        name: row.try_get("name")?,
        solution: row.try_get("solution")?,
        event: row.try_get("event_name")?,
        category: row.try_get("category")?,
        endpoint_id: parse_id(row, "endpoint_id")?,
        format: MessageFormat::parse(&format)
            .ok_or_else(|| corrupt("subscription format", format))?,
        filter: json_col(row, "filter", "subscription filter")?,
        enabled: row.try_get("enabled")?,
        rank: row.try_get::<i64, _>("rank")? as i32,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}
