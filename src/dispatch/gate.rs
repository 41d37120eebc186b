//! The endpoint gate: whether a delivery may be sent now (the endpoint's health), and the
//! per-endpoint bookkeeping of the dispatcher: deliveries held (leased, not finished) and the
//! semaphore that bounds how many are sent at once.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::Inner;
use crate::model::{Endpoint, EndpointHealth, HealthState, LeasedDelivery, NextState};

/// One endpoint's gate.
pub(super) struct Gate {
    /// Deliveries leased and not finished.
    pub held: u32,
    /// Sends allowed at once.
    pub limit: u32,
    /// A lease round left the endpoint out as full since it last had room.
    pub skipped: bool,
    /// Deliveries to the endpoint may be waiting in the store: fresh ones are not handed off
    /// (they would overtake them) until a lease round finds fewer than it could take.
    pub backlog: bool,
    /// Bounds sends at once.
    pub sending: Arc<Semaphore>,
}

impl Gate {
    /// A gate allowing `limit` sends at once.
    pub fn new(limit: u32) -> Self {
        Self {
            held: 0,
            limit,
            skipped: false,
            backlog: false,
            sending: Arc::new(Semaphore::new(limit as usize)),
        }
    }
}

/// What the gate makes of a delivery before it is sent.
pub(super) enum Admission {
    /// Send it; `probe` when it is its failing endpoint's one probe.
    Send { probe: bool },
    /// Do not send it: record this next state instead (no attempt is spent).
    Keep(NextState),
}

impl Inner {
    /// The endpoint's health decides, then its receiver's grant (`validation.rs`), then its
    /// rate limit (`pace.rs`): a healthy endpoint takes the delivery; a failing one takes it
    /// only as its one probe (claimed in the store, so one at a time across the
    /// cluster) and otherwise it waits for the next probe; a disabled one holds it. A
    /// delivery kept back past its time to live is dead-lettered without an attempt.
    pub(super) async fn admit(&self, endpoint: &Endpoint, d: &LeasedDelivery) -> Admission {
        let admission = self.admit_by_health(endpoint, d).await;
        if let Admission::Send { .. } = admission {
            let allowed = match self.validated(endpoint, d).await {
                Ok(allowed) => allowed,
                Err(next) => return Admission::Keep(next),
            };
            if let Some(next) = self.pace(endpoint, allowed).await {
                return Admission::Keep(next);
            }
        }
        admission
    }

    async fn admit_by_health(&self, endpoint: &Endpoint, d: &LeasedDelivery) -> Admission {
        let board = self.registry.health();
        let state = board.state(endpoint.id);
        if state == HealthState::Healthy {
            return Admission::Send { probe: false };
        }
        let now = OffsetDateTime::now_utc();
        if d.created_at + self.config.retry.ttl <= now {
            return Admission::Keep(NextState::DeadLettered(format!(
                "expired: not delivered within {} of the event (its endpoint was {})",
                humantime::format_duration(self.config.retry.ttl),
                state.as_str()
            )));
        }
        if state == HealthState::Disabled {
            return Admission::Keep(NextState::Held);
        }
        let health = self.store.health();
        match health
            .claim_probe(endpoint.id, now, now + self.config.lease)
            .await
        {
            Ok(true) => return Admission::Send { probe: true },
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %endpoint.id, "claiming a probe failed")
            }
        }
        // Not the probe. The board may be behind the store (another instance saw the endpoint
        // recover): read the record before keeping the delivery back.
        let record = match self.registry.endpoint_health(endpoint.id).await {
            Ok(h) => h,
            Err(_) => board
                .get(endpoint.id)
                .unwrap_or_else(|| EndpointHealth::new(endpoint.id, now)),
        };
        match record.state {
            HealthState::Healthy => Admission::Send { probe: false },
            HealthState::Disabled => Admission::Keep(NextState::Held),
            // Due as of its creation, so it keeps its place in line: the lease query leaves
            // it alone until the endpoint's next probe, and after a recovery what waited goes
            // out in the order it was created.
            HealthState::Failing => {
                Admission::Keep(NextState::Wait(
                    d.created_at,
                    format!(
                        "waiting: the endpoint is failing ({} failed attempts; last error: {}); one probe at a time is sent",
                        record.consecutive_failures,
                        record.last_error.as_deref().unwrap_or("none")
                    ),
                ))
            }
        }
    }
}
