//! The dispatcher: takes fresh deliveries straight from ingestion ([`HandOff`]) and leases
//! the rest (retries, replays, expired leases, what found no place), sends them through their
//! endpoint's destination with bounded concurrency per endpoint, and records every attempt in
//! batches. Each delivery goes lookup → send → decide ([`decide`], a pure function) → record.

pub mod decide;
mod gate;
mod hand_off;
pub mod health;
mod keeper;
mod ledger;
mod pace;
mod recorder;
pub mod retry;
mod send;
mod validation;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::destinations::{Destinations, Origin};
use crate::model::{EndpointId, LeasedDelivery, Notice};
use crate::registry::Registry;
use crate::store::{LeaseRequest, Store, StoreError, Takeover};
use gate::Gate;
use hand_off::Place;
pub use hand_off::{HandOff, Reservation, Ticket};
pub use health::HealthPolicy;
pub use retry::{Decision, RetryPolicy};
pub use validation::CALLBACK_PATH;

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Who this dispatcher is, in leases.
    pub owner: String,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// How long a lease lasts.
    pub lease: Duration,
    /// Deliveries in flight at once.
    pub max_in_flight: u32,
    /// Deliveries in flight at once per endpoint, unless the endpoint sets its own.
    pub endpoint_concurrency: u32,
    /// Look for due work at least this often.
    pub poll_interval: Duration,
    /// Schema links and the organization name of messages.
    pub origin: Origin,
    /// The catalog (parameter types and bindings for message formats).
    pub catalog: Catalog,
    /// When endpoints are failing, probed and disabled.
    pub health: HealthPolicy,
    /// Where operational notices go (to become events of the `herald` solution).
    pub notices: Option<mpsc::Sender<Notice>>,
    /// Counts attempts and tells the console's live tail.
    pub activity: crate::activity::Activity,
    /// Spans of attempts (off unless traces are configured).
    pub tracing: crate::telemetry::Tracing,
    /// Whether a successful attempt keeps the request it sent (failed ones always do).
    pub keep_succeeded_requests: bool,
}

/// Handle to wake the dispatcher when new work is stored.
#[derive(Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    /// Wakes the dispatcher.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The dispatcher.
pub struct Dispatcher {
    inner: Arc<Inner>,
    record_rx: mpsc::Receiver<recorder::ToRecord>,
}

/// What the dispatcher's loop, its hand-off and its sending tasks share.
struct Inner {
    store: Arc<dyn Store>,
    destinations: Arc<Destinations>,
    registry: Registry,
    config: DispatchConfig,
    waker: Waker,
    gates: Mutex<HashMap<EndpointId, Gate>>,
    in_flight: Arc<Semaphore>,
    lookups: crate::registry::Lookups,
    record_tx: mpsc::Sender<recorder::ToRecord>,
    /// Attempt outcomes for the health keeper.
    observations: Arc<keeper::Observations>,
    /// Where operational notices go.
    notices: Option<mpsc::Sender<Notice>>,
    /// Capacity was freed that a lease round lacked (see [`Inner::release`]).
    freed: Notify,
    /// The last lease round was limited by `max_in_flight`.
    starved: AtomicBool,
    /// A delivery found the dispatcher full and was stored pending: until a lease round
    /// finds nothing more due, fresh deliveries are stored pending too (see [`HandOff`]).
    backlog: AtomicBool,
    /// Whether deliveries are handed off: from when the leases of a previous run are given
    /// back (a delivery handed off before would be released while it is sent) until shutdown.
    open: AtomicBool,
    /// The hand-off's unsettled events and mark.
    ledger: Arc<ledger::Ledger>,
    /// When lease rounds last looked for hand-offs whose leases ended: at most once per poll
    /// interval, not once per round (a hand-off lease lasts minutes).
    looked_for_expired: Mutex<Option<tokio::time::Instant>>,
}

