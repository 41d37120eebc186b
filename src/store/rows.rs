//! Reading database rows into records, for every backend: [`Columns`] is the small set of
//! typed reads the records need, implemented for SQLite and PostgreSQL rows.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::model::{
    Attempt, AttemptOutcome, Delivery, DeliveryStatus, Endpoint, EndpointId, Event, LeasedDelivery,
    MessageFormat, Mode, OutgoingEvent, Stage, Subscription,
};
use crate::store::sealing::KeyRing;
use crate::store::StoreError;

/// Unix milliseconds of a time.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time of unix milliseconds.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Typed column reads shared by the backends.
pub trait Columns {
    /// A text column.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A boolean column.
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error>;
    /// A nullable floating-point column.
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error>;
    /// A binary column.
    fn blob(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
                self.try_get(col)
            }
            fn blob(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}
columns_for!(SqliteRow);
columns_for!(PgRow);

/// Rows of SQLite's writer thread (`rusqlite`).
impl Columns for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn boolean(&self, col: &str) -> Result<bool, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
        self.get(col).map_err(decode)
    }
    fn blob(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
        self.get(col).map_err(decode)
    }
}

fn decode(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

pub fn time_col(row: &impl Columns, col: &str) -> Result<OffsetDateTime, StoreError> {
    Ok(from_millis(row.int(col)?))
}

/// A stored value that does not read back as `what`.
pub fn corrupt(what: &'static str, msg: String) -> StoreError {
    StoreError::Corrupt {
        what,
        source: serde::de::Error::custom(msg),
    }
}

pub fn parse_id<T: FromStr>(row: &impl Columns, col: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text = row.text(col)?;
    text.parse()
        .map_err(|e: T::Err| corrupt("id", e.to_string()))
}

fn opt_json_col<T: serde::de::DeserializeOwned>(
    row: &impl Columns,
    col: &str,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    row.opt_text(col)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|source| StoreError::Corrupt { what, source })
        })
        .transpose()
}

fn json_col<T: serde::de::DeserializeOwned>(
    row: &impl Columns,
    col: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    let text = row.text(col)?;
    serde_json::from_str(&text).map_err(|source| StoreError::Corrupt { what, source })
}

pub fn event_from_row(row: &impl Columns) -> Result<Event, StoreError> {
    Ok(Event {
        id: parse_id(row, "id")?,
        name: serde_json::from_value(row.text("name")?.into()).map_err(|source| {
            StoreError::Corrupt {
                what: "event name",
                source,
            }
        })?,
        solution: row.text("solution")?,
        params: json_col(row, "params", "event params")?,
        correlation_id: row.opt_text("correlation_id")?.unwrap_or_default(),
        traceparent: row.opt_text("traceparent")?,
        images: opt_json_col(row, "images", "event images")?,
        caller: row.text("caller")?,
        received_at: time_col(row, "received_at")?,
        depth: u32::try_from(row.int("depth")?)
            .map_err(|_| corrupt("event depth", "negative or too large".into()))?,
        pipeline: match row.opt_text("pipeline")? {
            Some(text) => serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
                what: "event pipeline",
                source,
            })?,
            None => Default::default(),
        },
    })
}

/// An event's images as stored: JSON, or NULL for an event that is not a row change.
pub fn images_json(event: &Event) -> Result<Option<String>, StoreError> {
    event
        .images
        .as_ref()
        .map(|i| {
            serde_json::to_string(i).map_err(|source| StoreError::Corrupt {
                what: "event images",
                source,
            })
        })
        .transpose()
}

/// An event's pipeline as stored: JSON, or NULL when no step changed or set anything.
pub fn pipeline_json(event: &Event) -> Result<Option<String>, StoreError> {
    if event.pipeline.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&event.pipeline)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            what: "event pipeline",
            source,
        })
}

pub fn delivery_from_row(row: &impl Columns) -> Result<Delivery, StoreError> {
    let status = row.text("status")?;
    Ok(Delivery {
        id: parse_id(row, "id")?,
        event_id: parse_id(row, "event_id")?,
        subscription_id: parse_id(row, "subscription_id")?,
        endpoint_id: parse_id(row, "endpoint_id")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", status))?,
        attempts: row.int("attempts")? as u32,
        next_attempt_at: time_col(row, "next_attempt_at")?,
        last_error: row.opt_text("last_error")?,
        created_at: time_col(row, "created_at")?,
        finished_at: row.opt_int("finished_at")?.map(from_millis),
    })
}

