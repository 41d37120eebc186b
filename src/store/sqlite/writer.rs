//! The single writer: one task owns the write connection and takes every job waiting in its
//! queue — events to store, attempt results to record, leases to take — and writes them
//! together: all events and results in one transaction, answered after one fsync. With N
//! concurrent requests, N events share one `COMMIT`, so durability does not cap throughput at
//! one request per fsync; and since nothing else writes deliveries, no lease or record ever
//! waits for SQLite's write lock behind a group commit (SQLite's busy handler sleeps, so a
//! second writer would starve while ingestion keeps the lock busy).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::insert::insert_all;
use super::lease::{lease, Lease};
use crate::model::{AttemptResult, IngestOutcome, LeasedDelivery, NewEvent};
use crate::store::record::record_sqlite;
use crate::store::rows::millis;
use crate::store::StoreError;

/// Jobs taken into one transaction at most (bounds the transaction's size and latency).
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Work for the writer, each with where to send its answer.
pub(super) enum Job {
    /// Events to store durably. An empty job with `probe` set writes the row of
    /// `store_probe`, with as many bytes as the failed commit tried to write: whether such a
    /// write succeeds now (readiness after a failed commit, say on a full disk).
    Ingest {
        events: Vec<NewEvent>,
        probe: bool,
        reply: oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
    },
    /// Attempt results of deliveries `owner` leased.
    Record {
        owner: String,
        results: Vec<AttemptResult>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Due deliveries to lease.
    Lease {
        request: Lease,
        reply: oneshot::Sender<Result<Vec<LeasedDelivery>, StoreError>>,
    },
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

/// The durability a commit needs: `Full` (fsync at commit) when it stores events, `Normal`
/// when it only records attempts (losing those in a power cut only means a delivery is sent
/// again, which at-least-once allows; the next full commit makes them durable too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Full,
    Normal,
}

pub(super) async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    failing: Failing,
    owner: String,
) {
    let mut jobs = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    let mut sync = Sync::Full;
    while rx.recv_many(&mut jobs, MAX_JOBS_PER_COMMIT).await > 0 {
        let mut ingests = Vec::new();
        let mut records = Vec::new();
        let mut leases = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Ingest {
                    events,
                    probe,
                    reply,
                } => ingests.push((events, probe, reply)),
                Job::Record {
                    owner,
                    results,
                    reply,
                } => records.push((owner, results, reply)),
                Job::Lease { request, reply } => leases.push((request, reply)),
            }
        }
        if !ingests.is_empty() || !records.is_empty() {
            commit(&mut conn, &failing, &owner, &mut sync, ingests, records).await;
        }
        for (request, reply) in leases {
            let _ = reply.send(lease(&mut conn, &request).await);
        }
    }
}

type IngestJob = (
    Vec<NewEvent>,
    bool,
    oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
);
type RecordJob = (
    String,
    Vec<AttemptResult>,
    oneshot::Sender<Result<(), StoreError>>,
);

/// Writes the events and results of one round in one transaction and answers each job.
async fn commit(
    conn: &mut SqliteConnection,
    failing: &Failing,
    owner: &str,
    sync: &mut Sync,
    ingests: Vec<IngestJob>,
    records: Vec<RecordJob>,
) {
    let events: Vec<&NewEvent> = ingests.iter().flat_map(|(e, _, _)| e).collect();
    let probe = ingests
        .iter()
        .any(|(_, probe, _)| *probe)
        .then(|| failing.probe_bytes())
        .flatten();
    let needed = if ingests.is_empty() {
        Sync::Normal
    } else {
        Sync::Full
    };
    if !events.is_empty() {
        metrics::histogram!("herald_store_group_commit_events").record(events.len() as f64);
    }
    let result = async {
        if *sync != needed {
            let pragma = match needed {
                Sync::Full => "PRAGMA synchronous = FULL",
                Sync::Normal => "PRAGMA synchronous = NORMAL",
            };
            sqlx::query(pragma).execute(&mut *conn).await?;
            *sync = needed;
        }
        write(conn, &events, probe, owner, &records).await
    }
    .await;
    match result {
        Ok(mut outcomes) => {
            if probe.is_some() {
                // Give the probe's pages back for events to use; if this fails, the next
                // probe or commit overwrites them anyway.
                let _ = sqlx::query("UPDATE store_probe SET filler = NULL")
                    .execute(&mut *conn)
                    .await;
            }
            if needed == Sync::Full {
                failing.0.store(0, Ordering::Release);
            }
            for (events, _, reply) in ingests {
                let rest = outcomes.split_off(events.len());
                let _ = reply.send(Ok(std::mem::replace(&mut outcomes, rest)));
            }
            for (_, _, reply) in records {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            if needed == Sync::Full {
                let tried = approximate_bytes(&events).max(probe.unwrap_or(0));
                failing.0.store(tried, Ordering::Release);
            }
            tracing::error!(error = %e, events = events.len(), results = records.len(), "group commit failed");
            // Every job of the round shares the one cause.
            let cause = Arc::new(e);
            for (_, _, reply) in ingests {
                let _ = reply.send(Err(StoreError::GroupCommit(cause.clone())));
            }
            for (_, _, reply) in records {
                let _ = reply.send(Err(StoreError::GroupCommit(cause.clone())));
            }
        }
    }
}

async fn write(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
    probe: Option<usize>,
    owner: &str,
    records: &[RecordJob],
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
        for (owner, results, _) in records {
            record_sqlite(&mut *conn, owner, results).await?;
        }
        insert_all(conn, events, owner).await
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