/// What one lease round did.
enum Leased {
    /// Took as much as capacity allowed: more may be due at once.
    Full,
    /// Took less than capacity allowed: nothing more is due now but at these endpoints, which
    /// were left out as full (their completions wake the loop).
    Partly(Vec<EndpointId>),
    /// Did not look: too little capacity is free.
    Busy,
}

impl Dispatcher {
    /// A dispatcher; `waker` is the handle ingestion wakes it with.
    pub fn new(
        store: Arc<dyn Store>,
        destinations: Arc<Destinations>,
        registry: Registry,
        config: DispatchConfig,
        waker: Waker,
    ) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight as usize));
        let (record_tx, record_rx) = mpsc::channel(1024);
        let notices = config.notices.clone();
        Self {
            inner: Arc::new(Inner {
                observations: Default::default(),
                notices,
                store,
                destinations,
                registry,
                config,
                waker,
                gates: Default::default(),
                in_flight,
                lookups: crate::registry::Lookups::default(),
                record_tx,
                freed: Notify::new(),
                starved: AtomicBool::new(false),
                backlog: AtomicBool::new(false),
                open: AtomicBool::new(false),
                ledger: Default::default(),
                looked_for_expired: Mutex::new(None),
            }),
            record_rx,
        }
    }

    /// The handle ingestion gives fresh deliveries to.
    pub fn hand_off(&self) -> HandOff {
        HandOff::new(self.inner.clone())
    }

    /// Runs until `shutdown`; deliveries in flight then finish or are re-leased later.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = self.inner;
        match this
            .store
            .records()
            .release_leases(&this.config.owner)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "resuming deliveries that were in flight when Herald stopped"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not release the leases of a previous run; they resume when they expire")
            }
        }
        // The hand-offs of a previous run of this owner (an embedded store's) are this run's
        // work now; another instance's are taken over when their leases end (`lease_and_start`).
        this.take_over(Takeover::Owner(&this.config.owner)).await;
        let until = OffsetDateTime::now_utc() + this.config.lease;
        match this
            .store
            .records()
            .open_handoff(&this.config.owner, until)
            .await
        {
            Ok(id) => this.ledger.open(id),
            // The recorder opens one once the database answers; until then fresh deliveries
            // are stored in flight, as rows.
            Err(e) => tracing::warn!(error = %e, "could not open a hand-off yet"),
        }
        this.open.store(true, Ordering::Release);
        let stop_keeping = CancellationToken::new();
        let keeper = tokio::spawn(
            keeper::Keeper {
                store: this.store.clone(),
                board: this.registry.health().clone(),
                policy: this.config.health.clone(),
                observations: this.observations.clone(),
                notices: this.notices.clone(),
                waker: this.waker.clone(),
                deferred: Default::default(),
                round: this.config.poll_interval,
                ttl: this.config.retry.ttl,
            }
            .run(stop_keeping.clone()),
        );
        let stop_recording = CancellationToken::new();
        let recorder = tokio::spawn(
            recorder::Recorder {
                store: this.store.clone(),
                owner: this.config.owner.clone(),
                ledger: this.ledger.clone(),
                activity: this.config.activity.clone(),
                lease: this.config.lease,
            }
            .run(self.record_rx, stop_recording.clone()),
        );
        loop {
            let wait = match this.lease_and_start().await {
                Ok(Leased::Full) => Duration::ZERO,
                Ok(Leased::Partly(skipped)) => this.idle_wait(&skipped).await,
                // Completions wake the loop; the poll interval bounds the wait.
                Ok(Leased::Busy) => this.config.poll_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "leasing deliveries failed; trying again");
                    this.config.poll_interval
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = this.waker.0.notified() => {}
                _ = this.freed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        this.open.store(false, Ordering::Release);
        // Let the sends in flight finish for a while, then record what they did. What is
        // still unfinished after that is sent again after a restart (its lease is released)
        // or when its lease expires.
        let grace = this.config.lease.min(Duration::from_secs(10));
        let _ = tokio::time::timeout(
            grace,
            this.in_flight.acquire_many(this.config.max_in_flight),
        )
        .await;
        stop_recording.cancel();
        stop_keeping.cancel();
        let _ = tokio::time::timeout(grace, recorder).await;
        let _ = tokio::time::timeout(grace, keeper).await;
        // What is still unsettled (sends that did not finish in time) becomes pending rows now,
        // rather than when the hand-off's lease ends.
        if let Some(handoff) = this.ledger.handoff() {
            this.take_over(Takeover::One(handoff)).await;
        }
    }
}

