//! PostgreSQL group commit: concurrent ingestion requests share one transaction of one
//! statement. A few writer tasks take turns at one queue; each takes every job waiting,
//! inserts all their events and deliveries with one statement of `INSERT … SELECT FROM
//! unnest(…)`s (one round trip, its own transaction), and answers them all. While one writer commits, the next
//! gathers the requests that arrived meanwhile, so the round trips and WAL flushes are shared
//! rather than paid once per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::model::{EventId, IngestOutcome, NewEvent};
use crate::store::rows::{millis, parse_id};
use crate::store::{routes, StoreError};

/// Jobs taken into one transaction at most.
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Events to store and where to send the outcomes.
pub(super) struct Job {
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
}

/// Starts `writers` writer tasks on `pool`; the deliveries they hand off are leased by `owner`.
/// `committed` is called after each commit that stored pending deliveries.
/// Idempotency keys are honoured for `idempotency_window` after their event was accepted.
pub(super) fn start(
    pool: PgPool,
    owner: String,
    writers: usize,
    idempotency_window: Duration,
    committed: Arc<dyn Fn() + Send + Sync>,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(4096);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers.max(1) {
        let writer = Writer {
            pool: pool.clone(),
            owner: owner.clone(),
            idempotency_window,
        };
        tokio::spawn(writer.run(rx.clone(), committed.clone()));
    }
    tx
}

/// One writer task's settings.
struct Writer {
    pool: PgPool,
    owner: String,
    idempotency_window: Duration,
}

impl Writer {
    async fn run(
        self,
        rx: Arc<Mutex<mpsc::Receiver<Job>>>,
        committed: Arc<dyn Fn() + Send + Sync>,
    ) {
        let mut jobs = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
        loop {
            // Only the gathering is under the lock: the other writers commit meanwhile.
            if rx
                .lock()
                .await
                .recv_many(&mut jobs, MAX_JOBS_PER_COMMIT)
                .await
                == 0
            {
                return;
            }
            let events: Vec<&NewEvent> = jobs.iter().flat_map(|j| &j.events).collect();
            // Each job is stored whole or not at all: all of its events are guarded by the
            // hand-off any of them is routed under.
            let guards: HashMap<EventId, i64> = jobs
                .iter()
                .filter_map(|j| {
                    let h = j.events.iter().find_map(|e| e.handoff)?.handoff;
                    Some(j.events.iter().map(move |e| (e.event.id, h)))
                })
                .flatten()
                .collect();
            metrics::histogram!("herald_store_group_commit_events").record(events.len() as f64);
            let keys_since = millis(time::OffsetDateTime::now_utc())
                .saturating_sub(self.idempotency_window.as_millis() as i64);
            match write(&self.pool, &events, &guards, &self.owner, keys_since).await {
                Ok(mut outcomes) => {
                    // Only work left for the lease query is worth announcing: what was handed
                    // off is already being sent here.
                    if events.iter().zip(&outcomes).any(|(e, o)| {
                        matches!(o, Ok(IngestOutcome::Created { .. }))
                            && e.deliveries.iter().any(|d| d.leased_until.is_none())
                    }) {
                        committed();
                    }
                    for job in jobs.drain(..) {
                        let rest = outcomes.split_off(job.events.len());
                        let mine = std::mem::replace(&mut outcomes, rest);
                        let _ = job.reply.send(mine.into_iter().collect());
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "group commit failed");
                    let cause = Arc::new(e);
                    for job in jobs.drain(..) {
                        let _ = job.reply.send(Err(StoreError::GroupCommit(cause.clone())));
                    }
                }
            }
        }
    }
}

