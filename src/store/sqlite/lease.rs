//! Leasing on SQLite, run by the writer (it owns the write lock, so a lease never waits for
//! a group commit to let go of it).
//!
//! Due work is found endpoint by endpoint: for each endpoint not skipped, its earliest due
//! deliveries through the index `(endpoint_id, status, next_attempt_at)`, at most
//! `per_endpoint` of them. A lease thus reads `endpoints × per_endpoint` index entries at
//! most, however many deliveries are due: a million due to one endpoint after an outage
//! cost another endpoint nothing, and cost their own endpoint only the entries leased.

use sqlx::{Row, SqliteConnection};

use crate::model::{EndpointId, LeasedDelivery};
use crate::store::rows::{self, millis};
use crate::store::StoreError;

/// What to lease (an owned [`LeaseRequest`](crate::store::LeaseRequest), for the writer's queue).
#[derive(Debug)]
pub(super) struct Lease {
    pub owner: String,
    pub now: i64,
    pub until: i64,
    pub limit: u32,
    pub per_endpoint: u32,
    pub skip: Vec<EndpointId>,
}

impl From<&crate::store::LeaseRequest<'_>> for Lease {
    fn from(r: &crate::store::LeaseRequest<'_>) -> Self {
        Self {
            owner: r.owner.to_owned(),
            now: millis(r.now),
            until: millis(r.until),
            limit: r.limit,
            per_endpoint: r.per_endpoint,
            skip: r.skip_endpoints.to_vec(),
        }
    }
}

/// Leases what `req` asks for on `conn` (autocommit: one statement).
pub(super) async fn lease(
    conn: &mut SqliteConnection,
    req: &Lease,
) -> Result<Vec<LeasedDelivery>, StoreError> {
    let skip = serde_json::to_string(&req.skip.iter().map(|e| e.to_string()).collect::<Vec<_>>())
        .map_err(|source| StoreError::Corrupt {
        what: "lease request",
        source,
    })?;
    let rows = sqlx::query(
        "UPDATE deliveries SET status = 'in_flight', lease_owner = ?1, lease_until = ?2, updated_at = ?3
         WHERE id IN (SELECT id FROM (
           SELECT d.id, d.next_attempt_at AS due FROM endpoints e JOIN deliveries d ON d.id IN (
             SELECT id FROM deliveries WHERE endpoint_id = e.id AND status = 'pending' AND next_attempt_at <= ?3
               ORDER BY next_attempt_at LIMIT ?6)
           WHERE e.id NOT IN (SELECT value FROM json_each(?4))
           UNION ALL
           SELECT d.id, d.lease_until AS due FROM endpoints e JOIN deliveries d ON d.id IN (
             SELECT id FROM deliveries WHERE endpoint_id = e.id AND status = 'in_flight' AND lease_until <= ?3
               LIMIT ?6)
           WHERE e.id NOT IN (SELECT value FROM json_each(?4)))
           ORDER BY due LIMIT ?5)
         RETURNING id, attempts, created_at, subscription_id, endpoint_id, event_id",
    )
    .bind(&req.owner)
    .bind(req.until)
    .bind(req.now)
    .bind(skip)
    .bind(req.limit)
    .bind(req.per_endpoint)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // The leased deliveries' events, in one query.
    let event_ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("event_id"))
        .collect::<Result<_, _>>()?;
    let events = sqlx::query("SELECT * FROM events WHERE id IN (SELECT value FROM json_each(?))")
        .bind(
            serde_json::to_string(&event_ids).map_err(|source| StoreError::Corrupt {
                what: "lease request",
                source,
            })?,
        )
        .fetch_all(&mut *conn)
        .await?;
    rows::leased_deliveries(&rows, &events)
}
