//! Pacing at the endpoint gate: a send to an endpoint with a rate limit (its own, or the
//! one a `429` imposed on an endpoint without) first reserves its time in the store, shared
//! by every instance, and waits for it; a delivery whose time is further off goes back to the
//! store, due then, without spending an attempt. A `429` pauses the endpoint until its
//! `Retry-After` and lowers its rate for a while.

use std::time::Duration;

use time::OffsetDateTime;

use super::Inner;
use crate::model::{Endpoint, EndpointId, NextState, RateLimit};
use crate::store::rates::{Reserve, Slot};

/// Unix microseconds of `t`.
pub(super) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(super) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How late after its reserved time a send may still go.
const LATE_AFTER: Duration = Duration::from_millis(10);

impl Inner {
    /// The rate `endpoint` is held to now, if any: its own, the one its receiver allowed in
    /// the CloudEvents handshake (`allowed` requests per minute), whichever is lower, or the
    /// one a `429` imposed.
    fn rate_of(&self, endpoint: &Endpoint, allowed: Option<u32>) -> Option<RateLimit> {
        let allowed = allowed.map(|n| RateLimit {
            per_second: f64::from(n.max(1)) / 60.0,
            burst: 1,
        });
        let own = match (endpoint.rate_limit, allowed) {
            (Some(a), Some(b)) if b.per_second < a.per_second => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        own.or_else(|| {
            self.registry
                .health()
                .slowed(endpoint.id)
                .then_some(RateLimit {
                    per_second: self.config.health.rate_after_429,
                    burst: 1,
                })
        })
    }

    /// Waits for the endpoint's next send time; `Some(next state)` when the delivery should
    /// rather go back to the store (its time is too far off).
    pub(super) async fn pace(
        &self,
        endpoint: &Endpoint,
        allowed: Option<u32>,
    ) -> Option<NextState> {
        let limit = self.rate_of(endpoint, allowed)?;
        // Waiting holds a place at the gate and the lease: not for long.
        let max_wait = (self.config.lease / 4).min(Duration::from_secs(5));
        // A send that wakes this late after its time gives the time up and takes another:
        // sent late, it would go together with the sends reserved after it, and the
        // receiver would see a burst the limit does not allow.
        let lateness = LATE_AFTER.as_micros() as i64 + limit.tolerance_us();
        let mut now = OffsetDateTime::now_utc();
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            let reserve = Reserve {
                now: micros(now),
                interval: limit.interval_us(),
                tolerance: limit.tolerance_us(),
                max_wait: max_wait.as_micros() as i64,
            };
            match self.store.rates().reserve(endpoint.id, reserve).await {
                Ok(Slot::At(start)) => {
                    let wait = start - micros(OffsetDateTime::now_utc());
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                    }
                    now = OffsetDateTime::now_utc();
                    if micros(now) - start <= lateness {
                        return None;
                    }
                    metrics::counter!("herald_rate_slots_missed_total").increment(1);
                    if tries == 3 {
                        break Ok(Slot::After(micros(now) + limit.interval_us()));
                    }
                }
                other => break other,
            }
        };
        match outcome {
            Ok(Slot::At(_)) => None,
            Ok(Slot::After(at)) => Some(NextState::Wait(
                from_micros(at),
                format!(
                    "waiting: the endpoint's rate limit ({} per second) has no earlier time free",
                    limit.per_second
                ),
            )),
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %endpoint.id, "reserving a send time failed; the delivery waits");
                Some(NextState::Wait(
                    now + self.config.poll_interval,
                    format!("waiting: reserving a send time failed: {e}"),
                ))
            }
        }
    }

    /// The receiver answered `429`: no send to it before `retry_after` (1 s when it gave
    /// none), from any instance, and a lower rate for `slow_for`.
    pub(super) async fn throttled(&self, endpoint: EndpointId, retry_after: Option<Duration>) {
        let now = OffsetDateTime::now_utc();
        let pause_until = now + retry_after.unwrap_or(Duration::from_secs(1));
        let slowed_until = pause_until + self.config.health.slow_for;
        self.registry.health().mark_slowed(endpoint, slowed_until);
        metrics::counter!("herald_endpoint_throttled_total").increment(1);
        if let Err(e) = self
            .store
            .rates()
            .slow_down(
                endpoint,
                micros(now),
                micros(pause_until),
                micros(slowed_until),
            )
            .await
        {
            tracing::warn!(error = %e, %endpoint, "recording a 429 failed");
        }
    }
}