impl Inner {
    /// Takes over the hand-offs `which` names: their unsettled deliveries become pending rows.
    async fn take_over(&self, which: Takeover<'_>) {
        match self
            .store
            .records()
            .take_over(which, OffsetDateTime::now_utc())
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("herald_deliveries_taken_over_total").increment(n);
                tracing::info!(
                    deliveries = n,
                    "took over deliveries an instance handed off and did not settle"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "taking over hand-offs failed; trying again later")
            }
        }
    }

    /// Whether a poll interval has passed since lease rounds last looked for hand-offs whose
    /// leases ended (and, if so, marks that they look now).
    fn time_to_look_for_expired(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self
            .looked_for_expired
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| now >= t + self.config.poll_interval);
        if due {
            *last = Some(now);
        }
        due
    }

    /// How long to sleep when nothing more was due: until the next due delivery of an
    /// endpoint not in `skipped`, at most the poll interval. (A skipped endpoint's work is
    /// due already; its completions wake the loop, so it must not make the loop spin.)
    async fn idle_wait(&self, skipped: &[EndpointId]) -> Duration {
        let next = self.store.records().next_due(skipped).await.ok().flatten();
        let until_next = next.map(|t| {
            (t - OffsetDateTime::now_utc())
                .try_into()
                .unwrap_or(Duration::ZERO)
        });
        until_next
            .unwrap_or(self.config.poll_interval)
            .clamp(Duration::from_millis(5), self.config.poll_interval)
    }

    /// Leases what capacity allows and starts sending.
    async fn lease_and_start(self: &Arc<Self>) -> Result<Leased, StoreError> {
        let capacity = self.in_flight.available_permits() as u32;
        // While deliveries are in flight, lease again only once an eighth of the capacity is
        // free: one lease query per batch of completions rather than one per completion, which
        // matters when several instances share one database.
        let low_water = (self.config.max_in_flight / 8).max(1);
        if capacity == 0 || (capacity < low_water && capacity < self.config.max_in_flight) {
            self.starved.store(true, Ordering::Release);
            // A completion between the count and the mark did not see the mark: look again.
            if self.in_flight.available_permits() as u32 >= low_water {
                return Ok(Leased::Full);
            }
            return Ok(Leased::Busy);
        }
        // An endpoint holding as many deliveries as it may send at once gets no more, so a
        // slow or dead endpoint never takes the capacity the others need; it is looked at
        // again once half of its places are free.
        let skip: Vec<EndpointId> = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates
                .iter_mut()
                .filter(|(_, g)| g.held >= g.limit)
                .map(|(id, g)| {
                    g.skipped = true;
                    *id
                })
                .collect()
        };
        let now = OffsetDateTime::now_utc();
        if self.time_to_look_for_expired() {
            self.take_over(Takeover::Expired(now)).await;
        }
        let leased = self
            .store
            .lease(LeaseRequest {
                owner: &self.config.owner,
                now,
                until: now + self.config.lease,
                limit: capacity,
                per_endpoint: self.config.endpoint_concurrency,
                skip_endpoints: &skip,
            })
            .await?;
        let full = leased.len() as u32 == capacity;
        self.mark_backlogs(&leased, &skip, full);
        let outcome = if full {
            self.starved.store(true, Ordering::Release);
            Leased::Full
        } else {
            Leased::Partly(skip)
        };
        for delivery in leased {
            // Hand-offs may have taken permits meanwhile; the lease holds the delivery either
            // way, so it waits for a permit rather than being dropped.
            let permit = match self.in_flight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => self
                    .in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the in-flight semaphore is never closed"),
            };
            self.gates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(delivery.endpoint_id)
                .or_insert_with(|| Gate::new(self.config.endpoint_concurrency))
                .held += 1;
            let place = Place {
                inner: self.clone(),
                endpoint: delivery.endpoint_id,
                permit: Some(permit),
            };
            self.clone().start(delivery, place);
        }
        Ok(outcome)
    }

    /// After a lease round: which endpoints may still have deliveries waiting in the store.
    /// One that got `per_endpoint` deliveries, or was left out as full, may; one that got
    /// fewer has none due now. When the round took less than its capacity, nothing due is
    /// left but at those endpoints, so the dispatcher-wide mark is cleared.
    fn mark_backlogs(&self, leased: &[LeasedDelivery], skipped: &[EndpointId], full: bool) {
        let mut taken: HashMap<EndpointId, u32> = HashMap::new();
        for d in leased {
            *taken.entry(d.endpoint_id).or_default() += 1;
        }
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        for (id, gate) in gates.iter_mut() {
            if !skipped.contains(id) {
                gate.backlog =
                    taken.get(id).copied().unwrap_or(0) >= self.config.endpoint_concurrency;
            }
        }
        if !full {
            self.backlog.store(false, Ordering::Release);
        }
    }

    /// Sends `delivery` in a task of its own and records the result; its `place` is given
    /// back when the task ends.
    fn start(self: Arc<Self>, delivery: LeasedDelivery, place: Place) {
        tokio::spawn(async move {
            let _place = place;
            // A send that panics still ends in a result (to retry): a delivery kept in its
            // event's row that never settled would hold the hand-off's mark back for good.
            let sent = std::panic::AssertUnwindSafe(self.deliver(delivery.clone()));
            let result = match futures::FutureExt::catch_unwind(sent).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(delivery = %delivery.id, "sending a delivery panicked; it is retried");
                    self.panicked(&delivery)
                }
            };
            let activity = &self.config.activity;
            activity.count(&delivery, &result);
            // Watchers hear of it once it is stored, so what they read back agrees.
            let told = activity.describe(&delivery, &result);
            let _ = self.record_tx.send((result, told)).await;
        });
    }

    /// The result of a send that panicked: no attempt recorded, due again after the first
    /// retry delay.
    fn panicked(&self, d: &LeasedDelivery) -> crate::model::AttemptResult {
        let first =
            (self.config.retry.schedule.first().copied()).unwrap_or(Duration::from_secs(10));
        let at = OffsetDateTime::now_utc() + first;
        crate::model::AttemptResult {
            delivery_id: d.id,
            attempts: d.attempts,
            attempt: None,
            next: crate::model::NextState::Wait(at, "sending panicked; retrying".into()),
            routed: send::routed_result(d),
        }
    }

    /// Gives back a place at `endpoint`'s gate. Wakes the loop only when it lacked what is now
    /// free: the endpoint was skipped as full and half of its places are free again, or a
    /// round was limited by `max_in_flight` and a lease round's worth is free. A completion
    /// of a delivery that was handed off wakes nothing: no lease query per delivery.
    fn release(&self, endpoint: EndpointId) {
        let endpoint_freed = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates.get_mut(&endpoint).is_some_and(|gate| {
                gate.held = gate.held.saturating_sub(1);
                let freed = gate.skipped && gate.held <= gate.limit / 2;
                if freed {
                    gate.skipped = false;
                }
                freed
            })
        };
        let low_water = (self.config.max_in_flight / 8).max(1) as usize;
        let capacity_freed = self.starved.load(Ordering::Acquire)
            && self.in_flight.available_permits() >= low_water
            && self.starved.swap(false, Ordering::AcqRel);
        if endpoint_freed || capacity_freed {
            self.freed.notify_one();
        }
    }
}
