//! The statements of the SQLite writer thread, on its own connection (`rusqlite`): storing a
//! group commit's events and deliveries, recording attempt results, leasing. Every statement
//! is prepared once (`prepare_cached`) and run once per row, inside the writer's thread: no
//! thread crossing per statement, no SQL text that changes with the batch size, no row
//! encoded into JSON for SQLite to parse back.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{
    AttemptResult, EndpointId, EventId, IngestOutcome, LeasedDelivery, NewEvent, OutgoingEvent,
};
use crate::store::record::{self, duration_ms};
use crate::store::rows::{self, millis};
use crate::store::StoreError;
use crate::store::{routes, HandoffMark};

/// Stores `events` (inside the caller's transaction), leasing the deliveries that are handed
/// off to `owner`. Outcomes are in the order of `events`; a request with an idempotency key
/// already used (before, or earlier in the batch) answers as the first one did, unless the
/// first was accepted before `keys_since` (its window is over): then the key is taken from
/// it and the request stored as new.
pub(super) fn insert_all(
    conn: &Connection,
    events: &[&NewEvent],
    owner: &str,
    keys_since: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut in_batch: HashMap<(&str, &str), (EventId, [u8; 32], u32)> = HashMap::new();
    let mut find = conn.prepare_cached(
        "SELECT id, fingerprint, delivery_count, received_at FROM events WHERE solution = ?1 AND idempotency_key = ?2",
    )?;
    let mut expire =
        conn.prepare_cached("UPDATE events SET idempotency_key = NULL WHERE id = ?1")?;
    let mut event = conn.prepare_cached(
        "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count, depth, pipeline, traceparent, images, handoff, handoff_seq, routes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    let mut delivery = conn.prepare_cached(
        "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at,
           lease_owner, lease_until, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?6, ?6)",
    )?;
    let mut outcomes = Vec::with_capacity(events.len());
    for &new in events {
        let e = &new.event;
        if let Some((key, fingerprint)) = &new.idempotency {
            let slot = (e.solution.as_str(), key.as_str());
            let first = match in_batch.get(&slot) {
                Some(first) => Some(*first),
                None => {
                    let held = find
                        .query_row(params![e.solution, key], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, Vec<u8>>(1)?,
                                row.get::<_, i64>(2)?,
                                row.get::<_, i64>(3)?,
                            ))
                        })
                        .optional()?;
                    match held {
                        Some((id, _, _, received)) if received < keys_since => {
                            // Outside its window: the key is free for this event.
                            expire.execute([&id])?;
                            None
                        }
                        Some((id, stored, count, _)) => {
                            // A stored fingerprint of another length matches no request.
                            let stored = stored.try_into().unwrap_or([0; 32]);
                            Some((parse(&id)?, stored, count as u32))
                        }
                        None => None,
                    }
                }
            };
            if let Some((id, stored, deliveries)) = first {
                outcomes.push(if stored == *fingerprint {
                    IngestOutcome::Replayed { id, deliveries }
                } else {
                    IngestOutcome::KeyReused { id }
                });
                continue;
            }
            in_batch.insert(slot, (e.id, *fingerprint, new.deliveries.len() as u32));
        }
        let params_json =
            serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
                what: "event params",
                source,
            })?;
        let received = millis(e.received_at);
        let id = e.id.to_string();
        event.execute(params![
            id,
            e.name.as_str(),
            e.solution,
            params_json,
            e.correlation_id,
            e.caller,
            received,
            new.idempotency.as_ref().map(|(k, _)| k),
            new.idempotency.as_ref().map(|(_, f)| f.as_slice()),
            new.deliveries.len() as i64,
            e.depth,
            rows::pipeline_json(e)?,
            e.traceparent,
            rows::images_json(e)?,
            new.handoff.map(|h| h.handoff),
            new.handoff.map(|h| h.seq),
            routes::of(new)?,
        ])?;
        // Deliveries handed off under a hand-off are kept in the event's row.
        for d in new
            .deliveries
            .iter()
            .filter(|d| routes::is_row(new, d.leased_until.is_some()))
        {
            let leased = d.leased_until.map(millis);
            delivery.execute(params![
                d.id.to_string(),
                id,
                d.subscription_id.to_string(),
                d.endpoint_id.to_string(),
                if leased.is_some() {
                    "in_flight"
                } else {
                    "pending"
                },
                received,
                leased.map(|_| owner),
                leased,
            ])?;
        }
        outcomes.push(IngestOutcome::Created {
            id: e.id,
            deliveries: new.deliveries.len() as u32,
        });
    }
    Ok(outcomes)
}

