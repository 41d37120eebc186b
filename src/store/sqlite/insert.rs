//! Storing a group commit's events: every event of the group in one `INSERT`, and every
//! delivery in another, whatever the number of requests that share the commit. sqlx runs
//! SQLite on a worker thread and hands each statement across to it and back, so the cost of a
//! commit is in its statements, not its rows; the idempotency keys of the group are looked up
//! in one statement too. The rows travel as one JSON array parameter that SQLite reads with
//! `json_each`, so each statement's text never changes and is prepared once (see
//! `store/record.rs`).

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::{Row, SqliteConnection};

use crate::model::{EventId, IngestOutcome, NewEvent};
use crate::store::rows::{millis, parse_id};
use crate::store::StoreError;

/// What an idempotency key answered with the first time.
struct Seen {
    id: EventId,
    fingerprint: [u8; 32],
    deliveries: u32,
}

/// Stores `events` on `conn`, inside the caller's transaction, leasing the deliveries that are
/// handed off to `owner`. Outcomes are in the order of `events`.
pub(super) async fn insert_all(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    owner: &str,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut seen = seen_keys(conn, events).await?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut fresh = Vec::with_capacity(events.len());
    for &new in events {
        if let Some((key, fingerprint)) = &new.idempotency {
            let slot = (new.event.solution.clone(), key.clone());
            if let Some(first) = seen.get(&slot) {
                outcomes.push(if first.fingerprint == *fingerprint {
                    IngestOutcome::Replayed {
                        id: first.id,
                        deliveries: first.deliveries,
                    }
                } else {
                    IngestOutcome::KeyReused { id: first.id }
                });
                continue;
            }
            // A second request with this key in the same group answers as this one.
            seen.insert(
                slot,
                Seen {
                    id: new.event.id,
                    fingerprint: *fingerprint,
                    deliveries: new.deliveries.len() as u32,
                },
            );
        }
        outcomes.push(IngestOutcome::Created {
            id: new.event.id,
            deliveries: new.deliveries.len() as u32,
        });
        fresh.push(new);
    }
    insert_events(conn, &fresh).await?;
    insert_deliveries(conn, &fresh, owner).await?;
    Ok(outcomes)
}

/// The events stored before under the idempotency keys of `events`.
async fn seen_keys(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<HashMap<(String, String), Seen>, StoreError> {
    let keyed: Vec<Value> = events
        .iter()
        .filter_map(|e| {
            let (key, _) = e.idempotency.as_ref()?;
            Some(json!([e.event.solution, key]))
        })
        .collect();
    let mut seen = HashMap::new();
    if keyed.is_empty() {
        return Ok(seen);
    }
    let rows = sqlx::query(
        "SELECT solution, idempotency_key, id, fingerprint, delivery_count FROM events
         WHERE (solution, idempotency_key) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))",
    )
    .bind(Value::Array(keyed).to_string())
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let stored: Vec<u8> = row.try_get("fingerprint")?;
        seen.insert(
            (row.try_get("solution")?, row.try_get("idempotency_key")?),
            Seen {
                id: parse_id(&row, "id")?,
                // A stored fingerprint of another length matches no request.
                fingerprint: stored.try_into().unwrap_or([0; 32]),
                deliveries: row.try_get::<i64, _>("delivery_count")? as u32,
            },
        );
    }
    Ok(seen)
}

async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(events.len());
    for new in events {
        let e = &new.event;
        let params = serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
            what: "event params",
            source,
        })?;
        rows.push(json!([
            e.id.to_string(),
            e.name,
            e.solution,
            params,
            e.correlation_id,
            e.caller,
            millis(e.received_at),
            new.idempotency.as_ref().map(|(k, _)| k),
            new.idempotency.as_ref().map(|(_, f)| hex::encode(f)),
            new.deliveries.len()
        ]));
    }
    sqlx::query(
        "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7,
           unhex(value ->> 8), value ->> 9
         FROM json_each(?1)",
    )
    .bind(Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_deliveries(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    owner: &str,
) -> Result<(), StoreError> {
    let rows: Vec<Value> = events
        .iter()
        .flat_map(|new| {
            new.deliveries.iter().map(move |d| {
                let leased = d.leased_until.map(millis);
                json!([
                    d.id.to_string(),
                    new.event.id.to_string(),
                    d.subscription_id.to_string(),
                    d.endpoint_id.to_string(),
                    if leased.is_some() {
                        "in_flight"
                    } else {
                        "pending"
                    },
                    millis(new.event.received_at),
                    leased.map(|_| owner),
                    leased
                ])
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at,
           lease_owner, lease_until, created_at, updated_at)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 0, value ->> 5,
           value ->> 6, value ->> 7, value ->> 5, value ->> 5
         FROM json_each(?1)",
    )
    .bind(Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
