//! What is happening, as it happens: counts per minute (events accepted; attempts by outcome
//! and their time, per endpoint), kept in memory and added to the store every few seconds so
//! the console's charts cover every instance; and a live feed of events and attempts for the
//! console's tail. Counting costs a short lock; the feed costs nothing while nobody watches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::model::{
    minute_of, ActivityRow, AttemptOutcome, AttemptResult, Counts, DeliveryId, EndpointId, EventId,
    LeasedDelivery,
};
use crate::store::Store;

/// How often counts are added to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How long minutes are kept in the store.
const KEEP_MINUTES: i64 = 7 * 24 * 60;
/// Happenings a slow watcher may fall behind by before it misses some.
const FEED_DEPTH: usize = 1024;

/// One thing that happened, as the live tail shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Happening {
    /// An event was accepted.
    Accepted {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// The event.
        event_id: EventId,
        /// Its unique name.
        event_name: String,
        /// Its solution.
        solution: String,
        /// Deliveries created.
        deliveries: u32,
    },
    /// A delivery was attempted, or kept back.
    Attempted {
        /// When it ended.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// The delivery.
        delivery_id: DeliveryId,
        /// Its event.
        event_id: EventId,
        /// The event's unique name.
        event_name: String,
        /// The solution of the event (watchers see only their solutions).
        solution: String,
        /// Where it went.
        endpoint_id: EndpointId,
        /// Attempts made, this one included.
        attempt: u32,
        /// What became of the delivery: `succeeded`, `retry`, `dead_lettered`, `wait`, …
        state: &'static str,
        /// The receiver's HTTP status, for webhooks.
        http_status: Option<u16>,
        /// How long the attempt took (none when nothing was sent).
        duration_ms: Option<u64>,
        /// The error, when it failed.
        error: Option<String>,
    },
}

impl Happening {
    /// The solution of the event it is about.
    pub fn solution(&self) -> &str {
        match self {
            Happening::Accepted { solution, .. } | Happening::Attempted { solution, .. } => {
                solution
            }
        }
    }
}

/// Counts and the live feed; cheap to clone.
#[derive(Clone)]
pub struct Activity {
    inner: Arc<Inner>,
}

struct Inner {
    counts: Mutex<HashMap<(i64, Option<EndpointId>), Counts>>,
    feed: broadcast::Sender<Happening>,
    /// Cancelled at shutdown: watchers stop (a graceful shutdown waits for open streams).
    closing: CancellationToken,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("watchers", &self.inner.feed.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                counts: Mutex::new(HashMap::new()),
                feed: broadcast::channel(FEED_DEPTH).0,
                closing: CancellationToken::new(),
            }),
        }
    }
}

impl Activity {
    /// Whether anyone watches the feed (so a happening is worth describing).
    pub fn watched(&self) -> bool {
        self.inner.feed.receiver_count() > 0
    }

    /// Watches the feed from now on.
    pub fn watch(&self) -> broadcast::Receiver<Happening> {
        self.inner.feed.subscribe()
    }

    /// Cancelled when Herald shuts down: watchers should stop then.
    pub fn closing(&self) -> CancellationToken {
        self.inner.closing.clone()
    }

    /// Tells watchers (if any).
    pub fn tell(&self, happening: Happening) {
        let _ = self.inner.feed.send(happening);
    }

    fn add(&self, at: OffsetDateTime, endpoint: Option<EndpointId>, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(counts.entry((minute_of(at), endpoint)).or_default());
    }

    /// `n` events were accepted.
    pub fn accepted(&self, n: u64) {
        if n > 0 {
            self.add(OffsetDateTime::now_utc(), None, |c| c.events += n);
        }
    }

    /// Counts the result of a leased delivery, when an attempt was made (or it was
    /// dead-lettered without one).
    pub fn count(&self, d: &LeasedDelivery, r: &AttemptResult) {
        let now = OffsetDateTime::now_utc();
        let dead = matches!(r.next, crate::model::NextState::DeadLettered(_));
        if let Some(a) = &r.attempt {
            self.add(now, Some(d.endpoint_id), |c| {
                if a.outcome == AttemptOutcome::Success {
                    c.succeeded += 1;
                } else {
                    c.failed += 1;
                }
                c.dead_lettered += u64::from(dead);
                c.total_ms += a.duration_ms;
                c.max_ms = c.max_ms.max(a.duration_ms);
            });
        } else if dead {
            self.add(now, Some(d.endpoint_id), |c| c.dead_lettered += 1);
        }
    }

    /// What watchers are told of the result of a leased delivery (`None` while nobody
    /// watches).
    pub fn describe(&self, d: &LeasedDelivery, r: &AttemptResult) -> Option<Happening> {
        self.watched().then(|| Happening::Attempted {
            at: OffsetDateTime::now_utc(),
            delivery_id: d.id,
            event_id: d.event.event.id,
            event_name: d.event.event.name.clone(),
            solution: d.event.event.solution.clone(),
            endpoint_id: d.endpoint_id,
            attempt: r.attempts,
            state: r.next.label(),
            http_status: r.attempt.as_ref().and_then(|a| a.http_status),
            duration_ms: r.attempt.as_ref().map(|a| a.duration_ms),
            error: r.attempt.as_ref().and_then(|a| a.error.clone()),
        })
    }

    /// The counts not yet added to the store.
    fn take(&self) -> Vec<ActivityRow> {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .drain()
            .map(|((minute, endpoint_id), counts)| ActivityRow {
                minute,
                endpoint_id,
                counts,
            })
            .collect()
    }

    /// Puts counts back (the store did not take them): the next flush tries again.
    fn restore(&self, rows: Vec<ActivityRow>) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|p| p.into_inner());
        for r in rows {
            counts
                .entry((r.minute, r.endpoint_id))
                .or_default()
                .add(&r.counts);
        }
    }

    /// Adds what was counted to the store now.
    pub async fn flush(&self, store: &dyn Store) {
        let rows = self.take();
        if rows.is_empty() {
            return;
        }
        let forget = minute_of(OffsetDateTime::now_utc()) - KEEP_MINUTES;
        if let Err(e) = store.console().add_activity(&rows, forget).await {
            tracing::warn!(error = %e, "could not add activity counts to the store; trying again");
            self.restore(rows);
        }
    }

    /// Adds the counts to the store every few seconds, and once more at shutdown.
    pub async fn run(self, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(store.as_ref()).await,
                _ = shutdown.cancelled() => {
                    self.inner.closing.cancel();
                    self.flush(store.as_ref()).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_the_store_refused_are_kept_for_the_next_flush() {
        let a = Activity::default();
        a.accepted(3);
        let rows = a.take();
        assert_eq!(rows.len(), 1);
        a.accepted(2);
        a.restore(rows);
        let rows = a.take();
        assert_eq!(rows[0].counts.events, 5);
        assert!(a.take().is_empty());
    }
}