/// The columns of a batch of events and deliveries, as arrays for `unnest`.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    name: Vec<String>,
    solution: Vec<String>,
    params: Vec<String>,
    correlation_id: Vec<String>,
    caller: Vec<String>,
    received_at: Vec<i64>,
    key: Vec<Option<String>>,
    fingerprint: Vec<Option<Vec<u8>>>,
    delivery_count: Vec<i64>,
    depth: Vec<i64>,
    pipeline: Vec<Option<String>>,
    traceparent: Vec<Option<String>>,
    images: Vec<Option<String>>,
    guard: Vec<Option<i64>>,
    handoff: Vec<Option<i64>>,
    handoff_seq: Vec<Option<i64>>,
    routes: Vec<Option<String>>,
    d_id: Vec<String>,
    d_event: Vec<String>,
    d_subscription: Vec<String>,
    d_endpoint: Vec<String>,
    d_status: Vec<&'static str>,
    d_at: Vec<i64>,
    d_owner: Vec<Option<String>>,
    d_until: Vec<Option<i64>>,
}

impl Columns {
    fn of(
        events: &[&NewEvent],
        guards: &HashMap<EventId, i64>,
        owner: &str,
    ) -> Result<Self, StoreError> {
        let mut c = Columns::default();
        // Keyed events in key order, so two concurrent batches sharing keys lock them in the
        // same order (no deadlock between instances).
        let mut order: Vec<&NewEvent> = events.to_vec();
        order.sort_by_key(|e| {
            e.idempotency
                .as_ref()
                .map(|(k, _)| (e.event.solution.as_str(), k.as_str()))
        });
        for new in order {
            let e = &new.event;
            c.id.push(e.id.to_string());
            c.name.push(e.name.to_string());
            c.solution.push(e.solution.clone());
            c.params
                .push(
                    serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
                        what: "event params",
                        source,
                    })?,
                );
            c.correlation_id.push(e.correlation_id.clone());
            c.caller.push(e.caller.clone());
            c.received_at.push(millis(e.received_at));
            c.key.push(new.idempotency.as_ref().map(|(k, _)| k.clone()));
            c.fingerprint
                .push(new.idempotency.as_ref().map(|(_, f)| f.to_vec()));
            c.delivery_count.push(new.deliveries.len() as i64);
            c.depth.push(i64::from(e.depth));
            c.pipeline.push(crate::store::rows::pipeline_json(e)?);
            c.traceparent.push(e.traceparent.clone());
            c.images.push(crate::store::rows::images_json(e)?);
            c.guard.push(guards.get(&e.id).copied());
            c.handoff.push(new.handoff.map(|h| h.handoff));
            c.handoff_seq.push(new.handoff.map(|h| h.seq));
            c.routes.push(routes::of(new)?);
            // Deliveries handed off under a hand-off are kept in the event's row.
            for d in new
                .deliveries
                .iter()
                .filter(|d| routes::is_row(new, d.leased_until.is_some()))
            {
                let leased = d.leased_until.map(millis);
                c.d_id.push(d.id.to_string());
                c.d_event.push(e.id.to_string());
                c.d_subscription.push(d.subscription_id.to_string());
                c.d_endpoint.push(d.endpoint_id.to_string());
                c.d_status.push(if leased.is_some() {
                    "in_flight"
                } else {
                    "pending"
                });
                c.d_at.push(millis(e.received_at));
                c.d_owner.push(leased.map(|_| owner.to_owned()));
                c.d_until.push(leased);
            }
        }
        Ok(c)
    }
}

