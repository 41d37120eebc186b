//! Operational notices become events: each [`Notice`] the dispatcher raises is admitted and
//! stored as an event of Herald's built-in `herald` solution, sent by Herald itself, and
//! delivered to whoever subscribed to it like any other event.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{Ingestor, Submission};
use crate::auth::Principal;
use crate::model::{EndpointId, HealthNotice, Notice};
use crate::registry::Registry;

/// Turns the notices arriving on `rx` into events until every sender is gone.
pub async fn announce(ingestor: Arc<Ingestor>, registry: Registry, mut rx: mpsc::Receiver<Notice>) {
    let herald = Principal::herald();
    while let Some(notice) = rx.recv().await {
        let (name, params) = event_of(&notice, &registry).await;
        let submission = Submission {
            name: name.to_owned(),
            params: Value::Object(params),
            idempotency_key: None,
            correlation_id: None,
            traceparent: None,
            depth: 1,
            images: None,
        };
        match ingestor
            .submit(&herald, submission, &crate::telemetry::Tracing::none())
            .await
        {
            Ok(_) => tracing::info!(event = name, "operational event raised"),
            Err(e) => {
                tracing::error!(error = %e, event = name, "could not raise an operational event")
            }
        }
    }
}

/// The event a notice is: its name and parameters.
async fn event_of(notice: &Notice, registry: &Registry) -> (&'static str, Map<String, Value>) {
    let time = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let mut params = match notice {
        Notice::Health(HealthNotice::Failing {
            endpoint_id,
            percent,
            since,
            failures,
            last_error,
        }) => (
            "herald_EndpointFailing",
            endpoint_params(*endpoint_id, registry).await,
            json!({
                "BudgetPercent": percent,
                "FailingSince": time(Some(*since)),
                "ConsecutiveFailures": failures,
                "LastError": last_error,
            }),
        ),
        Notice::Health(HealthNotice::Disabled {
            endpoint_id,
            reason,
            since,
        }) => (
            "herald_EndpointDisabled",
            endpoint_params(*endpoint_id, registry).await,
            json!({ "Reason": reason, "FailingSince": time(*since) }),
        ),
        Notice::Health(HealthNotice::Recovered {
            endpoint_id,
            since,
            failures,
        }) => (
            "herald_EndpointRecovered",
            endpoint_params(*endpoint_id, registry).await,
            json!({ "FailingSince": time(*since), "Failures": failures }),
        ),
        Notice::DeadLettered {
            delivery_id,
            event_id,
            event_name,
            subscription_id,
            endpoint_id,
            attempts,
            reason,
        } => (
            "herald_DeliveryDeadLettered",
            endpoint_params(*endpoint_id, registry).await,
            json!({
                "DeliveryId": delivery_id.to_string(),
                "EventId": event_id.to_string(),
                "EventName": event_name,
                "SubscriptionId": subscription_id.to_string(),
                "Attempts": attempts,
                "Reason": reason,
            }),
        ),
    };
    if let Value::Object(more) = params.2.take() {
        // Optional parameters without a value are left out rather than sent as null.
        params
            .1
            .extend(more.into_iter().filter(|(_, v)| !v.is_null()));
    }
    (params.0, params.1)
}

/// `EndpointId` and `EndpointName` of an endpoint (its id as name when it is gone).
async fn endpoint_params(id: EndpointId, registry: &Registry) -> Map<String, Value> {
    let name = match registry.endpoint(&crate::model::Scope::All, id).await {
        Ok(e) => e.name,
        Err(_) => id.to_string(),
    };
    let mut m = Map::new();
    m.insert("EndpointId".into(), id.to_string().into());
    m.insert("EndpointName".into(), name.into());
    m
}
