//! What is happening, as it happens: counts per minute (events accepted; attempts by outcome
//! and their time, per endpoint), kept in memory and added to the store every few seconds so
//! the console's charts cover every instance; and a live feed of events and attempts for the
//! console's tail. Counting costs a short lock; the feed costs nothing while nobody watches.
//!
//! On a store that instances share, a live tail open on one instance hears the others too:
//! its instance asks them (every [`WANT_EVERY`]) to tell what happens, and for
//! [`TOLD_FOR`] after each ask they gather their happenings and pass them on through the
//! store every [`TELL_EVERY`], in batches of at most [`TAIL_TEXT_MAX`] bytes. While no tail
//! is open anywhere, nothing is gathered or sent.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::model::{
    minute_of, ActivityRow, AttemptOutcome, AttemptResult, Counts, DeliveryId, EndpointId, EventId,
    LeasedDelivery,
};
use crate::store::{Store, TAIL_TEXT_MAX};

/// How often counts are added to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How long minutes are kept in the store.
const KEEP_MINUTES: i64 = 7 * 24 * 60;
/// Happenings a slow watcher may fall behind by before it misses some.
const FEED_DEPTH: usize = 1024;
/// How often an instance with a live tail open asks the others to tell it what happens.
const WANT_EVERY: Duration = Duration::from_secs(10);
/// How long an instance tells what happens after it was asked.
const TOLD_FOR: Duration = Duration::from_secs(30);
/// How often gathered happenings are passed on to the other instances.
const TELL_EVERY: Duration = Duration::from_millis(250);
/// Happenings gathered between two passes at most; past it they are missed (the live tail is
/// a view, not a record: every delivery's state is in the store).
const GATHER_MAX: usize = 4096;

/// One thing that happened, as the live tail shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
        state: Cow<'static, str>,
        /// The receiver's HTTP status, for webhooks.
        http_status: Option<u16>,
        /// How long the attempt took (none when nothing was sent).
        duration_ms: Option<u64>,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// Another instance could not pass on this many happenings (more than it passes on at
    /// once, one too large, or a notice the store did not take).
    Missed {
        /// How many.
        count: u64,
    },
}

impl Happening {
    /// The solution of the event it is about (none for a count of missed ones).
    pub fn solution(&self) -> Option<&str> {
        match self {
            Happening::Accepted { solution, .. } | Happening::Attempted { solution, .. } => {
                Some(solution)
            }
            Happening::Missed { .. } => None,
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
    /// This instance's name: what it hears from itself through the store, it ignores.
    origin: String,
    /// Until when (unix ms) another instance's live tail wants this one's happenings.
    told_until: AtomicI64,
    /// Happenings gathered for the other instances, and how many did not fit.
    gathered: Mutex<(Vec<Happening>, u64)>,
}

/// What one instance tells the others' live tails.
#[derive(Serialize, Deserialize)]
struct Told<'a> {
    origin: Cow<'a, str>,
    happenings: Vec<Happening>,
    /// Happenings of the origin's that were not passed on since its last text.
    #[serde(default)]
    missed: u64,
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
        Self::new("this instance")
    }
}

fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Activity {
    /// The activity of instance `origin` (its store's lease owner: unique per instance).
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                counts: Mutex::new(HashMap::new()),
                feed: broadcast::channel(FEED_DEPTH).0,
                closing: CancellationToken::new(),
                origin: origin.into(),
                told_until: AtomicI64::new(0),
                gathered: Mutex::new((Vec::new(), 0)),
            }),
        }
    }

    /// This instance's name.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Whether anyone watches the feed, here or on another instance (so a happening is worth
    /// describing).
    pub fn watched(&self) -> bool {
        self.inner.feed.receiver_count() > 0 || self.told()
    }

    /// Whether another instance's live tail wants this one's happenings now.
    fn told(&self) -> bool {
        // Never asked (the usual case): no clock read on the delivery path.
        let until = self.inner.told_until.load(Ordering::Relaxed);
        until != 0 && until > now_millis()
    }

    /// Instance `asker` has a live tail open: tell it what happens for a while.
    pub fn wanted_by(&self, asker: &str) {
        if asker != self.inner.origin {
            let until = now_millis() + TOLD_FOR.as_millis() as i64;
            self.inner.told_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Another instance told what happened there (`text` as [`Activity::tell_others`] sent
    /// it): this instance's watchers hear it. What this instance sent itself, or cannot
    /// read, is dropped.
    pub fn heard(&self, text: &str) {
        if self.inner.feed.receiver_count() == 0 {
            return;
        }
        match serde_json::from_str::<Told<'_>>(text) {
            Ok(told) if told.origin != self.inner.origin => {
                for h in told.happenings {
                    let _ = self.inner.feed.send(h);
                }
                if told.missed > 0 {
                    let _ = self
                        .inner
                        .feed
                        .send(Happening::Missed { count: told.missed });
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "a live tail's notice from another instance could not be read")
            }
        }
    }

    /// Watches the feed from now on.
    pub fn watch(&self) -> broadcast::Receiver<Happening> {
        self.inner.feed.subscribe()
    }

    /// Cancelled when Herald shuts down: watchers should stop then.
    pub fn closing(&self) -> CancellationToken {
        self.inner.closing.clone()
    }

    /// Tells watchers (if any), here and, when asked, on the other instances.
    pub fn tell(&self, happening: Happening) {
        if self.told() {
            let mut gathered = self
                .inner
                .gathered
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if gathered.0.len() < GATHER_MAX {
                gathered.0.push(happening.clone());
            } else {
                gathered.1 += 1;
            }
        }
        let _ = self.inner.feed.send(happening);
    }

    /// Passes what was gathered on to the other instances' live tails, in texts of at most
    /// [`TAIL_TEXT_MAX`] bytes.
    async fn tell_others(&self, store: &dyn Store) {
        let until = self.inner.told_until.load(Ordering::Relaxed);
        if until != 0 && until <= now_millis() {
            // Nobody asked for a while: the delivery path reads no clock until the next ask.
            let _ = self.inner.told_until.compare_exchange(
                until,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let (happenings, missed) = {
            let mut gathered = self
                .inner
                .gathered
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut gathered.0),
                std::mem::take(&mut gathered.1),
            )
        };
        if happenings.is_empty() && missed == 0 {
            return;
        }
        let texts = batches(&self.inner.origin, happenings, missed);
        let mut left: u64 = texts.iter().map(|(_, n)| n).sum();
        for (text, n) in texts {
            if let Err(e) = store.messages().tell_tails(&text).await {
                tracing::debug!(error = %e, "could not tell the other instances' live tails");
                // What was not sent is told as missed with the next text.
                let mut gathered = self
                    .inner
                    .gathered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                gathered.1 += left.max(1);
                return;
            }
            left -= n;
        }
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
            event_name: d.event.event.name.to_string(),
            solution: d.event.event.solution.clone(),
            endpoint_id: d.endpoint_id,
            attempt: r.attempts,
            state: Cow::Borrowed(r.next.label()),
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

    /// Asks the other instances to tell this one's live tails what happens there.
    pub async fn want(&self, store: &dyn Store) {
        if let Err(e) = store.messages().want_tail(&self.inner.origin).await {
            tracing::debug!(error = %e, "could not ask the other instances for their happenings");
        }
    }

    /// Adds the counts to the store every few seconds, and once more at shutdown; on a
    /// shared store, asks the others for their happenings while a live tail is open here,
    /// and tells them this one's while they ask.
    pub async fn run(self, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = store.messages().shared();
        let mut want = tokio::time::interval(WANT_EVERY);
        want.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tell = tokio::time::interval(TELL_EVERY);
        tell.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(store.as_ref()).await,
                _ = want.tick(), if shared => {
                    if self.inner.feed.receiver_count() > 0 {
                        self.want(store.as_ref()).await;
                    }
                }
                _ = tell.tick(), if shared => self.tell_others(store.as_ref()).await,
                _ = shutdown.cancelled() => {
                    self.inner.closing.cancel();
                    self.flush(store.as_ref()).await;
                    return;
                }
            }
        }
    }
}

