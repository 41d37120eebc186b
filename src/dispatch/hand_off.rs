//! The hand-off: fresh deliveries taken straight from the commit that created them, in
//! bounded places, and the place every delivery holds while it is sent.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;

use super::gate::Gate;
use super::Inner;
use crate::model::{EndpointId, HealthState, LeasedDelivery, Routed};

/// Takes deliveries straight from the commit that created them: the bounded hand-off.
///
/// Before storing an event, ingestion reserves a place for each of its deliveries; a
/// reserved delivery is stored in flight, leased by this instance, and starts at once after
/// the commit, with the event already in memory: no lease query, no second read. A place is
/// free while the dispatcher is below its in-flight limit and the endpoint below its own, so
/// what is handed off never waits behind a slow endpoint, and memory never grows with load:
/// a delivery that finds no place is stored pending, for the lease query.
#[derive(Clone)]
pub struct HandOff {
    inner: Arc<Inner>,
}

impl HandOff {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// A place for one delivery to `endpoint`, if there is one now.
    pub fn reserve(&self, endpoint: EndpointId) -> Option<Reservation> {
        let inner = &self.inner;
        // An endpoint that is failing or disabled sends nothing fresh: its deliveries are
        // stored pending, and its gate and the lease query decide.
        if !inner.open.load(Ordering::Acquire)
            || inner.registry.health().state(endpoint) != HealthState::Healthy
        {
            return None;
        }
        let mut gates = inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        let gate = gates
            .entry(endpoint)
            .or_insert_with(|| Gate::new(inner.config.endpoint_concurrency));
        // While deliveries wait in the store for this endpoint (or for any, when the
        // dispatcher was full), fresh ones join them there: the lease query takes them in the
        // order they are due, and a place freed goes to the oldest, not to the next request.
        if gate.backlog || inner.backlog.load(Ordering::Acquire) {
            return None;
        }
        if gate.held >= gate.limit {
            gate.backlog = true;
            return None;
        }
        let Ok(permit) = inner.in_flight.clone().try_acquire_owned() else {
            inner.backlog.store(true, Ordering::Release);
            return None;
        };
        gate.held += 1;
        Some(Reservation {
            place: Some(Place {
                inner: inner.clone(),
                endpoint,
                permit: Some(permit),
            }),
        })
    }

    /// A place in the hand-off's order for an event with `deliveries` deliveries handed off
    /// (reserved): they are kept in the event's row rather than written as rows. `None` while
    /// no hand-off is open: they are stored as in-flight rows.
    pub fn route(&self, deliveries: u32) -> Option<Ticket> {
        let routed = self.inner.ledger.take(deliveries)?;
        Some(Ticket {
            inner: self.inner.clone(),
            routed,
            kept: false,
        })
    }

    /// The store refused a write under hand-off `handoff`: another instance closed it. No
    /// more events are routed under it; the recorder opens a new one.
    pub fn lost(&self, handoff: i64) {
        self.inner.ledger.lose(handoff);
        self.inner.waker.wake();
    }

    /// Until when a delivery handed off now is leased.
    pub fn lease_until(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.inner.config.lease
    }

    /// Wakes the dispatcher to look for due work (deliveries stored pending).
    pub fn wake(&self) {
        self.inner.waker.wake();
    }
}

/// An event's place in the hand-off's order, from before it is written: given back (its
/// deliveries settled as never sent) when dropped unless [`Ticket::keep`] says it was stored.
pub struct Ticket {
    inner: Arc<Inner>,
    routed: Routed,
    kept: bool,
}

impl Ticket {
    /// The place.
    pub fn routed(&self) -> Routed {
        self.routed
    }

    /// The event was stored: its deliveries settle as they finish.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.kept {
            self.inner.ledger.forget(self.routed);
        }
    }
}

/// A place for one delivery, held from before its event is stored until it starts; given
/// back if it is dropped unused (the event was not stored, or was a replay).
pub struct Reservation {
    place: Option<Place>,
}

impl Reservation {
    /// Starts sending `delivery`, which the store holds leased by this instance.
    pub fn start(mut self, delivery: LeasedDelivery) {
        let place = self.place.take().expect("a reservation starts once");
        debug_assert_eq!(delivery.endpoint_id, place.endpoint);
        place.inner.clone().start(delivery, place);
    }
}

/// A delivery's share of the dispatcher: an in-flight permit and a place at its endpoint's
/// gate, both given back when it is dropped, whether the send finished, never started, or
/// its task panicked.
pub(super) struct Place {
    pub(super) inner: Arc<Inner>,
    pub(super) endpoint: EndpointId,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Place {
    fn drop(&mut self) {
        // The permit first, so the capacity `release` looks at includes it.
        drop(self.permit.take());
        self.inner.release(self.endpoint);
    }
}
