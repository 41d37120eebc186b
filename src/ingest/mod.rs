//! Ingestion, without HTTP: a submitted event is checked against the catalog, the caller's
//! rights and the depth limit, passed through its synchronous steps (which may change it and
//! set its response), matched to subscriptions as the steps left it, and stored with its
//! deliveries in one durable transaction; the deliveries then go to the dispatcher. One call,
//! [`Ingestor::submit`] (or [`Ingestor::submit_all`] for a batch), does all of it and gives the
//! answer: the event API, the Dataverse route, the console's test event and Herald's own
//! operational notices all use it, and only parse what they are given and map what it answers.

pub mod emit;
mod error;
mod fingerprint;
pub mod notices;
pub mod steps;

use crate::activity::{Activity, Happening};
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::catalog::{validate, Catalog};
use crate::dispatch::{HandOff, Reservation, Ticket};
use crate::model::{
    DeliveryId, Event, EventDefinition, EventId, IngestOutcome, LeasedDelivery, Mode, NewDelivery,
    NewEvent, OutgoingEvent, RowImages, Scope, Subscription,
};
use crate::registry::Routing;
use crate::store::{Store, StoreError};
use crate::telemetry::Span;
pub use error::IngestError;
use fingerprint::fingerprint;
use opentelemetry::trace::SpanKind;

/// An event accepted: what its caller is answered.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The event's id.
    pub id: EventId,
    /// How many deliveries it fans out to.
    pub deliveries: u32,
    /// The response properties its synchronous steps set, for an event that declares any
    /// (for an idempotent replay, the first event's).
    pub response: Option<Map<String, Value>>,
    /// Whether this was an idempotent replay of an event accepted before.
    pub replayed: bool,
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
    /// Its depth: 1 from an outside caller, see [`depth_after`].
    pub depth: u32,
    /// The W3C trace context its deliveries continue (see [`Event::traceparent`]).
    pub traceparent: Option<String>,
    /// For a row change from a source: the row before and after.
    pub images: Option<RowImages>,
}

pub use crate::model::event::DEPTH_CAP;

/// The depth of an event whose caller sent `cause` (the depth of the Herald delivery it was
/// handling, from the `header` Herald puts on every delivery): one more, or 1 without it.
pub fn depth_after(header: &'static str, cause: Option<&str>) -> Result<u32, IngestError> {
    match cause {
        None => Ok(1),
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=DEPTH_CAP).contains(d))
            .map(|d| d + 1)
            .ok_or(IngestError::BadDepth { header }),
    }
}

/// An event checked, not yet through its steps nor routed.
#[derive(Debug, Clone)]
pub struct Prepared<'c> {
    /// Its definition.
    pub definition: &'c EventDefinition,
    /// The event as the caller sent it.
    pub event: Event,
    /// The idempotency key and the fingerprint of the caller's request.
    pub idempotency: Option<(String, [u8; 32])>,
    /// Synchronous steps to run before it is stored.
    pub steps: Vec<Subscription>,
    /// The asynchronous subscriptions it matches as sent.
    pub asynchronous: Vec<Subscription>,
}

/// Validates, routes and stores events.
pub struct Ingestor {
    catalog: Catalog,
    routing: Routing,
    store: Arc<dyn Store>,
    hand_off: HandOff,
    steps: steps::SyncSteps,
    max_depth: u32,
    activity: Activity,
}

impl Ingestor {
    /// An ingestor over these parts; fresh deliveries go to the dispatcher's `hand_off`;
    /// events deeper than `max_depth` are refused.
    pub fn new(
        catalog: Catalog,
        routing: Routing,
        store: Arc<dyn Store>,
        hand_off: HandOff,
        steps: steps::SyncSteps,
        max_depth: u32,
    ) -> Self {
        Self {
            catalog,
            routing,
            store,
            hand_off,
            steps,
            max_depth,
            activity: Activity::default(),
        }
    }

    /// The same ingestor, counting accepted events in `activity` and telling its watchers.
    pub fn with_activity(mut self, activity: Activity) -> Self {
        self.activity = activity;
        self
    }

