//! Records attempt results in batches: one transaction for all results waiting, with the
//! hand-off's mark; then tells the console's watchers what was recorded.
//!
//! A delivery kept in its event's row that succeeded is not written at all: it is settled in
//! the [`Ledger`], and the mark written with the batch says so. A batch of nothing else waits
//! up to [`LINGER`] after the previous write, so under load one small write covers many
//! successes; the mark is written at least every third of a lease even when idle (it is the
//! hand-off's lease).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, Mark};
use crate::activity::{Activity, Happening};
use crate::model::{AttemptResult, NextState};
use crate::store::{HandoffMark, Store};

/// A result to record, and what watchers are told once it is.
pub(super) type ToRecord = (AttemptResult, Option<Happening>);

/// Results taken into one transaction at most.
const BATCH: usize = 256;

/// How long a batch of successes only waits after the previous write, for more to share it.
const LINGER: Duration = Duration::from_millis(5);

/// The recorder's parts.
pub(super) struct Recorder {
    pub store: Arc<dyn Store>,
    pub owner: String,
    pub ledger: Arc<Ledger>,
    pub activity: Activity,
    /// How long a hand-off's lease lasts.
    pub lease: Duration,
}

impl Recorder {
    /// Records what arrives on `rx`; after `stop`, what is still queued, then returns.
    pub(super) async fn run(self, mut rx: mpsc::Receiver<ToRecord>, stop: CancellationToken) {
        let mut taken_in: Vec<ToRecord> = Vec::with_capacity(BATCH);
        let renew_every = self.lease / 3;
        let mut last_write = Instant::now();
        let mut written = None;
        loop {
            // A mark that moved since it was last written (deliveries settled after it was
            // taken) is written soon, not at the next renewal.
            let next_write = if self.ledger.mark() != written {
                last_write + LINGER
            } else {
                last_write + renew_every
            };
            let taken = tokio::select! {
                n = rx.recv_many(&mut taken_in, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    n
                }
                _ = tokio::time::sleep_until(next_write) => 0,
                _ = stop.cancelled(), if !rx.is_closed() => {
                    // Nothing more is accepted; what is queued is still recorded.
                    rx.close();
                    continue;
                }
            };
            if taken > 0 && !rx.is_closed() && taken_in.iter().all(|(r, _)| lean(r)) {
                // Successes only: let more join them, a few milliseconds at most.
                tokio::time::sleep_until(last_write + LINGER).await;
                while taken_in.len() < BATCH {
                    match rx.try_recv() {
                        Ok(item) => taken_in.push(item),
                        Err(_) => break,
                    }
                }
            }
            written = self.write(&mut taken_in).await;
            last_write = Instant::now();
        }
    }

    /// Writes one batch (retrying while the database fails), settles what it wrote, and tells
    /// the watchers; returns the mark written.
    async fn write(&self, taken: &mut Vec<ToRecord>) -> Option<Mark> {
        let (results, told): (Vec<AttemptResult>, Vec<Option<Happening>>) = taken.drain(..).unzip();
        let current = self.ledger.handoff();
        let mut rows = Vec::with_capacity(results.len());
        let mut routed_rows = Vec::new();
        for r in results {
            match &r.routed {
                // A success kept in its event's row writes nothing: the mark says it.
                Some(x) if lean(&r) => self.ledger.settle(x.routed),
                Some(x) if Some(x.routed.handoff) != current => {
                    // Of a hand-off taken over: its new owner sends it again.
                    metrics::counter!("herald_deliveries_fenced_total").increment(1);
                }
                Some(x) => {
                    routed_rows.push(x.routed);
                    rows.push(r);
                }
                None => rows.push(r),
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.ledger.handoff().is_none() {
                self.open().await;
            }
            let taken_mark = self.ledger.mark();
            let mark = taken_mark.map(|m| HandoffMark {
                handoff: m.handoff,
                through: m.through,
                until: OffsetDateTime::now_utc() + self.lease,
            });
            if mark.is_none() && rows.is_empty() {
                return None;
            }
            match self.store.record(&self.owner, mark.as_ref(), &rows).await {
                Ok(held) => {
                    match mark {
                        Some(m) if !held => {
                            self.ledger.lose(m.handoff);
                        }
                        _ => routed_rows.iter().for_each(|r| self.ledger.settle(*r)),
                    }
                    told.into_iter()
                        .flatten()
                        .for_each(|h| self.activity.tell(h));
                    return taken_mark.filter(|_| held);
                }
                Err(e) => {
                    // Unrecorded results are safe: leases and the hand-off expire, and the
                    // deliveries are sent again.
                    tracing::warn!(error = %e, results = rows.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    if backoff >= Duration::from_secs(10) && rows.is_empty() {
                        // Only a mark: the next batch carries a newer one.
                        return None;
                    }
                }
            }
        }
    }

    /// Opens a new hand-off (there is none, or the last was lost).
    async fn open(&self) {
        let until = OffsetDateTime::now_utc() + self.lease;
        match self.store.records().open_handoff(&self.owner, until).await {
            Ok(id) => self.ledger.open(id),
            Err(e) => {
                tracing::warn!(error = %e, "could not open a hand-off; fresh deliveries are stored pending meanwhile")
            }
        }
    }
}

/// Whether `r` is a success of a delivery kept in its event's row that writes nothing: its
/// attempt keeps no exchange (when successful requests are kept, it becomes a row).
fn lean(r: &AttemptResult) -> bool {
    r.routed.is_some()
        && r.next == NextState::Succeeded
        && r.attempt.as_ref().is_some_and(|a| a.exchange.is_none())
}
