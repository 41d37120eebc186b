//! The health keeper: gathers attempt outcomes per endpoint and applies them to the shared
//! health records ([`health::observe`]), watches failing endpoints' failure budgets
//! ([`health::tick`]), holds what arrives for disabled endpoints, keeps the registry's health
//! board current, and passes on what operators are told ([`Notice`]). One task per
//! dispatcher; a success at a healthy endpoint with nothing counted costs no write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::health::{self, HealthPolicy, Observed};
use super::pace;
use super::Waker;
use crate::model::{EndpointHealth, EndpointId, HealthState, Notice};
use crate::registry::HealthBoard;
use crate::store::Store;

/// What the dispatcher's sending tasks hand the keeper.
#[derive(Default)]
pub(super) struct Observations {
    seen: Mutex<HashMap<EndpointId, Observed>>,
    arrived: Notify,
}

impl Observations {
    /// Notes how an attempt to `endpoint` ended.
    pub fn add(&self, endpoint: EndpointId, success: bool, error: Option<&str>, probe: bool) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint)
            .or_default()
            .add(success, OffsetDateTime::now_utc(), error, probe);
        self.arrived.notify_one();
    }

    fn take(&self) -> HashMap<EndpointId, Observed> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The keeper's parts.
pub(super) struct Keeper {
    pub store: Arc<dyn Store>,
    pub board: HealthBoard,
    pub policy: HealthPolicy,
    pub observations: Arc<Observations>,
    pub notices: Option<mpsc::Sender<Notice>>,
    pub waker: Waker,
    /// Successes at healthy endpoints that still count something (a failure's window is
    /// open): written once a round rather than once a batch, so a busy endpoint that failed
    /// once does not cost a transaction per batch for a minute.
    pub deferred: Mutex<HashMap<EndpointId, Observed>>,
    /// How often the records are read again and budgets looked at.
    pub round: Duration,
    /// A delivery's time to live: what waits at a failing endpoint longer is dead-lettered.
    pub ttl: Duration,
}

impl Keeper {
    /// Runs until `stop`, then applies what was observed last.
    pub async fn run(self, stop: CancellationToken) {
        let mut next_round = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.apply(self.observations.take()).await;
                    return;
                }
                _ = self.observations.arrived.notified() => {
                    self.apply(self.observations.take()).await;
                }
                _ = tokio::time::sleep_until(next_round) => {
                    self.round().await;
                    next_round = tokio::time::Instant::now() + self.round;
                }
            }
        }
    }

    /// Applies each endpoint's outcomes to its record.
    async fn apply(&self, seen: HashMap<EndpointId, Observed>) {
        for (id, seen) in seen {
            let known = self.board.get(id);
            if seen.failures == 0 && !seen.probe {
                match &known {
                    None => continue,
                    Some(h) if h.state == HealthState::Healthy && h.consecutive_failures == 0 => {
                        self.deferred
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(id)
                            .or_default()
                            .then(&seen);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            // Successes deferred earlier came first.
            let earlier = self
                .deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let seen = match earlier {
                Some(mut all) => {
                    all.then(&seen);
                    all
                }
                None => seen,
            };
            let policy = &self.policy;
            self.change(id, &|h| {
                let now = OffsetDateTime::now_utc();
                health::tick(health::observe(h, &seen, policy, now), policy, now)
            })
            .await;
        }
    }

    /// Reads every record again; moves failing endpoints along their budgets; holds what
    /// arrived for disabled ones since the last round.
    async fn round(&self) {
        self.apply_deferred().await;
        let records = match self.store.health().health_records().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading endpoint health failed; trying again next round");
                return;
            }
        };
        self.board.replace(records.clone());
        let now = OffsetDateTime::now_utc();
        match self.store.rates().slowed(pace::micros(now)).await {
            Ok(slowed) => self.board.replace_slowed(
                slowed
                    .into_iter()
                    .map(|(id, until)| (id, pace::from_micros(until)))
                    .collect(),
            ),
            Err(e) => tracing::warn!(error = %e, "reading slowed-down endpoints failed"),
        }
        match self.store.grants().grants().await {
            Ok(grants) => self.board.replace_grants(grants),
            Err(e) => tracing::warn!(error = %e, "reading webhook handshakes failed"),
        }
        for h in records {
            if h.state == HealthState::Failing {
                self.expire_waiting(h.endpoint_id, now).await;
            }
            match h.state {
                HealthState::Failing
                    if health::next_step(&h, &self.policy).is_some_and(|t| t <= now) =>
                {
                    let policy = &self.policy;
                    self.change(h.endpoint_id, &|h| {
                        health::tick(h, policy, OffsetDateTime::now_utc())
                    })
                    .await;
                }
                HealthState::Disabled => {
                    if let Err(e) = self
                        .store
                        .health()
                        .hold_deliveries(h.endpoint_id, now)
                        .await
                    {
                        tracing::warn!(error = %e, endpoint = %h.endpoint_id, "holding deliveries of a disabled endpoint failed");
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes the successes deferred since the last round.
    async fn apply_deferred(&self) {
        let deferred =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, seen) in deferred {
            let policy = &self.policy;
            self.change(id, &|h| {
                health::observe(h, &seen, policy, OffsetDateTime::now_utc())
            })
            .await;
        }
    }

    /// Dead-letters what has waited at failing endpoint `id` past its time to live (waiting
    /// is not sending: the lease query does not look at it until the next probe).
    async fn expire_waiting(&self, id: EndpointId, now: OffsetDateTime) {
        let reason = format!(
            "expired: not delivered within {} of the event (its endpoint was failing)",
            humantime::format_duration(self.ttl)
        );
        match self
            .store
            .health()
            .expire_waiting(id, now - self.ttl, now, &reason)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("herald_deliveries_total", "outcome" => "dead_lettered")
                    .increment(n);
                tracing::warn!(endpoint = %id, deliveries = n, "deliveries expired while their endpoint was failing");
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %id, "expiring waiting deliveries failed")
            }
        }
    }

    /// Changes one record in the store, keeps the board current and tells what changed.
    async fn change(
        &self,
        id: EndpointId,
        change: &(dyn Fn(EndpointHealth) -> EndpointHealth + Send + Sync),
    ) {
        let now = OffsetDateTime::now_utc();
        let (before, after) = match self.store.health().change_health(id, now, change).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %id, "recording endpoint health failed");
                return;
            }
        };
        self.board.set(after.clone());
        if before.state != after.state {
            metrics::counter!("herald_endpoint_health_changes_total", "to" => after.state.as_str())
                .increment(1);
            match after.state {
                HealthState::Failing => {
                    tracing::warn!(endpoint = %id, failures = after.consecutive_failures, last_error = after.last_error.as_deref().unwrap_or(""), "endpoint is failing: its deliveries wait while one probe at a time is tried")
                }
                HealthState::Disabled => {
                    tracing::warn!(endpoint = %id, reason = after.disabled_reason.as_deref().unwrap_or(""), "endpoint disabled: its deliveries are held")
                }
                // What waited is due again.
                HealthState::Healthy => {
                    tracing::info!(endpoint = %id, "endpoint recovered");
                    self.waker.wake();
                }
            }
        }
        if let Some(tx) = &self.notices {
            for notice in health::notices(&before, &after) {
                // Only when Herald is stopping is nobody reading.
                let _ = tx.send(Notice::Health(notice)).await;
            }
        }
    }
}
