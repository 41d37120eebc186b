//! The pruner: a background task that removes what the retention policy lets go, in small
//! batches (each its own short transaction, so ingestion never waits behind a large delete),
//! gives the space back (SQLite), and refreshes the store's statistics for `/metrics`.
//!
//! What a pass removes, in order: finished deliveries past their window (succeeded ones after
//! `succeeded`, dead-lettered and cancelled ones after `dead_lettered`) with their attempts;
//! then events older than `events` with no delivery left and no idempotency key still
//! honoured. A pending, in-flight or retrying delivery is never removed, nor its event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{Cutoffs, PassReport, Removed, Store, StoreError, StoreStats};

/// How long Herald keeps what is finished.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Whether the pruner runs at all.
    pub enabled: bool,
    /// Succeeded deliveries and their attempts, after they succeeded.
    pub succeeded: Duration,
    /// Dead-lettered and cancelled deliveries (they can be replayed until then).
    pub dead_lettered: Duration,
    /// Events, after they were accepted, once none of their deliveries is left.
    pub events: Duration,
    /// Idempotency keys are honoured this long after their event was accepted.
    pub idempotency: Duration,
    /// Time between the starts of two passes.
    pub interval: Duration,
    /// Time between two readings of rows and bytes by table (on SQLite a reading visits
    /// every page of the database).
    pub stats_interval: Duration,
    /// Rows per batch (one short transaction each).
    pub batch: u32,
}

impl RetentionPolicy {
    /// The cutoffs of a pass starting at `now`.
    pub fn cutoffs(&self, now: OffsetDateTime) -> Cutoffs {
        Cutoffs {
            succeeded: now - self.succeeded,
            dead_lettered: now - self.dead_lettered,
            events: now - self.events,
            idempotency: now - self.idempotency,
        }
    }
}

/// Pages given back per reclaim step (SQLite: 1 MiB at the default page size), a step being
/// one job of the writer thread that ingestion waits behind.
const RECLAIM_PAGES: u32 = 256;

/// The pruner of one instance: runs passes and keeps the last pass and statistics.
#[derive(Clone)]
pub struct Pruner {
    store: Arc<dyn Store>,
    policy: RetentionPolicy,
    instance: String,
    last_stats: Arc<Mutex<Option<StoreStats>>>,
    totals: Arc<Mutex<Totals>>,
}

/// What this instance's pruner has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passes that ran to the end.
    pub passes: u64,
    /// Passes that failed (each is logged; the next pass tries again).
    pub failures: u64,
    /// Rows removed in all.
    pub removed: Removed,
}

impl Pruner {
    /// A pruner of `store` under `policy`; passes are reported as run by `instance`.
    pub fn new(store: Arc<dyn Store>, policy: RetentionPolicy, instance: String) -> Self {
        Self {
            store,
            policy,
            instance,
            last_stats: Arc::default(),
            totals: Arc::default(),
        }
    }

    /// What this pruner has done since it started.
    pub fn totals(&self) -> Totals {
        *self
            .totals
            .lock()
            .expect("the totals lock is never held across a panic")
    }

    /// The statistics of the last pass (or of start-up), if any.
    pub fn last_stats(&self) -> Option<StoreStats> {
        self.last_stats
            .lock()
            .expect("the statistics lock is never held across a panic")
            .clone()
    }

    /// Runs a pass now, then one every `interval`, until `shutdown`, reading the statistics
    /// at start and then every `stats_interval`. With pruning disabled, only reads those.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut stats_read: Option<Instant> = None;
        loop {
            let started = Instant::now();
            if self.policy.enabled {
                let outcome = self.pass(&shutdown).await;
                let mut totals = self
                    .totals
                    .lock()
                    .expect("the totals lock is never held across a panic");
                match outcome {
                    Ok(report) => {
                        totals.passes += 1;
                        totals.removed += report.removed;
                    }
                    Err(e) => {
                        totals.failures += 1;
                        tracing::warn!(error = %e, "a pruning pass failed; the next one tries again");
                    }
                }
            }
            if stats_read.is_none_or(|at| at.elapsed() >= self.policy.stats_interval) {
                self.refresh_stats().await;
                stats_read = Some(Instant::now());
            }
            let wait = self.policy.interval.saturating_sub(started.elapsed());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass: every expired row removed, batch by batch, and the space given back.
    pub async fn pass(&self, shutdown: &CancellationToken) -> Result<PassReport, StoreError> {
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let cutoffs = self.policy.cutoffs(started_at);
        let batch = self.policy.batch.max(1);
        let mut removed = Removed::default();
        loop {
            let step = self.store.prune_deliveries(&cutoffs, batch).await?;
            removed += step;
            if step.deliveries < u64::from(batch) || shutdown.is_cancelled() {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let scan = self
                .store
                .prune_events(&cutoffs, after.as_deref(), batch)
                .await?;
            removed.events += scan.removed;
            match scan.next {
                Some(next) if !shutdown.is_cancelled() => after = Some(next),
                _ => break,
            }
        }
        let mut reclaimed = 0;
        while !shutdown.is_cancelled() {
            let bytes = self.store.reclaim(RECLAIM_PAGES).await?;
            reclaimed += bytes;
            if bytes == 0 {
                break;
            }
        }
        let report = PassReport {
            instance: self.instance.clone(),
            started_at,
            duration_ms: clock.elapsed().as_millis() as u64,
            removed,
            reclaimed_bytes: reclaimed,
        };
        self.store.records().save_pass(&report).await?;
        record_pass(&report);
        if removed != Removed::default() {
            tracing::info!(
                deliveries = removed.deliveries,
                attempts = removed.attempts,
                events = removed.events,
                reclaimed_bytes = reclaimed,
                ms = report.duration_ms,
                "pruned what the retention policy let go"
            );
        }
        Ok(report)
    }

    /// Reads the store's rows and bytes by table into the metrics.
    pub async fn refresh_stats(&self) {
        match self.store.stats().await {
            Ok(stats) => {
                record_stats(&stats);
                *self
                    .last_stats
                    .lock()
                    .expect("the statistics lock is never held across a panic") = Some(stats);
            }
            Err(e) => tracing::warn!(error = %e, "reading the store's statistics failed"),
        }
    }
}

/// The last pass as metrics.
fn record_pass(report: &PassReport) {
    let r = &report.removed;
    for (table, n) in [
        ("deliveries", r.deliveries),
        ("attempts", r.attempts),
        ("events", r.events),
    ] {
        metrics::gauge!("herald_prune_last_removed", "table" => table).set(n as f64);
        metrics::counter!("herald_prune_removed_total", "table" => table).increment(n);
    }
    metrics::gauge!("herald_prune_last_reclaimed_bytes").set(report.reclaimed_bytes as f64);
    metrics::gauge!("herald_prune_last_duration_seconds").set(report.duration_ms as f64 / 1000.0);
    metrics::gauge!("herald_prune_last_pass_timestamp_seconds")
        .set(report.started_at.unix_timestamp() as f64);
}

/// Rows and bytes by table as metrics.
fn record_stats(stats: &StoreStats) {
    for t in &stats.tables {
        metrics::gauge!("herald_store_rows", "table" => t.table.clone()).set(t.rows as f64);
        metrics::gauge!("herald_store_bytes", "table" => t.table.clone()).set(t.bytes as f64);
    }
    metrics::gauge!("herald_store_total_bytes").set(stats.total_bytes as f64);
    if let Some(free) = stats.free_bytes {
        metrics::gauge!("herald_store_free_bytes").set(free as f64);
    }
}
