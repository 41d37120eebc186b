//! One delivery's way through the dispatcher: lookup → the endpoint's gate (health, then
//! concurrency) → send → decide ([`decide`], a pure function) → the result to record. A
//! delivery the gate keeps back is not sent and spends no attempt.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::decide::{decide, Attempted};
use super::gate::{Admission, Gate};
use super::Inner;
use crate::destinations::{plugin, Outcome, SendError};
use crate::model::{
    Attempt, AttemptResult, Endpoint, EndpointId, Exchange, LeasedDelivery, NextState, Notice,
    RoutedResult, Subscription, OPERATIONAL_SOLUTION,
};
use crate::store::StoreError;
use opentelemetry::trace::SpanKind;

/// How far a delivery got.
enum Went {
    /// It was sent (or could not be: its endpoint or subscription is gone, or unreadable).
    Tried {
        attempted: Attempted,
        /// What went over the wire, when the destination was reached.
        exchange: Option<Exchange>,
        /// The endpoint's kind, when it got as far as the destination.
        kind: Option<&'static str>,
        /// It was its failing endpoint's probe.
        probe: bool,
    },
    /// The gate kept it back: nothing was sent.
    Kept(NextState),
}

/// What a result of `d` needs to write it as a row of its own, when `d` is kept in its
/// event's row.
pub(super) fn routed_result(d: &LeasedDelivery) -> Option<RoutedResult> {
    d.routed.map(|routed| RoutedResult {
        routed,
        event_id: d.event.event.id,
        subscription_id: d.subscription_id,
        endpoint_id: d.endpoint_id,
        created_at: d.created_at,
    })
}

impl Inner {
    /// Sends one delivery and decides its next state: lookup → gate → send → decide → record.
    pub(super) async fn deliver(&self, d: LeasedDelivery) -> AttemptResult {
        let attempt = d.attempts + 1;
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let (attempted, exchange, kind, probe) = match self.send(&d).await {
            Went::Tried {
                attempted,
                exchange,
                kind,
                probe,
            } => (attempted, exchange, kind, probe),
            Went::Kept(next) => {
                if let NextState::DeadLettered(reason) = &next {
                    self.dead_lettered(&d, d.attempts, reason).await;
                }
                metrics::counter!("herald_deliveries_kept_total", "state" => next.label())
                    .increment(1);
                return AttemptResult {
                    delivery_id: d.id,
                    attempts: d.attempts,
                    attempt: None,
                    next,
                    routed: routed_result(&d),
                };
            }
        };
        let elapsed = clock.elapsed();
        if let Some(kind) = kind {
            metrics::histogram!("herald_attempt_duration_seconds", "kind" => kind)
                .record(elapsed.as_secs_f64());
        }
        let success = matches!(attempted, Attempted::Sent(Outcome::Delivered { .. }));
        if let Attempted::Sent(Outcome::Retry {
            status: Some(429),
            retry_after,
            ..
        }) = &attempted
        {
            self.throttled(d.endpoint_id, *retry_after).await;
        }
        let reached = matches!(attempted, Attempted::Sent(_));
        let jitter = rand::rng().random::<f64>();
        let verdict = decide(
            attempted,
            attempt,
            d.created_at,
            OffsetDateTime::now_utc(),
            &self.config.retry,
            jitter,
        );
        // A success at an endpoint with no health record changes nothing: not even a lock.
        let noteworthy = !success || probe || self.registry.health().has_record(d.endpoint_id);
        if reached && noteworthy {
            self.observations
                .add(d.endpoint_id, success, verdict.error.as_deref(), probe);
        }
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
        if let NextState::DeadLettered(reason) = &verdict.next {
            self.dead_lettered(&d, attempt, reason).await;
        }
        metrics::counter!("herald_deliveries_total", "outcome" => verdict.next.label())
            .increment(1);
        AttemptResult {
            delivery_id: d.id,
            attempts: attempt,
            attempt: Some(Attempt {
                attempt,
                started_at,
                duration_ms: elapsed.as_millis() as u64,
                outcome: verdict.outcome,
                http_status: verdict.http_status,
                error: verdict.error,
                exchange,
            }),
            next: verdict.next,
            routed: routed_result(&d),
        }
    }