/// Records `results` (inside the caller's transaction): the attempts, and the next state of
/// each delivery still leased by `owner` (one cancelled or taken over meanwhile is left as
/// it is). Results are applied in order, so a later result of a delivery wins.
pub(super) fn record(
    conn: &Connection,
    owner: &str,
    mark: Option<&HandoffMark>,
    results: &[AttemptResult],
) -> Result<bool, StoreError> {
    let now = millis(time::OffsetDateTime::now_utc());
    // The mark first: whether the hand-off is still open decides whether its routed results
    // are written (a closed one was taken over; its results are its new owner's).
    let held = match mark {
        Some(m) => {
            conn.prepare_cached(
                "UPDATE handoffs SET through = max(through, ?1), lease_until = ?2, updated_at = ?3
                 WHERE id = ?4 AND NOT closed",
            )?
            .execute(params![m.through, millis(m.until), now, m.handoff])?
                == 1
        }
        None => false,
    };
    let mut materialize = conn.prepare_cached(
        "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at,
           last_error, created_at, updated_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut unroute = conn.prepare_cached(
        "UPDATE events SET routes = NULLIF(REPLACE(routes, ?1, ' '), ' ') WHERE id = ?2",
    )?;
    // Only for a delivery that exists (the writer's connection does not check foreign keys):
    // one whose lease expired, finished elsewhere and was pruned before this late result.
    let mut attempt = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?1)
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
           outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error, exchange = excluded.exchange",
    )?;
    let mut state = conn.prepare_cached(
        "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, last_error = ?4, finished_at = ?5,
           lease_owner = NULL, lease_until = NULL, updated_at = ?6
         WHERE id = ?7 AND status = 'in_flight' AND lease_owner = ?8",
    )?;
    for r in results {
        let id = r.delivery_id.to_string();
        if let Some(x) = &r.routed {
            // A delivery kept in its event's row that did not simply succeed becomes a row of
            // its own, with this result; only under the hand-off the mark holds.
            if !held || mark.map(|m| m.handoff) != Some(x.routed.handoff) {
                continue;
            }
            let entry = routes::Route::of_result(r, x)?.entry();
            let s = record::state(r, now);
            materialize.execute(params![
                id,
                x.event_id.to_string(),
                x.subscription_id.to_string(),
                x.endpoint_id.to_string(),
                s.status,
                r.attempts,
                s.next_at,
                s.error,
                millis(x.created_at),
                now,
                s.finished,
            ])?;
            unroute.execute(params![format!(" {entry} "), x.event_id.to_string()])?;
        }
        if let Some(a) = &r.attempt {
            attempt.execute(params![
                id,
                a.attempt,
                millis(a.started_at),
                duration_ms(a),
                a.outcome.as_str(),
                a.http_status,
                a.error,
                record::exchange_json(a),
            ])?;
        }
        if r.routed.is_none() {
            let s = record::state(r, now);
            state.execute(params![
                s.status, r.attempts, s.next_at, s.error, s.finished, now, id, owner
            ])?;
        }
    }
    Ok(held)
}

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

