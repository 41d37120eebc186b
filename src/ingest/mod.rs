//! Ingestion, without HTTP: a submitted event is checked against the catalog and the
//! caller's rights, matched to subscriptions, passed through its synchronous steps, and stored
//! with its deliveries in one durable transaction; the deliveries then go to the dispatcher. The routes
//! that call it are in `api/events.rs` and `api/dataverse.rs`.

mod fingerprint;
pub mod steps;

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::catalog::{validate, Catalog, ParamProblem};
use crate::dispatch::HandOff;
use crate::model::{
    DeliveryId, Event, EventId, IngestOutcome, LeasedDelivery, Mode, NewDelivery, NewEvent,
    OutgoingEvent, Subscription,
};
use crate::registry::Routing;
use crate::store::{Store, StoreError};
use fingerprint::fingerprint;

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No cataloged event of that name.
    #[error("no cataloged event called \"{0}\"")]
    UnknownEvent(String),
    /// A custom process action that is deactivated.
    #[error("\"{0}\" is a custom process action that is deactivated; activate it to invoke it")]
    Disabled(String),
    /// The key may not send events of that solution.
    #[error("the API key \"{key}\" may not send events of solution \"{solution}\"")]
    Forbidden {
        /// The key's name.
        key: String,
        /// The event's solution.
        solution: String,
    },
    /// The parameters are not a JSON object.
    #[error("the request body must be a JSON object of the event's parameters")]
    NotAnObject,
    /// Parameters are wrong.
    #[error("{} parameter(s) of {event} are invalid", problems.len())]
    Invalid {
        /// The event.
        event: String,
        /// Each problem.
        problems: Vec<ParamProblem>,
    },
    /// A synchronous step refused the event: nothing was stored.
    #[error("{message}")]
    Vetoed {
        /// The step's subscription name.
        step: String,
        /// The status it answered.
        status: u16,
        /// Its message, passed on to the caller.
        message: String,
    },
    /// A synchronous step could not be reached: nothing was stored.
    #[error(
        "the synchronous step \"{step}\" could not be called: {}",
        crate::destinations::error_chain(cause)
    )]
    StepUnreachable {
        /// The step's subscription name.
        step: String,
        /// Why.
        cause: crate::destinations::webhook::WebhookError,
    },
    /// A synchronous step cannot be called as registered: nothing was stored.
    #[error("the synchronous step \"{step}\" could not be called: {message}")]
    StepFailed {
        /// The step's subscription name.
        step: String,
        /// Why.
        message: String,
    },
    /// The idempotency key is not usable.
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    BadIdempotencyKey,
    /// The store failed (nothing was stored).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One event as a caller sent it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The event's unique name.
    pub name: String,
    /// Its parameters (should be a JSON object).
    pub params: Value,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The caller's correlation id.
    pub correlation_id: Option<String>,
}

/// An event checked and routed, not yet stored.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What to store.
    pub event: NewEvent,
    /// Synchronous steps to run first.
    pub steps: Vec<Subscription>,
}

/// Validates, routes and stores events.
pub struct Ingestor {
    catalog: Catalog,
    routing: Routing,
    store: Arc<dyn Store>,
    hand_off: HandOff,
    steps: steps::SyncSteps,
}

impl Ingestor {
    /// An ingestor over these parts; fresh deliveries go to the dispatcher's `hand_off`.
    pub fn new(
        catalog: Catalog,
        routing: Routing,
        store: Arc<dyn Store>,
        hand_off: HandOff,
        steps: steps::SyncSteps,
    ) -> Self {
        Self {
            catalog,
            routing,
            store,
            hand_off,
            steps,
        }
    }

    /// Checks, routes, and runs the synchronous steps of one submission: what to store.
    pub async fn admit(&self, caller: &Principal, s: Submission) -> Result<NewEvent, IngestError> {
        let prepared = self.prepare(caller, s)?;
        if !prepared.steps.is_empty() {
            self.steps.run(&prepared.event, prepared.steps).await?;
        }
        Ok(prepared.event)
    }

