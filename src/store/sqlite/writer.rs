//! The single writer: one thread owns the write connection and takes every job waiting in its
//! queue — events to store, attempt results to record, leases to take — and writes them
//! together: all events and results in one transaction, answered after one fsync. With N
//! concurrent requests, N events share one `COMMIT`, so durability does not cap throughput at
//! one request per fsync; and since nothing else writes deliveries, no lease or record ever
//! waits for SQLite's write lock behind a group commit (SQLite's busy handler sleeps, so a
//! second writer would starve while ingestion keeps the lock busy).
//!
//! The thread uses `rusqlite` rather than sqlx: sqlx runs each SQLite connection on a worker
//! thread of its own and hands every statement, and every row of a result, across to it and
//! back; profiles showed those hand-overs (scheduler wake-ups) costing more than SQLite's own
//! work. Here a whole batch of jobs crosses once, and every statement is prepared once.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::prune::{self, ride, ride_failed, PruneStep};
use super::write::{insert_all, lease, record, Lease};
use crate::model::{AttemptResult, IngestOutcome, LeasedDelivery, NewEvent};
use crate::store::rows::millis;
use crate::store::{HandoffMark, StoreError};

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
        mark: Option<HandoffMark>,
        results: Vec<AttemptResult>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Due deliveries to lease.
    Lease {
        request: Lease,
        reply: oneshot::Sender<Result<Vec<LeasedDelivery>, StoreError>>,
    },
    /// A pruning step: inside the round's group commit if there is one, else in a short
    /// transaction of its own.
    Prune(PruneStep),
    /// Up to `max_pages` free pages to give back to the file system.
    Reclaim {
        max_pages: u32,
        reply: oneshot::Sender<Result<u64, StoreError>>,
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

/// Opens the writer's connection to the (migrated) database at `path` and starts its thread.
/// Keys are honoured for `idempotency_window` after their event was accepted.
pub(super) fn start(
    path: &Path,
    failing: Failing,
    owner: String,
    idempotency_window: Duration,
) -> Result<mpsc::Sender<Job>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // journal_size_limit: the WAL is truncated back to 64 MiB after a checkpoint, so a burst
    // does not leave a large file behind. Foreign keys are not checked on this connection
    // (the others check them): every row it writes or removes keeps them by construction —
    // deliveries are stored with their event, an attempt only for a delivery that exists
    // (`record` checks), pruning removes attempts before their delivery and an event only
    // once no delivery is left — and each check would cost an index lookup per row.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    let (tx, rx) = mpsc::channel(4096);
    let writer = Writer {
        conn,
        failing,
        owner,
        idempotency_window,
        sync: Sync::Full,
    };
    std::thread::Builder::new()
        .name("herald-sqlite-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    Ok(tx)
}

/// The durability a commit needs: `Full` (fsync at commit) when it stores events, `Normal`
/// when it only records attempts (losing those in a power cut only means a delivery is sent
/// again, which at-least-once allows; the next full commit makes them durable too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Full,
    Normal,
}

type IngestJob = (
    Vec<NewEvent>,
    bool,
    oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>,
);
type RecordJob = (
    String,
    Option<HandoffMark>,
    Vec<AttemptResult>,
    oneshot::Sender<Result<bool, StoreError>>,
);

/// The writer thread's state.
struct Writer {
    conn: Connection,
    failing: Failing,
    owner: String,
    idempotency_window: Duration,
    /// The connection's `synchronous` setting now.
    sync: Sync,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // Blocks this thread (not a runtime's) until work comes, then takes all that waits.
        while let Some(first) = rx.blocking_recv() {
            let mut ingests = Vec::new();
            let mut records = Vec::new();
            let mut leases = Vec::new();
            let mut prunes = Vec::new();
            let mut reclaims = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(job) = next.take() {
                match job {
                    Job::Ingest {
                        events,
                        probe,
                        reply,
                    } => ingests.push((events, probe, reply)),
                    Job::Record {
                        owner,
                        mark,
                        results,
                        reply,
                    } => records.push((owner, mark, results, reply)),
                    Job::Lease { request, reply } => leases.push((request, reply)),
                    Job::Prune(step) => prunes.push(step),
                    Job::Reclaim { max_pages, reply } => reclaims.push((max_pages, reply)),
                }
                taken += 1;
                if taken < MAX_JOBS_PER_COMMIT {
                    next = rx.try_recv().ok();
                }
            }
            if !ingests.is_empty() || !records.is_empty() {
                let keys_since = millis(time::OffsetDateTime::now_utc())
                    .saturating_sub(self.idempotency_window.as_millis() as i64);
                // Pruning steps ride in the group commit.
                let round = Round {
                    keys_since,
                    ingests,
                    records,
                    riders: std::mem::take(&mut prunes),
                };
                commit(
                    &self.conn,
                    &self.failing,
                    &self.owner,
                    &mut self.sync,
                    round,
                );
            }
            for (request, reply) in leases {
                let _ = reply.send(lease(&self.conn, &request));
            }
            for step in prunes {
                self.prune(step);
            }
            for (max_pages, reply) in reclaims {
                let sync = set_sync(&self.conn, &mut self.sync, Sync::Normal);
                let _ = reply.send(sync.and_then(|()| prune::reclaim(&self.conn, max_pages)));
            }
        }
    }

    /// Runs and answers pruning step `step` in a transaction of its own, at
    /// `synchronous = NORMAL`: losing a step in a power cut only means it runs again.
    fn prune(&mut self, step: PruneStep) {
        let conn = &self.conn;
        let begun = set_sync(conn, &mut self.sync, Sync::Normal)
            .and_then(|()| Ok(conn.execute_batch("BEGIN IMMEDIATE")?));
        if let Err(e) = begun {
            ride_failed(step, e);
            return;
        }
        let settle = ride(conn, step);
        match conn.execute_batch("COMMIT") {
            Ok(()) => settle(None),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                settle(Some(&Arc::new(e.into())));
            }
        }
    }
}

