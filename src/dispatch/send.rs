//! One delivery's way through the dispatcher: lookup → send → decide ([`decide`], a pure
//! function) → the result to record.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::decide::{decide, Attempted};
use super::gate::Gate;
use super::Inner;
use crate::model::{Attempt, AttemptResult, EndpointId, LeasedDelivery};
use crate::store::StoreError;

impl Inner {
    /// Sends one delivery and decides its next state: lookup → send → decide → record.
    pub(super) async fn deliver(&self, d: LeasedDelivery) -> AttemptResult {
        let attempt = d.attempts + 1;
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let (attempted, kind) = self.send(&d).await;
        let elapsed = clock.elapsed();
        if let Some(kind) = kind {
            metrics::histogram!("herald_attempt_duration_seconds", "kind" => kind)
                .record(elapsed.as_secs_f64());
        }
        let jitter = rand::rng().random::<f64>();
        let verdict = decide(
            attempted,
            attempt,
            d.created_at,
            OffsetDateTime::now_utc(),
            &self.config.retry,
            jitter,
        );
        if let Some(reason) = &verdict.disable_subscription {
            tracing::warn!(subscription = %d.subscription_id, "receiver answered 410 Gone: disabling the subscription");
            if let Err(e) = self
                .registry
                .disable_subscription(d.subscription_id, reason)
                .await
            {
                tracing::error!(error = %e, subscription = %d.subscription_id, "could not disable the subscription");
            }
        }
        metrics::counter!("herald_deliveries_total", "outcome" => verdict.next.label())
            .increment(1);
        AttemptResult {
            delivery_id: d.id,
            attempt: Attempt {
                attempt,
                started_at,
                duration_ms: elapsed.as_millis() as u64,
                outcome: verdict.outcome,
                http_status: verdict.http_status,
                error: verdict.error,
            },
            next: verdict.next,
        }
    }

    /// Finds the endpoint and subscription and sends; the endpoint kind, when it got as far.
    async fn send(&self, d: &LeasedDelivery) -> (Attempted, Option<&'static str>) {
        let version = self.registry.routing().version();
        let store = self.store.as_ref();
        let found = async {
            let endpoint = self.lookups.endpoint(store, version, d.endpoint_id).await?;
            let subscription = self
                .lookups
                .subscription(store, version, d.subscription_id)
                .await?;
            Ok::<_, StoreError>((endpoint, subscription))
        };
        let (endpoint, subscription) = match found.await {
            Ok((Some(e), Some(s))) => (e, s),
            Ok((None, _)) => return (Attempted::Orphaned("endpoint"), None),
            Ok((_, None)) => return (Attempted::Orphaned("subscription"), None),
            Err(e) => return (Attempted::LookupFailed(e), None),
        };
        let message = self.config.origin.outbound(
            d.id,
            &subscription,
            &d.event,
            self.config.catalog.cataloged(&d.event.name),
        );
        let destination = self.destinations.get(&endpoint);
        let limit = endpoint
            .max_concurrency
            .unwrap_or(self.config.endpoint_concurrency)
            .max(1);
        let sending = self.gate(endpoint.id, limit);
        let _permit = sending
            .acquire_owned()
            .await
            .expect("gate semaphores are never closed");
        let outcome = destination.send(&message).await;
        (
            Attempted::Sent(outcome),
            Some(endpoint.settings.kind().as_str()),
        )
    }

    /// The semaphore bounding sends to one endpoint, resized when its limit changed.
    fn gate(&self, id: EndpointId, limit: u32) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let gate = gates.entry(id).or_insert_with(|| Gate::new(limit));
        if gate.limit != limit {
            gate.limit = limit;
            gate.sending = Arc::new(Semaphore::new(limit as usize));
        }
        gate.sending.clone()
    }
}