/// `happenings` as texts of at most [`TAIL_TEXT_MAX`] bytes each, with how many each
/// carries; the first also says how many were `missed`. A happening that alone is larger
/// (an error of kilobytes) goes without its error, or is counted missed.
fn batches(origin: &str, happenings: Vec<Happening>, mut missed: u64) -> Vec<(String, u64)> {
    let told = |happenings, missed| Told {
        origin: Cow::Borrowed(origin),
        happenings,
        missed,
    };
    // The room a text leaves for its happenings, measured with the longest count.
    let envelope = serde_json::to_string(&told(Vec::new(), u64::MAX)).map_or(0, |t| t.len());
    let room = TAIL_TEXT_MAX.saturating_sub(envelope);
    let size_of = |h: &Happening| serde_json::to_string(h).map_or(usize::MAX, |t| t.len());
    let mut groups: Vec<Vec<Happening>> = Vec::new();
    let (mut group, mut size) = (Vec::new(), 0);
    for mut h in happenings {
        let mut len = size_of(&h);
        if len >= room {
            if let Happening::Attempted { error, .. } = &mut h {
                *error = error
                    .as_ref()
                    .map(|_| "(too long for the live tail)".to_owned());
            }
            len = size_of(&h);
            if len >= room {
                missed += 1;
                continue;
            }
        }
        // One more byte for the comma between two happenings.
        if size + len + 1 > room && !group.is_empty() {
            groups.push(std::mem::take(&mut group));
            size = 0;
        }
        size += len + 1;
        group.push(h);
    }
    if !group.is_empty() || (groups.is_empty() && missed > 0) {
        groups.push(group);
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, happenings)| {
            let n = happenings.len() as u64;
            let missed = if i == 0 { missed } else { 0 };
            let text = serde_json::to_string(&told(happenings, missed)).unwrap_or_default();
            (text, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempted(error: Option<String>) -> Happening {
        Happening::Attempted {
            at: OffsetDateTime::now_utc(),
            delivery_id: DeliveryId::new(),
            event_id: EventId::new(),
            event_name: "contoso_CustomerPurchase".into(),
            solution: "contoso".into(),
            endpoint_id: EndpointId::new(),
            attempt: 1,
            state: Cow::Borrowed("succeeded"),
            http_status: Some(200),
            duration_ms: Some(3),
            error,
        }
    }

    #[test]
    fn happenings_go_to_other_instances_in_texts_that_fit_and_read_back() {
        let many: Vec<Happening> = (0..200).map(|_| attempted(None)).collect();
        let long = attempted(Some("x".repeat(20_000)));
        let mut all = many.clone();
        all.push(long);
        let texts = batches("instance-a", all, 2);
        assert!(texts.len() > 1, "200 happenings need more than one text");
        let mut read = 0;
        for (i, (t, n)) in texts.iter().enumerate() {
            assert!(t.len() <= TAIL_TEXT_MAX, "{}", t.len());
            let told: Told<'_> = serde_json::from_str(t).expect("reads back");
            assert_eq!(told.origin, "instance-a");
            assert_eq!(told.happenings.len() as u64, *n);
            assert_eq!(told.missed, if i == 0 { 2 } else { 0 });
            read += told.happenings.len();
        }
        assert_eq!(read, 201, "the long one goes without its error");
        let last: Told<'_> = serde_json::from_str(&texts.last().unwrap().0).unwrap();
        assert!(matches!(
            last.happenings.last(),
            Some(Happening::Attempted { error: Some(e), .. }) if e == "(too long for the live tail)"
        ));
    }

    #[test]
    fn an_instance_tells_only_while_asked_and_ignores_its_own_notices() {
        let a = Activity::new("a");
        let _watcher = a.watch();
        a.tell(attempted(None));
        assert!(
            a.inner.gathered.lock().unwrap().0.is_empty(),
            "nobody asked"
        );
        a.wanted_by("a");
        assert!(!a.told(), "its own ask");
        a.wanted_by("b");
        assert!(a.told());
        a.tell(attempted(None));
        assert_eq!(a.inner.gathered.lock().unwrap().0.len(), 1);
        let mut feed = a.watch();
        let own = batches("a", vec![attempted(None)], 0);
        a.heard(&own[0].0);
        assert!(feed.try_recv().is_err(), "its own notice is ignored");
        let other = batches("b", vec![attempted(None)], 0);
        a.heard(&other[0].0);
        assert!(feed.try_recv().is_ok(), "another's is heard");
        assert!(feed.try_recv().is_err(), "nothing missed");
        // What another instance could not pass on is told as a count.
        let lost = batches("b", Vec::new(), 3);
        assert_eq!(lost.len(), 1);
        a.heard(&lost[0].0);
        assert!(matches!(
            feed.try_recv(),
            Ok(Happening::Missed { count: 3 })
        ));
        a.heard("not json");
    }

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
