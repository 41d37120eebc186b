//! Activity per minute (events accepted, attempts by outcome, time spent sending), counted by
//! each instance and summed in the store, and the query the console browses deliveries with.

use time::OffsetDateTime;

use super::delivery::{Delivery, DeliveryStatus};
use super::ids::{DeliveryId, EndpointId};

/// What happened in one minute, at one endpoint (or, for `events`, anywhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events accepted.
    pub events: u64,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed (to be tried again or not).
    pub failed: u64,
    /// Deliveries dead-lettered.
    pub dead_lettered: u64,
    /// Milliseconds spent on attempts, summed.
    pub total_ms: u64,
    /// The longest attempt, in milliseconds.
    pub max_ms: u64,
}

impl Counts {
    /// Adds `other` in.
    pub fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.dead_lettered += other.dead_lettered;
        self.total_ms += other.total_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// Attempts made.
    pub fn attempts(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// The mean time of an attempt, in milliseconds.
    pub fn mean_ms(&self) -> Option<u64> {
        self.total_ms.checked_div(self.attempts())
    }
}

/// One minute's counts at one endpoint (`None`: counts not tied to an endpoint, the events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// The endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// What happened.
    pub counts: Counts,
}

/// The minute `at` falls in (minutes since the Unix epoch).
pub fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

/// Which deliveries to list, a page at a time. Pages go from newest to oldest: by id (ids are
/// UUIDv7, so by creation) or, with a status, by the time of the last change (when the
/// delivery finished, or is due next).
#[derive(Debug, Clone, Default)]
pub struct Browse {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only to this endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// Only of events with this unique name.
    pub event_name: Option<String>,
    /// Only created at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only created before this time.
    pub to: Option<OffsetDateTime>,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
    /// At most this many.
    pub limit: u32,
}

/// Where a page ended: the last row's order key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The time the status order goes by (unix milliseconds); 0 in id order.
    pub at: i64,
    /// The last id.
    pub id: DeliveryId,
}

/// One page of deliveries, each with its event's name.
#[derive(Debug, Clone, Default)]
pub struct BrowsePage {
    /// The deliveries.
    pub rows: Vec<(Delivery, String)>,
    /// Where the next page starts, when there may be one.
    pub next: Option<Cursor>,
}