/// Stores `events`: one statement for all events and deliveries, and one more, a read, only if
/// some idempotency keys were taken. A key whose holder was accepted before `keys_since` (its
/// window is over) is taken from it, and those events are stored again as new. Outcomes are in
/// the order of `events`.
async fn write(
    pool: &PgPool,
    events: &[&NewEvent],
    guards: &HashMap<EventId, i64>,
    owner: &str,
    keys_since: i64,
) -> Result<Vec<Result<IngestOutcome, StoreError>>, StoreError> {
    let mut outcomes = write_once(pool, events, guards, owner, keys_since).await?;
    let expired: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(outcomes[i], Outcome::Expired(_) | Outcome::Free))
        .collect();
    if !expired.is_empty() {
        let holders: Vec<String> = expired
            .iter()
            .filter_map(|&i| match &outcomes[i] {
                Outcome::Expired(id) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        // Only if still outside the window (another instance may have freed it already).
        if !holders.is_empty() {
            sqlx::query(
                "UPDATE events SET idempotency_key = NULL WHERE id = ANY($1) AND received_at < $2",
            )
            .bind(&holders)
            .bind(keys_since)
            .execute(pool)
            .await?;
        }
        let again: Vec<&NewEvent> = expired.iter().map(|&i| events[i]).collect();
        // Once more at most: a key freed now is held, if at all, by an event of this window.
        let retried = write_once(pool, &again, guards, owner, i64::MIN).await?;
        for (i, outcome) in expired.into_iter().zip(retried) {
            outcomes[i] = outcome;
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Done(outcome) => Ok(outcome),
            Outcome::Closed => Err(StoreError::HandoffClosed),
            Outcome::Expired(id) => Err(StoreError::Database(sqlx::Error::Protocol(format!(
                "the idempotency key of event {id} was freed but is still taken"
            )))),
            Outcome::Free => Err(StoreError::Database(sqlx::Error::Protocol(
                "an idempotency key was taken twice by events that are gone".into(),
            ))),
        })
        .collect())
}

/// What one insert made of an event: an answer, a key held by an event outside its window,
/// or a key whose holder is gone (pruned between the insert and the read).
enum Outcome {
    Done(IngestOutcome),
    Expired(EventId),
    Free,
    /// Not stored: its job is routed under a hand-off that is closed.
    Closed,
}