pub fn attempt_from_row(row: &impl Columns) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        attempt: row.int("attempt")? as u32,
        started_at: time_col(row, "started_at")?,
        duration_ms: row.int("duration_ms")? as u64,
        outcome: {
            let outcome = row.text("outcome")?;
            AttemptOutcome::parse(&outcome).ok_or_else(|| corrupt("attempt outcome", outcome))?
        },
        http_status: row.opt_int("http_status")?.map(|s| s as u16),
        error: row.opt_text("error")?,
        exchange: match row.opt_text("exchange")? {
            Some(json) => {
                Some(
                    serde_json::from_str(&json).map_err(|source| StoreError::Corrupt {
                        what: "attempt exchange",
                        source,
                    })?,
                )
            }
            None => None,
        },
    })
}

/// An endpoint, its sealed settings opened with `keys`.
pub fn endpoint_from_row(row: &impl Columns, keys: &KeyRing) -> Result<Endpoint, StoreError> {
    let id: EndpointId = parse_id(row, "id")?;
    let name = row.text("name")?;
    let plain = keys
        .open(&row.text("settings")?, id.to_string().as_bytes())
        .map_err(|source| StoreError::Sealing {
            endpoint: name.clone(),
            source,
        })?;
    Ok(Endpoint {
        id,
        name,
        settings: serde_json::from_slice(&plain).map_err(|source| StoreError::Corrupt {
            what: "endpoint settings",
            source,
        })?,
        max_concurrency: row.opt_int("max_concurrency")?.map(|n| n as u32),
        rate_limit: match row.opt_float("rate_per_second")? {
            Some(per_second) => Some(crate::model::RateLimit {
                per_second,
                burst: row.opt_int("rate_burst")?.unwrap_or(1).clamp(1, 10_000) as u32,
            }),
            None => None,
        },
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        owners: row
            .text("owners")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

pub fn subscription_from_row(row: &impl Columns) -> Result<Subscription, StoreError> {
    let format = row.text("format")?;
    Ok(Subscription {
        id: parse_id(row, "id")?,
        name: row.text("name")?,
        solution: row.text("solution")?,
        event: row.opt_text("event_name")?,
        category: row.opt_text("category")?,
        endpoint_id: parse_id(row, "endpoint_id")?,
        format: MessageFormat::parse(&format)
            .ok_or_else(|| corrupt("subscription format", format))?,
        filter: json_col(row, "filter", "subscription filter")?,
        enabled: row.boolean("enabled")?,
        rank: row.int("rank")? as i32,
        mode: {
            let mode = row.text("mode")?;
            Mode::parse(&mode).ok_or_else(|| corrupt("subscription mode", mode))?
        },
        stage: match row.opt_text("stage")? {
            Some(stage) => {
                Some(Stage::parse(&stage).ok_or_else(|| corrupt("subscription stage", stage))?)
            }
            None => None,
        },
        amqp: json_col(row, "amqp", "subscription AMQP options")?,
        transform: opt_json_col(row, "transform", "subscription transformation")?,
        row: opt_json_col(row, "row_options", "subscription row options")?.unwrap_or_default(),
        disabled_reason: row.opt_text("disabled_reason")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

/// The leased deliveries of `leased` rows (`RETURNING id, attempts, created_at,
/// subscription_id, endpoint_id, event_id`), each with its event from `events` (read in one
/// query by the caller).
pub fn leased_deliveries(
    leased: &[impl Columns],
    events: &[impl Columns],
) -> Result<Vec<LeasedDelivery>, StoreError> {
    // One shared event per event id: its deliveries encode its bodies once.
    let events: std::collections::HashMap<String, Arc<OutgoingEvent>> = events
        .iter()
        .map(|row| {
            Ok((
                row.text("id")?,
                Arc::new(OutgoingEvent::new(event_from_row(row)?)),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    leased
        .iter()
        .map(|row| {
            let event_id = row.text("event_id")?;
            // The foreign key guarantees the event exists.
            let event = events.get(&event_id).cloned().ok_or_else(|| {
                corrupt("leased delivery", format!("event {event_id} is missing"))
            })?;
            Ok(LeasedDelivery {
                id: parse_id(row, "id")?,
                attempts: row.int("attempts")? as u32,
                created_at: time_col(row, "created_at")?,
                subscription_id: parse_id(row, "subscription_id")?,
                endpoint_id: parse_id(row, "endpoint_id")?,
                event,
                routed: None,
            })
        })
        .collect()
}
