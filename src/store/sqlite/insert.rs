//! Storing a group commit's events: every event of the group in one multi-row `INSERT`, and
//! every delivery in another, whatever the number of requests that share the commit. sqlx
//! runs SQLite on a worker thread and hands each statement across to it and back, so the cost
//! of a commit is in its statements, not its rows; the idempotency keys of the group are
//! looked up in one statement too.

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};

use crate::model::{EventId, IngestOutcome, NewEvent};
use crate::store::rows::{millis, parse_id};
use crate::store::values::{rows, template};
use crate::store::StoreError;

/// Rows per statement at most, well below SQLite's 32,766 bound parameters.
const EVENT_ROWS: usize = 1000;
const DELIVERY_ROWS: usize = 2000;
const KEY_ROWS: usize = 1000;

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
    let keyed: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| {
            let (key, _) = e.idempotency.as_ref()?;
            Some((e.event.solution.as_str(), key.as_str()))
        })
        .collect();
    let mut seen = HashMap::new();
    for chunk in keyed.chunks(KEY_ROWS) {
        let sql = format!(
            "SELECT solution, idempotency_key, id, fingerprint, delivery_count FROM events
             WHERE (solution, idempotency_key) IN (VALUES {})",
            rows(chunk.len(), 2, "($1, $2)")
        );
        let mut query = sqlx::query(&sql);
        for (solution, key) in chunk {
            query = query.bind(*solution).bind(*key);
        }
        for row in query.fetch_all(&mut *conn).await? {
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
    }
    Ok(seen)
}

async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENT_ROWS) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count)
             VALUES {}",
            rows(chunk.len(), 10, &template(10))
        );
        let mut query = sqlx::query(&sql);
        for new in chunk {
            let e = &new.event;
            let params =
                serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
                    what: "event params",
                    source,
                })?;
            query = query
                .bind(e.id.to_string())
                .bind(e.name.clone())
                .bind(e.solution.clone())
                .bind(params)
                .bind(e.correlation_id.clone())
                .bind(e.caller.clone())
                .bind(millis(e.received_at))
                .bind(new.idempotency.as_ref().map(|(k, _)| k.clone()))
                .bind(new.idempotency.as_ref().map(|(_, f)| f.to_vec()))
                .bind(new.deliveries.len() as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_deliveries(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    owner: &str,
) -> Result<(), StoreError> {
    let deliveries: Vec<_> = events
        .iter()
        .flat_map(|new| new.deliveries.iter().map(move |d| (new, d)))
        .collect();
    for chunk in deliveries.chunks(DELIVERY_ROWS) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at,
               lease_owner, lease_until, created_at, updated_at)
             VALUES {}",
            rows(chunk.len(), 8, "($1, $2, $3, $4, $5, 0, $6, $7, $8, $6, $6)")
        );
        let mut query = sqlx::query(&sql);
        for (new, d) in chunk {
            let leased = d.leased_until.map(millis);
            query = query
                .bind(d.id.to_string())
                .bind(new.event.id.to_string())
                .bind(d.subscription_id.to_string())
                .bind(d.endpoint_id.to_string())
                .bind(if leased.is_some() {
                    "in_flight"
                } else {
                    "pending"
                })
                .bind(millis(new.event.received_at))
                .bind(leased.map(|_| owner.to_owned()))
                .bind(leased);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