/// Leases what `req` asks for (one statement, autocommit).
///
/// Due work is found endpoint by endpoint: for each endpoint not skipped, its earliest due
/// deliveries through the index `(endpoint_id, status, next_attempt_at)`, at most
/// `per_endpoint` of them. A lease thus reads `endpoints × per_endpoint` index entries at
/// most, however many deliveries are due: a million due to one endpoint after an outage cost
/// another endpoint nothing, and cost their own endpoint only the entries leased.
pub(super) fn lease(conn: &Connection, req: &Lease) -> Result<Vec<LeasedDelivery>, StoreError> {
    let skip = serde_json::to_string(&req.skip.iter().map(|e| e.to_string()).collect::<Vec<_>>())
        .map_err(|source| StoreError::Corrupt {
        what: "lease request",
        source,
    })?;
    let mut leasing = conn.prepare_cached(
        // `open`: the endpoints not skipped, not disabled, not failing with their probe out or
        // not yet due, and not waiting for their receiver to grant delivery.
        "WITH open AS (SELECT e.id FROM endpoints e WHERE e.id NOT IN (SELECT value FROM json_each(?4))
           AND NOT EXISTS (SELECT 1 FROM endpoint_health h WHERE h.endpoint_id = e.id
             AND (h.state = 'disabled' OR (h.state = 'failing' AND (h.probe_at > ?3 OR h.probe_until > ?3))))
           AND NOT EXISTS (SELECT 1 FROM endpoint_grants g WHERE g.endpoint_id = e.id AND g.state <> 'granted'
             AND (g.busy_until > ?3 OR g.callback_until > ?3 OR g.next_try_at > ?3)))
         UPDATE deliveries SET status = 'in_flight', lease_owner = ?1, lease_until = ?2, updated_at = ?3
         WHERE id IN (SELECT id FROM (
           SELECT d.id, d.next_attempt_at AS due FROM open e JOIN deliveries d ON d.id IN (
             SELECT id FROM deliveries WHERE endpoint_id = e.id AND status = 'pending' AND next_attempt_at <= ?3
               ORDER BY next_attempt_at LIMIT ?6)
           UNION ALL
           SELECT d.id, d.lease_until AS due FROM open e JOIN deliveries d ON d.id IN (
             SELECT id FROM deliveries WHERE endpoint_id = e.id AND status = 'in_flight' AND lease_until <= ?3
               LIMIT ?6))
           ORDER BY due LIMIT ?5)
         RETURNING id, attempts, created_at, subscription_id, endpoint_id, event_id",
    )?;
    let leased: Vec<Leased> = leasing
        .query_map(
            params![
                req.owner,
                req.until,
                req.now,
                skip,
                req.limit,
                req.per_endpoint
            ],
            |row| {
                Ok(Leased {
                    id: row.get(0)?,
                    attempts: row.get(1)?,
                    created_at: row.get(2)?,
                    subscription_id: row.get(3)?,
                    endpoint_id: row.get(4)?,
                    event_id: row.get(5)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    // The leased deliveries' events, read once each.
    let mut read = conn.prepare_cached("SELECT * FROM events WHERE id = ?1")?;
    let mut events: HashMap<&str, Arc<OutgoingEvent>> = HashMap::new();
    for l in &leased {
        if events.contains_key(l.event_id.as_str()) {
            continue;
        }
        let event = read.query_row([&l.event_id], |row| Ok(rows::event_from_row(row)))??;
        events.insert(&l.event_id, Arc::new(OutgoingEvent::new(event)));
    }
    leased
        .iter()
        .map(|l| {
            Ok(LeasedDelivery {
                id: parse(&l.id)?,
                attempts: l.attempts as u32,
                created_at: rows::from_millis(l.created_at),
                subscription_id: parse(&l.subscription_id)?,
                endpoint_id: parse(&l.endpoint_id)?,
                event: events[l.event_id.as_str()].clone(),
                routed: None,
            })
        })
        .collect()
}

/// A row the lease statement returned.
struct Leased {
    id: String,
    attempts: i64,
    created_at: i64,
    subscription_id: String,
    endpoint_id: String,
    event_id: String,
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| rows::corrupt("id", e.to_string()))
}
