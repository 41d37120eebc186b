//! Deliveries kept in their event's row (`events.routes`) rather than as rows of their own:
//! how they are written, read back and shown, the same on every backend.
//!
//! `routes` is text, not JSON, so the few statements that touch it are the same SQL on SQLite
//! and PostgreSQL: `" n:sub_…:ep_… n:sub_…:ep_… "`, each delivery between single spaces. One
//! is taken out with `REPLACE(routes, ' n:sub_…:ep_… ', ' ')`, the deliveries of an endpoint
//! are found with `LIKE`, and their number is the number of spaces less one.

use time::OffsetDateTime;

use super::rows::{corrupt, from_millis, Columns};
use super::StoreError;
use crate::model::{
    AttemptResult, Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, NewEvent,
    RoutedResult, SubscriptionId,
};

/// One delivery kept in its event's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Its number within the event (its id is made of the event's and this).
    pub n: u16,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
}

impl Route {
    /// Its text in `routes`, without the spaces around it.
    pub fn entry(&self) -> String {
        format!("{}:{}:{}", self.n, self.subscription_id, self.endpoint_id)
    }

    /// Its delivery id.
    pub fn id(&self, event: EventId) -> DeliveryId {
        DeliveryId::of(event, self.n)
    }

    /// The route of the delivery a routed result is of: its number is in its id.
    pub fn of_result(r: &AttemptResult, x: &RoutedResult) -> Result<Self, StoreError> {
        match r.delivery_id.route() {
            Some((event, n)) if event == x.event_id => Ok(Route {
                n,
                subscription_id: x.subscription_id,
                endpoint_id: x.endpoint_id,
            }),
            _ => Err(corrupt(
                "routed delivery id",
                format!("{} is not made from event {}", r.delivery_id, x.event_id),
            )),
        }
    }
}

/// The `routes` of `new`: its handed-off deliveries when it is routed under a hand-off, else
/// `None` (they are rows). Each one's id must be made from the event's ([`DeliveryId::of`]).
pub fn of(new: &NewEvent) -> Result<Option<String>, StoreError> {
    if new.handoff.is_none() {
        return Ok(None);
    }
    let event = new.event.event.id;
    let mut text = String::from(" ");
    for d in new.deliveries.iter().filter(|d| d.leased_until.is_some()) {
        let n = match d.id.route() {
            Some((of, n)) if of == event => n,
            _ => {
                return Err(corrupt(
                    "routed delivery id",
                    format!("{} is not made from event {event}", d.id),
                ))
            }
        };
        text.push_str(
            &Route {
                n,
                subscription_id: d.subscription_id,
                endpoint_id: d.endpoint_id,
            }
            .entry(),
        );
        text.push(' ');
    }
    Ok((text.len() > 1).then_some(text))
}

/// Whether a delivery of `new` is written as a row of its own (not kept in `routes`).
pub fn is_row(new: &NewEvent, leased: bool) -> bool {
    new.handoff.is_none() || !leased
}

/// Reads `routes` back.
pub fn parse(text: &str) -> Result<Vec<Route>, StoreError> {
    text.split_whitespace()
        .map(|entry| {
            let bad = || corrupt("event routes", entry.to_owned());
            let mut parts = entry.splitn(3, ':');
            let (Some(n), Some(sub), Some(ep)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            Ok(Route {
                n: n.parse().map_err(|_| bad())?,
                subscription_id: sub.parse().map_err(|_| bad())?,
                endpoint_id: ep.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// An event's deliveries kept in its row, with what says where they are: the columns
/// `id, routes, received_at, handoff_seq` of the event and `through, closed` of its hand-off.
pub struct Kept {
    pub event_id: EventId,
    pub routes: Vec<Route>,
    pub received_at: OffsetDateTime,
    /// Settled (under the hand-off's mark): succeeded.
    pub settled: bool,
}

impl Kept {
    /// Reads the columns named above; `None` when the event keeps no delivery.
    pub fn from_row(row: &impl Columns) -> Result<Option<Self>, StoreError> {
        let Some(text) = row.opt_text("routes")? else {
            return Ok(None);
        };
        let seq = row.opt_int("handoff_seq")?.unwrap_or(i64::MAX);
        let through = row.opt_int("handoff_through")?.unwrap_or(i64::MIN);
        Ok(Some(Self {
            event_id: super::rows::parse_id(row, "id")?,
            routes: parse(&text)?,
            received_at: from_millis(row.int("received_at")?),
            settled: seq <= through,
        }))
    }

    /// Its deliveries as the API shows them. A settled one succeeded (its time is not kept:
    /// a success writes nothing of its own); an unsettled one is in flight on the instance
    /// that handed it off.
    pub fn deliveries(&self) -> impl Iterator<Item = Delivery> + '_ {
        self.routes.iter().map(|r| Delivery {
            id: r.id(self.event_id),
            event_id: self.event_id,
            subscription_id: r.subscription_id,
            endpoint_id: r.endpoint_id,
            status: if self.settled {
                DeliveryStatus::Succeeded
            } else {
                DeliveryStatus::InFlight
            },
            attempts: u32::from(self.settled),
            next_attempt_at: self.received_at,
            last_error: None,
            created_at: self.received_at,
            finished_at: None,
        })
    }
}

/// A statement answering `n` = 1 when some event keeps deliveries in its row, else 0: one
/// look into the partial index `events_handoff`. Reads of kept deliveries that scan events
/// are skipped when none does (a store whose deliveries are all rows).
pub const ANY_KEPT: &str =
    "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM events WHERE routes IS NOT NULL LIMIT 1) k";

/// The columns [`Kept::from_row`] reads, for a `SELECT` over `events e`.
pub const KEPT_COLUMNS: &str =
    "e.id, e.routes, e.received_at, e.handoff_seq, h.through AS handoff_through";

/// The join that gives them.
pub const KEPT_JOIN: &str = "events e LEFT JOIN handoffs h ON h.id = e.handoff";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_read_back_as_written_and_one_is_taken_out_by_its_entry() {
        let a = Route {
            n: 1,
            subscription_id: SubscriptionId::new(),
            endpoint_id: EndpointId::new(),
        };
        let b = Route { n: 2, ..a };
        let text = format!(" {} {} ", a.entry(), b.entry());
        assert_eq!(parse(&text).unwrap(), [a, b]);
        let left = text.replace(&format!(" {} ", a.entry()), " ");
        assert_eq!(parse(&left).unwrap(), [b]);
        assert!(parse(" 1:sub_x:ep_y ").is_err());
    }
}