    /// Finds the endpoint and subscription, passes the gate and sends.
    async fn send(&self, d: &LeasedDelivery) -> Went {
        let tried = |attempted| Went::Tried {
            attempted,
            exchange: None,
            kind: None,
            probe: false,
        };
        let (endpoint, subscription) = match self.look_up(d).await {
            Ok((Some(e), Some(s))) => (e, s),
            Ok((None, _)) => return tried(Attempted::Orphaned("endpoint")),
            Ok((_, None)) => return tried(Attempted::Orphaned("subscription")),
            Err(e) => return tried(Attempted::LookupFailed(e)),
        };
        let probe = match self.admit(&endpoint, d).await {
            Admission::Send { probe } => probe,
            Admission::Keep(next) => return Went::Kept(next),
        };
        let mut message = self.config.origin.outbound(
            d.id,
            &subscription,
            &d.event,
            self.config.catalog.cataloged(&d.event.name),
        );
        // The attempt's span continues the trace of the request that sent the event; the
        // receiver's continues the attempt's.
        let kind = endpoint.settings.kind();
        let tracing = &self.config.tracing;
        let span = tracing.start(
            if tracing.enabled() {
                std::borrow::Cow::Owned(format!("deliver {}", endpoint.name))
            } else {
                std::borrow::Cow::Borrowed("deliver")
            },
            match kind {
                crate::model::EndpointKind::Webhook => SpanKind::Client,
                _ => SpanKind::Producer,
            },
            d.event.event.traceparent.as_deref(),
        );
        if span.recording() {
            span.set("herald.delivery.id", d.id.to_string());
            span.set("herald.event.id", d.event.event.id.to_string());
            span.set("herald.event.name", d.event.event.name.to_string());
            span.set("herald.endpoint", endpoint.name.clone());
            span.set("herald.endpoint.kind", kind.as_str());
            span.set("herald.attempt", i64::from(d.attempts + 1));
            span.set("herald.probe", probe);
        }
        message.traceparent = span.traceparent();
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
        let mut exchange = Exchange {
            kept_on_success: self.config.keep_succeeded_requests,
            ..Exchange::default()
        };
        let mut dropped = false;
        let outcome = match &subscription.transform {
            None => destination.send(&message, &mut exchange).await,
            Some(transform) => {
                let reshaping = match self.destinations.plugins() {
                    Some(runtime) => plugin::transform(&runtime, transform, &message, kind).await,
                    None => Err("plug-ins are not enabled on this instance: the subscription's transformation cannot run".into()),
                };
                match reshaping {
                    Ok(plugin::Reshaping::Send(reshaped)) => {
                        let reshaped = plugin::apply(&message, reshaped);
                        destination.send(&reshaped, &mut exchange).await
                    }
                    Ok(plugin::Reshaping::Drop) => {
                        dropped = true;
                        exchange.target = endpoint.name.clone();
                        exchange.response = Some(format!(
                            "dropped by the transformation {}",
                            transform.plugin
                        ));
                        Outcome::Delivered { status: None }
                    }
                    Err(e) => Outcome::Retry {
                        error: SendError::Plugin(e.into()),
                        status: None,
                        retry_after: None,
                    },
                }
            }
        };
        let mut keep = true;
        match &outcome {
            Outcome::Delivered { status } => {
                if let Some(s) = status {
                    span.set("http.response.status_code", i64::from(*s));
                }
                // What a success sent is rarely looked at, and storing it with every attempt
                // cost a fifth of the delivery rate (issue 13's note): unless asked, a success
                // keeps its status and time only. A dropped delivery keeps why.
                keep = self.config.keep_succeeded_requests || dropped;
            }
            Outcome::Retry { error, status, .. } | Outcome::Permanent { error, status } => {
                if let Some(s) = status {
                    span.set("http.response.status_code", i64::from(*s));
                }
                span.fail(crate::destinations::error_chain(error));
            }
            Outcome::Gone { status } => {
                if let Some(s) = status {
                    span.set("http.response.status_code", i64::from(*s));
                }
                span.fail("the receiver is gone (410)");
            }
        }
        span.end();
        Went::Tried {
            attempted: Attempted::Sent(outcome),
            exchange: keep.then_some(exchange),
            kind: Some(endpoint.settings.kind().as_str()),
            probe,
        }
    }

    async fn look_up(
        &self,
        d: &LeasedDelivery,
    ) -> Result<(Option<Endpoint>, Option<Subscription>), StoreError> {
        let version = self.registry.routing().version();
        let store = self.store.as_ref();
        let endpoint = self.lookups.endpoint(store, version, d.endpoint_id).await?;
        let subscription = self
            .lookups
            .subscription(store, version, d.subscription_id)
            .await?;
        Ok((endpoint, subscription))
    }

    /// Tells operators a delivery was dead-lettered — unless it carried one of Herald's own
    /// operational events, which would make a loop when the operator's endpoint fails.
    async fn dead_lettered(&self, d: &LeasedDelivery, attempts: u32, reason: &str) {
        let (Some(tx), false) = (
            &self.notices,
            d.event.event.solution == OPERATIONAL_SOLUTION,
        ) else {
            return;
        };
        let notice = Notice::DeadLettered {
            delivery_id: d.id,
            event_id: d.event.event.id,
            event_name: d.event.event.name.to_string(),
            subscription_id: d.subscription_id,
            endpoint_id: d.endpoint_id,
            attempts,
            reason: reason.to_owned(),
        };
        let _ = tx.send(notice).await;
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
