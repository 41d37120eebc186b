//! Group commit: one task owns the write connection, takes every ingestion job waiting in
//! its queue, writes them all in one transaction and answers them after one fsync.
//! With N concurrent requests, N events share one `COMMIT`, so durability does not cap
//! throughput at one request per fsync.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::model::{IngestOutcome, NewEvent};
use crate::store::rows::millis;
use crate::store::StoreError;

/// Jobs taken into one transaction at most (bounds the transaction's size and latency).
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Events to store and where to send the outcome.
/// An empty job with `probe` set writes the row of `store_probe`, with as many bytes as the
/// failed commit tried to write: whether such a write succeeds now (readiness after a failed
/// commit, say on a full disk).
pub(super) struct Job {
    pub events: Vec<NewEvent>,
    pub probe: bool,
    pub reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
}

/// Smallest probe: enough pages that it cannot fit in the free room of pages already written.
const MIN_PROBE_BYTES: usize = 64 * 1024;
/// Largest probe.
const MAX_PROBE_BYTES: usize = 4 * 1024 * 1024;

/// After a failed group commit, about how many bytes it tried to write (0 while commits
/// succeed): set by the writer, read by readiness checks.
#[derive(Debug, Clone, Default)]
pub(super) struct Failing(Arc<AtomicUsize>);

impl Failing {
    /// The size of the probe to write before saying ready again, if the last commit failed.
    pub fn probe_bytes(&self) -> Option<usize> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(n.clamp(MIN_PROBE_BYTES, MAX_PROBE_BYTES)),
        }
    }
}

/// About the bytes a commit of `events` writes: their parameters and the rows around them.
fn approximate_bytes(events: &[&NewEvent]) -> usize {
    events
        .iter()
        .map(|e| {
            let params = serde_json::to_vec(&e.event.params).map_or(0, |p| p.len());
            params + 256 + 160 * e.deliveries.len()
        })
        .sum::<usize>()
        .max(1)
}

pub(super) async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, failing: Failing) {
    let mut jobs = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while rx.recv_many(&mut jobs, MAX_JOBS_PER_COMMIT).await > 0 {
        let events: Vec<&NewEvent> = jobs.iter().flat_map(|j| &j.events).collect();
        let probe = jobs
            .iter()
            .any(|j| j.probe)
            .then(|| failing.probe_bytes())
            .flatten();
        metrics::histogram!("herald_store_group_commit_events").record(events.len() as f64);
        match write(&mut conn, &events, probe).await {
            Ok(mut outcomes) => {
                if probe.is_some() {
                    // Give the probe's pages back for events to use; if this fails, the
                    // next probe or commit overwrites them anyway.
                    let _ = sqlx::query("UPDATE store_probe SET filler = NULL")
                        .execute(&mut conn)
                        .await;
                }
                failing.0.store(0, Ordering::Release);
                for job in jobs.drain(..) {
                    let rest = outcomes.split_off(job.events.len());
                    let _ = job.reply.send(Ok(std::mem::replace(&mut outcomes, rest)));
                }
            }
            Err(e) => {
                let tried = approximate_bytes(&events).max(probe.unwrap_or(0));
                failing.0.store(tried, Ordering::Release);
                tracing::error!(error = %e, events = events.len(), "group commit failed");
                // Every job of the batch shares the one cause.
                let cause = Arc::new(e);
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(StoreError::GroupCommit(cause.clone())));
                }
            }
        }
    }
}

async fn write(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    probe: Option<usize>,
) -> Result<Vec<IngestOutcome>, StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let written = async {
        if let Some(bytes) = probe {
            sqlx::query("INSERT INTO store_probe (id, written_at, filler) VALUES (1, ?, zeroblob(?)) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, filler = excluded.filler")
                .bind(millis(time::OffsetDateTime::now_utc()))
                .bind(bytes as i64)
                .execute(&mut *conn)
                .await?;
        }
        insert_all(conn, events).await
    };
    let result = match written.await {
        Ok(outcomes) => sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map(|_| outcomes)
            .map_err(StoreError::from),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // The transaction is abandoned (a failed COMMIT, say on a full disk, can leave it
        // open); the first error is what matters, so the rollback's own is not reported.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

async fn insert_all(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for new in events {
        let e = &new.event;
        if let Some((key, fingerprint)) = &new.idempotency {
            let seen = sqlx::query("SELECT id, fingerprint, delivery_count FROM events WHERE solution = ? AND idempotency_key = ?")
                .bind(&e.solution)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = seen {
                let id = crate::store::rows::parse_id(&row, "id")?;
                let same: Vec<u8> = row.try_get("fingerprint")?;
                outcomes.push(if same == fingerprint.as_slice() {
                    IngestOutcome::Replayed {
                        id,
                        deliveries: row.try_get::<i64, _>("delivery_count")? as u32,
                    }
                } else {
                    IngestOutcome::KeyReused { id }
                });
                continue;
            }
        }
        let params = serde_json::to_string(&e.params).map_err(|source| StoreError::Corrupt {
            what: "event params",
            source,
        })?;
        let received = millis(e.received_at);
        sqlx::query(
            "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id.to_string())
        .bind(&e.name)
        .bind(&e.solution)
        .bind(params)
        .bind(&e.correlation_id)
        .bind(&e.caller)
        .bind(received)
        .bind(new.idempotency.as_ref().map(|(k, _)| k.as_str()))
        .bind(new.idempotency.as_ref().map(|(_, f)| f.as_slice()))
        .bind(new.deliveries.len() as i64)
        .execute(&mut *conn)
        .await?;
        for d in &new.deliveries {
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at)
                 VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            )
            .bind(d.id.to_string())
            .bind(e.id.to_string())
            .bind(d.subscription_id.to_string())
            .bind(d.endpoint_id.to_string())
            .bind(received)
            .bind(received)
            .bind(received)
            .execute(&mut *conn)
            .await?;
        }
        outcomes.push(IngestOutcome::Created {
            id: e.id,
            deliveries: new.deliveries.len() as u32,
        });
    }
    Ok(outcomes)
}