/// What one group commit writes.
struct Round {
    /// Idempotency keys of events accepted before this (unix ms) are free.
    keys_since: i64,
    ingests: Vec<IngestJob>,
    records: Vec<RecordJob>,
    /// Pruning steps written with the commit.
    riders: Vec<PruneStep>,
}

/// Sets the connection's `synchronous` to `needed` if it is not already.
fn set_sync(conn: &Connection, sync: &mut Sync, needed: Sync) -> Result<(), StoreError> {
    if *sync != needed {
        conn.execute_batch(match needed {
            Sync::Full => "PRAGMA synchronous = FULL",
            Sync::Normal => "PRAGMA synchronous = NORMAL",
        })?;
        *sync = needed;
    }
    Ok(())
}

/// Writes the events, results and pruning steps of one round in one transaction and answers
/// each job.
fn commit(conn: &Connection, failing: &Failing, owner: &str, sync: &mut Sync, round: Round) {
    let Round {
        keys_since,
        ingests,
        records,
        riders,
    } = round;
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
    let mut settles = Vec::with_capacity(riders.len());
    let mut riders = Some(riders);
    let result = set_sync(conn, sync, needed).and_then(|()| {
        write(conn, &events, probe, owner, keys_since, &records, || {
            let steps = riders.take().unwrap_or_default();
            settles.extend(steps.into_iter().map(|step| ride(conn, step)));
        })
    });
    match result {
        Ok((mut outcomes, held)) => {
            for settle in settles {
                settle(None);
            }
            if probe.is_some() {
                // Give the probe's pages back for events to use; if this fails, the next
                // probe or commit overwrites them anyway.
                let _ = conn.execute("UPDATE store_probe SET filler = NULL", []);
            }
            if needed == Sync::Full {
                failing.0.store(0, Ordering::Release);
            }
            for (events, _, reply) in ingests {
                let rest = outcomes.split_off(events.len());
                let _ = reply.send(Ok(std::mem::replace(&mut outcomes, rest)));
            }
            for ((_, _, _, reply), held) in records.into_iter().zip(held) {
                let _ = reply.send(Ok(held));
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
            for (_, _, _, reply) in records {
                let _ = reply.send(Err(StoreError::GroupCommit(cause.clone())));
            }
            for settle in settles {
                settle(Some(&cause));
            }
            // Steps the failed round never reached are answered with its cause too.
            for step in riders.into_iter().flatten() {
                ride_failed(step, StoreError::GroupCommit(cause.clone()));
            }
        }
    }
}

fn write(
    conn: &Connection,
    events: &[&NewEvent],
    probe: Option<usize>,
    owner: &str,
    keys_since: i64,
    records: &[RecordJob],
    prune: impl FnOnce(),
) -> Result<(Vec<IngestOutcome>, Vec<bool>), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let written = (|| {
        if let Some(bytes) = probe {
            conn.execute(
                "INSERT INTO store_probe (id, written_at, filler) VALUES (1, ?1, zeroblob(?2))
                 ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, filler = excluded.filler",
                rusqlite::params![millis(time::OffsetDateTime::now_utc()), bytes as i64],
            )?;
        }
        let held = records
            .iter()
            .map(|(owner, mark, results, _)| record(conn, owner, mark.as_ref(), results))
            .collect::<Result<Vec<bool>, StoreError>>()?;
        let outcomes = insert_all(conn, events, owner, keys_since)?;
        prune();
        Ok((outcomes, held))
    })();
    let result = match written {
        Ok(outcomes) => conn
            .execute_batch("COMMIT")
            .map(|_| outcomes)
            .map_err(StoreError::from),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // The transaction is abandoned (a failed COMMIT, say on a full disk, can leave it
        // open); the first error is what matters, so the rollback's own is not reported.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
