//! Duplicate detection: the message ids an entity saw within its window. A send whose id is
//! among them is accepted and dropped.

use super::message::Message;
use super::{Broker, Op};
use std::collections::{HashMap, VecDeque};

/// The message ids one queue or topic saw, oldest first.
#[derive(Debug)]
pub(super) struct History {
    window_ms: i64,
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
    /// Sends dropped as duplicates since start.
    dropped: u64,
}

impl History {
    /// An empty history with a window.
    pub(super) fn new(window_ms: i64) -> History {
        History {
            window_ms,
            seen: HashMap::new(),
            order: VecDeque::new(),
            dropped: 0,
        }
    }

    /// The window (ms).
    pub(super) fn window(&self) -> i64 {
        self.window_ms
    }

    /// Changes the window (the ids seen so far are kept).
    pub(super) fn set_window(&mut self, window_ms: i64) {
        self.window_ms = window_ms;
    }

    /// Forgets ids seen before the window.
    pub(super) fn prune(&mut self, now_ms: i64) {
        while let Some((at, _)) = self.order.front() {
            if *at > now_ms - self.window_ms {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                if self.seen.get(&id) == Some(&at) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    /// Remembers an id seen at a time.
    pub(super) fn record(&mut self, id: String, at: i64) {
        self.seen.insert(id.clone(), at);
        self.order.push_back((at, id));
    }

    fn contains(&self, id: &str, now_ms: i64) -> bool {
        self.seen
            .get(id)
            .is_some_and(|at| *at > now_ms - self.window_ms)
    }
}

impl Broker {
    /// Whether `msg` repeats a message id `entity` saw within its window; records it if not.
    pub(super) fn is_duplicate(&mut self, entity: &str, msg: &Message, now_ms: i64) -> bool {
        let (Some(h), Some(id)) = (self.dedup.get_mut(entity), &msg.system.message_id) else {
            return false;
        };
        h.prune(now_ms);
        if h.contains(id, now_ms) {
            tracing::debug!(entity, message_id = %id, "duplicate dropped");
            h.dropped += 1;
            return true;
        }
        h.record(id.clone(), now_ms);
        self.journal
            .push(Op::Seen(entity.to_owned(), id.clone(), now_ms));
        false
    }
}

impl Broker {
    /// How many sends to `entity` duplicate detection dropped since start.
    pub fn duplicates_dropped(&self, entity: &str) -> u64 {
        self.dedup
            .get(&entity.to_ascii_lowercase())
            .map_or(0, |h| h.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_duplicate_only_within_the_window() {
        let mut h = History::new(100);
        h.record("a".into(), 0);
        assert!(h.contains("a", 99));
        assert!(!h.contains("a", 100));
        h.record("a".into(), 150);
        h.prune(120);
        assert!(
            h.contains("a", 200),
            "seen again later: the later time counts"
        );
        h.prune(250);
        assert!(h.seen.is_empty() && h.order.is_empty());
    }
}