    /// One event, from submission to answer: checked, through its synchronous steps, stored
    /// durably and handed to the dispatcher. `span` is the caller's trace: validation and the
    /// write are its children.
    pub async fn submit(
        &self,
        caller: &Principal,
        submission: Submission,
        span: &Span,
    ) -> Result<Accepted, IngestError> {
        let event = {
            let validating = span.child("herald.validate", SpanKind::Internal);
            self.admit(caller, submission, &validating)
                .await
                .inspect_err(|e| validating.fail(e.to_string()))?
        };
        let fresh = self.declared_response(&event);
        let outcome = self
            .stored(vec![event], span)
            .await?
            .pop()
            .ok_or(IngestError::Store(StoreError::Closed))?;
        self.answer(outcome, fresh).await
    }

    /// Many events, each checked and through its steps on its own, the valid ones stored in
    /// one transaction. The outer error is the write's (nothing was stored); otherwise each
    /// submission's result, in order.
    pub async fn submit_all(
        &self,
        caller: &Principal,
        submissions: Vec<Submission>,
        span: &Span,
    ) -> Result<Vec<Result<Accepted, IngestError>>, IngestError> {
        let mut results: Vec<Result<Accepted, IngestError>> = Vec::with_capacity(submissions.len());
        // Where each admitted event's result goes, and the response it declares.
        let mut admitted = Vec::new();
        let mut events = Vec::new();
        {
            let validating = span.child("herald.validate", SpanKind::Internal);
            for submission in submissions {
                match self.admit(caller, submission, &validating).await {
                    Ok(event) => {
                        admitted.push((results.len(), self.declared_response(&event)));
                        events.push(event);
                        // Replaced below, once stored.
                        results.push(Err(IngestError::Store(StoreError::Closed)));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        let outcomes = self.stored(events, span).await?;
        for ((index, fresh), outcome) in admitted.into_iter().zip(outcomes) {
            // The batch is stored: a failed read of a replayed item's first response must not
            // turn the answer into an error that hides the other items' ids.
            let response = match self.response(&outcome, fresh.clone()).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a replayed event's response failed; answering with this request's");
                    fresh
                }
            };
            results[index] = accepted(outcome, response);
        }
        Ok(results)
    }

    /// The answer to one stored event.
    async fn answer(
        &self,
        outcome: IngestOutcome,
        fresh: Option<Map<String, Value>>,
    ) -> Result<Accepted, IngestError> {
        let response = self.response(&outcome, fresh).await?;
        accepted(outcome, response)
    }

    /// The response to give back for `outcome`: the steps' `fresh` one for a new event, the
    /// first event's for an idempotent replay; `None` for an event without response properties.
    async fn response(
        &self,
        outcome: &IngestOutcome,
        fresh: Option<Map<String, Value>>,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        match (outcome, fresh) {
            (IngestOutcome::Replayed { id, .. }, Some(fresh)) => Ok(Some(
                self.store
                    // The caller's own earlier event (the idempotency key is the caller's).
                    .records()
                    .event(&Scope::All, *id)
                    .await?
                    .map(|(first, _)| first.pipeline.response)
                    .unwrap_or(fresh),
            )),
            (_, fresh) => Ok(fresh),
        }
    }

    /// The response properties of `event` when its definition declares any.
    fn declared_response(&self, event: &NewEvent) -> Option<Map<String, Value>> {
        self.catalog
            .cataloged(&event.event.name)
            .filter(|d| !d.response_properties.is_empty())
            .map(|_| event.event.pipeline.response.clone())
    }

    /// Checks one submission, runs its synchronous steps, and routes the event as they left
    /// it: what to store.
    async fn admit(
        &self,
        caller: &Principal,
        s: Submission,
        span: &Span,
    ) -> Result<NewEvent, IngestError> {
        let Prepared {
            definition,
            mut event,
            idempotency,
            steps,
            mut asynchronous,
        } = self.prepare(caller, s)?;
        // An event with response properties goes through the pipeline even without steps, to
        // say which required ones nobody set.
        if !steps.is_empty() || !definition.response_properties.is_empty() {
            let run = self.steps.run(definition, &event, steps, span).await?;
            let missing = run.missing_response();
            if !missing.is_empty() {
                return Err(IngestError::ResponseIncomplete {
                    event: event.name.to_string(),
                    missing,
                });
            }
            if !run.pipeline.changes.is_empty() {
                asynchronous = self
                    .routing
                    .matching(definition, &run.params, event.images.as_ref())
                    .into_iter()
                    .filter(|sub| sub.mode == Mode::Async)
                    .collect();
            }
            event.params = run.params;
            event.pipeline = run.pipeline;
        }
        let deliveries = asynchronous
            .iter()
            .enumerate()
            .map(|(n, sub)| NewDelivery {
                // Made from the event's id: a delivery kept in the event's row is found by it.
                id: DeliveryId::of(event.id, u16::try_from(n + 1).unwrap_or(u16::MAX)),
                subscription_id: sub.id,
                endpoint_id: sub.endpoint_id,
                leased_until: None,
            })
            .collect();
        Ok(NewEvent {
            event: Arc::new(OutgoingEvent::new(event)),
            idempotency,
            deliveries,
            handoff: None,
        })
    }

    /// Checks one submission: its definition, the event as sent, and its synchronous steps.
    pub fn prepare(&self, caller: &Principal, s: Submission) -> Result<Prepared<'_>, IngestError> {
        let definition = self
            .catalog
            .cataloged(&s.name)
            // An event of a solution the key does not use is as unknown as one the catalog
            // lacks: the answer does not tell that it exists.
            .filter(|d| caller.may_use(&d.solution))
            .ok_or_else(|| IngestError::UnknownEvent(s.name.clone()))?;
        if !definition.enabled {
            return Err(IngestError::Disabled(s.name));
        }
        // Herald's own operational events: seen by keys of every solution, sent by Herald.
        if !caller.may_send(&definition.solution) {
            return Err(IngestError::Forbidden {
                key: caller.name.clone(),
                solution: definition.solution.clone(),
            });
        }
        // Both travel in headers: 1 to 255 visible ASCII characters.
        let usable =
            |v: &str| (1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic());
        if s.idempotency_key.as_deref().is_some_and(|k| !usable(k)) {
            return Err(IngestError::BadIdempotencyKey);
        }
        if s.correlation_id.as_deref().is_some_and(|c| !usable(c)) {
            return Err(IngestError::BadCorrelationId);
        }
        let Value::Object(params) = s.params else {
            return Err(IngestError::NotAnObject);
        };
        validate(definition, &params).map_err(|problems| IngestError::Invalid {
            event: s.name.clone(),
            problems,
        })?;
        let correlation_id = s
            .correlation_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if s.depth > self.max_depth {
            return Err(IngestError::TooDeep {
                event: s.name,
                depth: s.depth,
                max: self.max_depth,
                correlation_id,
            });
        }
        // Steps are the synchronous subscriptions the event matches as sent; when they change
        // it, its deliveries are matched again as they left it (`admit`).
        let (steps, asynchronous): (Vec<_>, Vec<_>) = self
            .routing
            .matching(definition, &params, s.images.as_ref())
            .into_iter()
            .partition(|sub| sub.mode == Mode::Sync);
        let idempotency = s
            .idempotency_key
            .map(|key| (key, fingerprint(&s.name, &params)));
        let event = Event {
            id: EventId::routable(),
            name: definition.unique_name.clone(),
            solution: definition.solution.clone(),
            params,
            correlation_id,
            caller: caller.name.clone(),
            received_at: OffsetDateTime::now_utc(),
            depth: s.depth,
            pipeline: Default::default(),
            traceparent: s.traceparent,
            images: s.images,
        };
        Ok(Prepared {
            definition,
            event,
            idempotency,
            steps,
            asynchronous,
        })
    }

    /// [`Self::store`] as a child of `span`, failed when the write fails.
    async fn stored(
        &self,
        events: Vec<NewEvent>,
        span: &Span,
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        let writing = span.child("herald.store", SpanKind::Internal);
        self.store(events)
            .await
            .inspect_err(|e| writing.fail(e.to_string()))
    }

    /// Stores events durably (one transaction, shared fsync) and hands their deliveries to
    /// the dispatcher: those it has a place for start at once, stored in flight and leased by
    /// this instance; the rest are stored pending and the dispatcher is woken to lease them.
    async fn store(&self, mut events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, IngestError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let until = self.hand_off.lease_until();
        let mut reserved: Vec<Reserved> = Vec::new();
        let mut tickets: Vec<Option<Ticket>> = Vec::with_capacity(events.len());
        let mut pending = false;
        for (e, new) in events.iter_mut().enumerate() {
            let before = reserved.len();
            for (d, delivery) in new.deliveries.iter_mut().enumerate() {
                delivery.leased_until = None;
                match self.hand_off.reserve(delivery.endpoint_id) {
                    Some(place) => {
                        delivery.leased_until = Some(until);
                        reserved.push(Reserved {
                            event: e,
                            delivery: d,
                            place,
                        });
                    }
                    None => pending = true,
                }
            }
            // The deliveries handed off are kept in the event's row (ids made from the event's:
            // more than 65,535 deliveries of one event are rows).
            let handed = (reserved.len() - before) as u32;
            let ticket = (handed > 0 && new.deliveries.len() < usize::from(u16::MAX))
                .then(|| self.hand_off.route(handed))
                .flatten();
            new.handoff = ticket.as_ref().map(Ticket::routed);
            tickets.push(ticket);
        }
        // What the live tail shows of each event, when someone watches it.
        let told: Vec<Told> = if self.activity.watched() {
            events
                .iter()
                .map(|n| Told {
                    event_id: n.event.event.id,
                    event_name: n.event.event.name.to_string(),
                    solution: n.event.event.solution.clone(),
                    deliveries: n.deliveries.len() as u32,
                })
                .collect()
        } else {
            Vec::new()
        };
        let handed: Vec<_> = reserved
            .iter()
            .map(|r| {
                let event = &events[r.event];
                (event.event.clone(), event.deliveries[r.delivery].clone())
            })
            .collect();
        // Once queued, the write finishes and its deliveries start even if the caller goes
        // away meanwhile: dropping the places of deliveries committed as leased would leave
        // them unsent until their lease expired.
        let store = self.store.clone();
        let hand_off = self.hand_off.clone();
        let written = tokio::spawn(async move {
            let routed: Vec<_> = tickets
                .iter()
                .map(|t| t.as_ref().map(Ticket::routed))
                .collect();
            let outcomes = match store.ingest(events).await {
                Ok(outcomes) => outcomes,
                Err(StoreError::HandoffClosed) => {
                    if let Some(r) = routed.iter().flatten().next() {
                        hand_off.lost(r.handoff);
                    }
                    return Err(StoreError::HandoffClosed);
                }
                Err(e) => return Err(e),
            };
            let created = |e: usize| matches!(outcomes[e], IngestOutcome::Created { .. });
            for (e, ticket) in tickets.into_iter().enumerate() {
                // A replayed event's deliveries were not stored: its place is given back.
                if let Some(ticket) = ticket.filter(|_| created(e)) {
                    ticket.keep();
                }
            }
            for (r, (event, delivery)) in reserved.into_iter().zip(handed) {
                // A replayed event's deliveries were not stored: its places are given back.
                if created(r.event) {
                    r.place.start(LeasedDelivery {
                        id: delivery.id,
                        attempts: 0,
                        created_at: event.received_at,
                        subscription_id: delivery.subscription_id,
                        endpoint_id: delivery.endpoint_id,
                        event,
                        routed: routed[r.event],
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
        self.activity.accepted(count as u64);
        let now = time::OffsetDateTime::now_utc();
        for (t, outcome) in told.into_iter().zip(&outcomes) {
            if matches!(outcome, IngestOutcome::Created { .. }) {
                self.activity.tell(Happening::Accepted {
                    at: now,
                    event_id: t.event_id,
                    event_name: t.event_name,
                    solution: t.solution,
                    deliveries: t.deliveries,
                });
            }
        }
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

/// What the caller of a stored event is answered: `response` and the outcome's id and count,
/// or the refusal of a reused idempotency key.
fn accepted(
    outcome: IngestOutcome,
    response: Option<Map<String, Value>>,
) -> Result<Accepted, IngestError> {
    match outcome {
        IngestOutcome::Created { id, deliveries } => Ok(Accepted {
            id,
            deliveries,
            response,
            replayed: false,
        }),
        IngestOutcome::Replayed { id, deliveries } => Ok(Accepted {
            id,
            deliveries,
            response,
            replayed: true,
        }),
        IngestOutcome::KeyReused { id } => Err(IngestError::KeyReused { id }),
    }
}

/// A delivery of a batch being stored that has its place with the dispatcher.
struct Reserved {
    /// Its event's position in the batch.
    event: usize,
    /// Its position among the event's deliveries.
    delivery: usize,
    /// Its place.
    place: Reservation,
}

/// What the live tail is told of an event once it is stored.
struct Told {
    event_id: EventId,
    event_name: String,
    solution: String,
    deliveries: u32,
}