/// One insert of `events` (see [`write`]).
async fn write_once(
    pool: &PgPool,
    events: &[&NewEvent],
    guards: &HashMap<EventId, i64>,
    owner: &str,
    keys_since: i64,
) -> Result<Vec<Outcome>, StoreError> {
    let c = Columns::of(events, guards, owner)?;
    // The hand-offs the events are routed under: each must be open, and stays so until this
    // statement commits (`FOR KEY SHARE`, which a takeover's `FOR UPDATE` waits for and a
    // mark's `UPDATE` does not). An event routed under one that is closed is not stored.
    let mut handoffs: Vec<i64> = c.guard.iter().flatten().copied().collect();
    handoffs.sort_unstable();
    handoffs.dedup();
    // One statement, atomic by itself: one round trip, no transaction around it.
    let inserted = sqlx::query(
        "WITH h AS (SELECT id FROM handoffs WHERE id = ANY($26::int8[]) AND NOT closed FOR KEY SHARE),
         ev AS (
           INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count, depth, pipeline, traceparent, images, handoff, handoff_seq, routes)
           SELECT u.id, u.name, u.solution, u.params, u.correlation_id, u.caller, u.received_at, u.idempotency_key,
             u.fingerprint, u.delivery_count, u.depth, u.pipeline, u.traceparent, u.images, u.handoff, u.handoff_seq, u.routes
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::bytea[], $10::int8[], $19::int8[], $20::text[], $21::text[], $22::text[], $23::int8[], $24::int8[], $25::text[], $27::int8[])
             AS u(id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count, depth, pipeline, traceparent, images, handoff, handoff_seq, routes, guard)
           WHERE u.guard IS NULL OR u.guard IN (SELECT id FROM h)
           ON CONFLICT (solution, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id),
         d AS (
           INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at)
           SELECT u.id, u.event_id, u.sub, u.ep, u.status, 0, u.at, u.owner, u.until, u.at, u.at
           FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int8[], $17::text[], $18::int8[])
             AS u(id, event_id, sub, ep, status, at, owner, until)
           WHERE u.event_id IN (SELECT id FROM ev))
         SELECT id FROM ev",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.solution)
    .bind(&c.params)
    .bind(&c.correlation_id)
    .bind(&c.caller)
    .bind(&c.received_at)
    .bind(&c.key)
    .bind(&c.fingerprint)
    .bind(&c.delivery_count)
    .bind(&c.d_id)
    .bind(&c.d_event)
    .bind(&c.d_subscription)
    .bind(&c.d_endpoint)
    .bind(&c.d_status)
    .bind(&c.d_at)
    .bind(&c.d_owner)
    .bind(&c.d_until)
    .bind(&c.depth)
    .bind(&c.pipeline)
    .bind(&c.traceparent)
    .bind(&c.images)
    .bind(&c.handoff)
    .bind(&c.handoff_seq)
    .bind(&c.routes)
    .bind(&handoffs)
    .bind(&c.guard)
    .fetch_all(pool)
    .await?;
    let inserted: std::collections::HashSet<String> = inserted
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    // Events guarded by a hand-off that is closed were not stored (this instance was taken
    // over); looked up only when a guarded event is missing.
    let guarded_missing = events
        .iter()
        .any(|e| guards.contains_key(&e.event.id) && !inserted.contains(&e.event.id.to_string()));
    let open: Vec<i64> = if guarded_missing {
        sqlx::query_scalar("SELECT id FROM handoffs WHERE id = ANY($1) AND NOT closed")
            .bind(&handoffs)
            .fetch_all(pool)
            .await?
    } else {
        handoffs.clone()
    };
    let closed = |e: &NewEvent| guards.get(&e.event.id).is_some_and(|h| !open.contains(h));
    // The keys that were taken (on any instance, or earlier in this batch): answer as the
    // first time did.
    let taken: Vec<&NewEvent> = events
        .iter()
        .copied()
        .filter(|e| !inserted.contains(&e.event.id.to_string()) && !closed(e))
        .collect();
    // Committed by now, on this instance or another: the first holder of each key is read.
    let first = first_of_keys(pool, &taken).await?;
    events
        .iter()
        .map(|new| {
            if inserted.contains(&new.event.id.to_string()) {
                return Ok(Outcome::Done(IngestOutcome::Created {
                    id: new.event.id,
                    deliveries: new.deliveries.len() as u32,
                }));
            }
            if closed(new) {
                return Ok(Outcome::Closed);
            }
            let (key, fingerprint) = new
                .idempotency
                .as_ref()
                .expect("only keyed inserts can conflict");
            // The holder may be gone since (pruned: its window was over): the key is free.
            let Some((id, stored, deliveries, received)) =
                first.get(&(new.event.solution.clone(), key.clone()))
            else {
                return Ok(Outcome::Free);
            };
            Ok(if *received < keys_since {
                Outcome::Expired(*id)
            } else if stored == fingerprint.as_slice() {
                Outcome::Done(IngestOutcome::Replayed {
                    id: *id,
                    deliveries: *deliveries,
                })
            } else {
                Outcome::Done(IngestOutcome::KeyReused { id: *id })
            })
        })
        .collect()
}

/// The stored events holding the keys of `events`: id, fingerprint, delivery count and when
/// it was accepted.
async fn first_of_keys(
    pool: &PgPool,
    events: &[&NewEvent],
) -> Result<HashMap<(String, String), (EventId, Vec<u8>, u32, i64)>, StoreError> {
    if events.is_empty() {
        return Ok(HashMap::new());
    }
    let (solutions, keys): (Vec<String>, Vec<String>) = events
        .iter()
        .filter_map(|e| Some((e.event.solution.clone(), e.idempotency.as_ref()?.0.clone())))
        .unzip();
    let rows = sqlx::query(
        "SELECT solution, idempotency_key, id, fingerprint, delivery_count, received_at FROM events
         WHERE (solution, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
    )
    .bind(&solutions)
    .bind(&keys)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (row.try_get("solution")?, row.try_get("idempotency_key")?),
                (
                    parse_id(row, "id")?,
                    row.try_get("fingerprint")?,
                    row.try_get::<i64, _>("delivery_count")? as u32,
                    row.try_get::<i64, _>("received_at")?,
                ),
            ))
        })
        .collect()
}
