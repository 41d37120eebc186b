//! The ledger of this dispatcher's hand-off: which handed-off events still have deliveries
//! unsettled, and the mark below which none has.
//!
//! A delivery handed off at ingestion is not a row of its own: its event's row keeps it (its
//! `routes`), with the hand-off it belongs to and the event's place in the hand-off's order.
//! A success writes nothing of its own: it settles the delivery here, and the next write of
//! the mark (`handoffs.through`, one small row per instance, written with the next batch of
//! results) says so for every delivery below it at once. A delivery that does not succeed at
//! once is written as a row of its own with its result, and settles once that is committed.
//! The mark is the place of the oldest event with a delivery unsettled, less one: places are
//! given before the event is written, so an event whose write has not finished holds the mark
//! back whatever order the writes commit in.
//!
//! The hand-off's row is also its lease: written with every mark, at least every third of a
//! lease. An instance that stops writing it (it died, or lost its database) is taken over
//! when the lease ends: another instance closes the hand-off and writes every delivery above
//! the mark as a pending row. A closed hand-off takes no more marks or results (fencing):
//! the instance that comes back learns it has lost it, counts what it sent meanwhile as
//! possible duplicates, and opens a new one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::Routed;

/// The ledger (see the module documentation).
#[derive(Default)]
pub(super) struct Ledger {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The hand-off open now, if any (none before the first is opened, and after one is lost).
    handoff: Option<i64>,
    /// The last place given.
    last: i64,
    /// Events with deliveries unsettled, by place: how many.
    open: BTreeMap<i64, u32>,
}

/// Where the hand-off stands, to write: its mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    /// The hand-off.
    pub handoff: i64,
    /// Every delivery of an event at this place or below is settled.
    pub through: i64,
}

impl Ledger {
    /// Starts keeping hand-off `handoff` (just opened: nothing of it is unsettled).
    pub fn open(&self, handoff: i64) {
        let mut s = self.lock();
        *s = State {
            handoff: Some(handoff),
            ..State::default()
        };
    }

    /// A place for an event with `deliveries` deliveries handed off, under the open hand-off;
    /// `None` when none is open.
    pub fn take(&self, deliveries: u32) -> Option<Routed> {
        let mut s = self.lock();
        let handoff = s.handoff?;
        s.last += 1;
        let seq = s.last;
        s.open.insert(seq, deliveries);
        Some(Routed { handoff, seq })
    }

    /// The event at `routed` was not written (the write failed, or it was a replay): none of
    /// its deliveries will be sent.
    pub fn forget(&self, routed: Routed) {
        let mut s = self.lock();
        if s.handoff == Some(routed.handoff) {
            s.open.remove(&routed.seq);
        }
    }

    /// One delivery of the event at `routed` is settled. A delivery of a hand-off no longer
    /// open changes nothing (it was taken over).
    pub fn settle(&self, routed: Routed) {
        let mut s = self.lock();
        if s.handoff != Some(routed.handoff) {
            return;
        }
        if let Some(left) = s.open.get_mut(&routed.seq) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                s.open.remove(&routed.seq);
            }
        }
    }

    /// The mark to write now, if a hand-off is open.
    pub fn mark(&self) -> Option<Mark> {
        let s = self.lock();
        let handoff = s.handoff?;
        let through = match s.open.keys().next() {
            Some(oldest) => oldest - 1,
            None => s.last,
        };
        Some(Mark { handoff, through })
    }

    /// The hand-off `handoff` was closed by another instance: stops handing off under it,
    /// says so, and returns how many of its events still had deliveries unsettled (they were
    /// taken over, and may be sent twice). Nothing if it was lost already.
    pub fn lose(&self, handoff: i64) -> usize {
        let mut s = self.lock();
        if s.handoff != Some(handoff) {
            return 0;
        }
        let unsettled = s.open.len();
        *s = State::default();
        drop(s);
        tracing::warn!(
            handoff,
            unsettled_events = unsettled,
            "this instance's hand-off was taken over by another (it could not reach the database for longer than its lease); its unsettled deliveries are sent by the other instance and may arrive twice"
        );
        metrics::counter!("herald_handoffs_lost_total").increment(1);
        unsettled
    }

    /// The hand-off open now.
    pub fn handoff(&self) -> Option<i64> {
        self.lock().handoff
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_stays_below_the_oldest_unsettled_event_whatever_order_they_settle_in() {
        let ledger = Ledger::default();
        assert_eq!(
            ledger.take(1),
            None,
            "nothing is handed off before a hand-off opens"
        );
        ledger.open(7);
        let a = ledger.take(2).unwrap();
        let b = ledger.take(1).unwrap();
        let c = ledger.take(1).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
        assert_eq!(ledger.mark().unwrap().through, 0);
        ledger.settle(c);
        ledger.settle(a);
        assert_eq!(ledger.mark().unwrap().through, 0, "a has a delivery left");
        ledger.settle(a);
        assert_eq!(ledger.mark().unwrap().through, 1, "b is unsettled");
        ledger.forget(b);
        assert_eq!(ledger.mark().unwrap().through, 3);
        let d = ledger.take(1).unwrap();
        assert_eq!(ledger.mark().unwrap().through, 3);
        assert_eq!(ledger.lose(7), 1);
        assert_eq!(ledger.mark(), None);
        ledger.settle(d);
        assert_eq!(ledger.take(1), None);
        ledger.open(8);
        assert_eq!(
            ledger.mark(),
            Some(Mark {
                handoff: 8,
                through: 0
            })
        );
    }
}