    /// Checks one submission and builds what to store.
    pub fn prepare(&self, caller: &Principal, s: Submission) -> Result<Prepared, IngestError> {
        let definition = self
            .catalog
            .cataloged(&s.name)
            .ok_or_else(|| IngestError::UnknownEvent(s.name.clone()))?;
        if !definition.enabled {
            return Err(IngestError::Disabled(s.name));
        }
        if !caller.may_use(&definition.solution) {
            return Err(IngestError::Forbidden {
                key: caller.name.clone(),
                solution: definition.solution.clone(),
            });
        }
        if let Some(key) = &s.idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(IngestError::BadIdempotencyKey);
            }
        }
        let Value::Object(params) = s.params else {
            return Err(IngestError::NotAnObject);
        };
        validate(definition, &params).map_err(|problems| IngestError::Invalid {
            event: s.name.clone(),
            problems,
        })?;
        let subscriptions = self.routing.matching(definition, &params);
        let idempotency = s
            .idempotency_key
            .map(|key| (key, fingerprint(&s.name, &params)));
        let event = Event {
            id: EventId::new(),
            name: s.name,
            solution: definition.solution.clone(),
            params,
            correlation_id: s
                .correlation_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            caller: caller.name.clone(),
            received_at: OffsetDateTime::now_utc(),
        };
        let (steps, asynchronous): (Vec<_>, Vec<_>) = subscriptions
            .into_iter()
            .partition(|sub| sub.mode == Mode::Sync);
        let deliveries = asynchronous
            .iter()
            .map(|sub| NewDelivery {
                id: DeliveryId::new(),
                subscription_id: sub.id,
                endpoint_id: sub.endpoint_id,
                leased_until: None,
            })
            .collect();
        Ok(Prepared {
            event: NewEvent {
                event: Arc::new(OutgoingEvent::new(event)),
                idempotency,
                deliveries,
            },
            steps,
        })
    }

    /// Stores events durably (one transaction, shared fsync) and hands their deliveries to
    /// the dispatcher: those it has a place for start at once, stored in flight and leased by
    /// this instance; the rest are stored pending and the dispatcher is woken to lease them.
    pub async fn store(
        &self,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let until = self.hand_off.lease_until();
        // (event, delivery) → its place with the dispatcher.
        let mut reserved = Vec::new();
        let mut pending = false;
        for (e, new) in events.iter_mut().enumerate() {
            for (d, delivery) in new.deliveries.iter_mut().enumerate() {
                delivery.leased_until = None;
                match self.hand_off.reserve(delivery.endpoint_id) {
                    Some(place) => {
                        delivery.leased_until = Some(until);
                        reserved.push((e, d, place));
                    }
                    None => pending = true,
                }
            }
        }
        let handed: Vec<_> = reserved
            .iter()
            .map(|(e, d, _)| (events[*e].event.clone(), events[*e].deliveries[*d].clone()))
            .collect();
        // Once queued, the write finishes and its deliveries start even if the caller goes
        // away meanwhile: dropping the places of deliveries committed as leased would leave
        // them unsent until their lease expired.
        let store = self.store.clone();
        let written = tokio::spawn(async move {
            let outcomes = store.ingest(events).await?;
            let created = |e: usize| matches!(outcomes[e], IngestOutcome::Created { .. });
            for ((e, _, place), (event, delivery)) in reserved.into_iter().zip(handed) {
                // A replayed event's deliveries were not stored: its places are given back.
                if created(e) {
                    place.start(LeasedDelivery {
                        id: delivery.id,
                        attempts: 0,
                        created_at: event.received_at,
                        subscription_id: delivery.subscription_id,
                        endpoint_id: delivery.endpoint_id,
                        event,
                    });
                }
            }
            Ok::<_, StoreError>(outcomes)
        });
        let outcomes = match written.await {
            Ok(outcomes) => outcomes?,
            Err(e) => {
                tracing::error!(error = %e, "storing events failed unexpectedly");
                return Err(IngestError::Store(StoreError::Closed));
            }
        };
        let count = outcomes
            .iter()
            .filter(|o| matches!(o, IngestOutcome::Created { .. }))
            .count();
        metrics::counter!("herald_events_accepted_total").increment(count as u64);
        if pending && count > 0 {
            self.hand_off.wake();
        }
        Ok(outcomes)
    }

    /// Wakes the dispatcher (after a retry or replay).
    pub fn wake(&self) {
        self.hand_off.wake();
    }
}
