//! Event hubs: partitions as append-only logs with sequence numbers, offsets and enqueue
//! times; partition choice by key hash or round robin; start positions for readers.

use super::message::Message;
use serde::{Deserialize, Serialize};

/// One event in a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number in the partition, from 0.
    pub seq: i64,
    /// Byte offset in the partition.
    pub offset: i64,
    /// Enqueue time (unix ms).
    pub enqueued_ms: i64,
    /// The message.
    pub msg: Message,
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// The first event kept.
    Earliest,
    /// After the last event enqueued so far.
    Latest,
    /// By offset; `true` includes the event at it.
    Offset(i64, bool),
    /// By sequence number; `true` includes it.
    Sequence(i64, bool),
    /// By enqueue time (unix ms); `true` includes events at it.
    Enqueued(i64, bool),
}

/// One partition.
#[derive(Debug, Default)]
pub struct Partition {
    /// Events in order.
    pub events: Vec<Event>,
    next_offset: i64,
}

impl Partition {
    /// Appends an event; returns a copy.
    pub fn append(&mut self, msg: Message, now_ms: i64) -> Event {
        let e = Event {
            seq: self.events.len() as i64,
            offset: self.next_offset,
            enqueued_ms: now_ms,
            msg,
        };
        self.next_offset += e.msg.size() as i64 + 1;
        self.events.push(e.clone());
        e
    }
    /// Restores a logged event.
    pub fn restore(&mut self, e: Event) {
        self.next_offset = self.next_offset.max(e.offset + e.msg.size() as i64 + 1);
        self.events.push(e);
    }
    /// Index of the first event at or after `pos`.
    pub fn index_of(&self, pos: Position) -> usize {
        let ev = &self.events;
        let first = |f: &dyn Fn(&Event) -> bool| ev.iter().position(f).unwrap_or(ev.len());
        match pos {
            Position::Earliest => 0,
            Position::Latest => ev.len(),
            Position::Offset(o, incl) => first(&|e| e.offset > o || (incl && e.offset == o)),
            Position::Sequence(s, incl) => first(&|e| e.seq > s || (incl && e.seq == s)),
            Position::Enqueued(t, incl) => {
                first(&|e| e.enqueued_ms > t || (incl && e.enqueued_ms == t))
            }
        }
    }
}

/// An event hub.
#[derive(Debug)]
pub struct EventHub {
    /// Name as configured.
    pub name: String,
    /// Creation time (unix ms).
    pub created_ms: i64,
    /// Partitions, ids `0..n`.
    pub partitions: Vec<Partition>,
    /// Consumer group names, lower-cased (`$default` always).
    pub consumer_groups: Vec<String>,
    next_rr: usize,
}

impl EventHub {
    /// A hub with `n` empty partitions.
    pub fn new(name: &str, n: u32, groups: &[String], now_ms: i64) -> EventHub {
        let mut consumer_groups: Vec<String> =
            groups.iter().map(|g| g.to_ascii_lowercase()).collect();
        if !consumer_groups.iter().any(|g| g == "$default") {
            consumer_groups.push("$default".into());
        }
        EventHub {
            name: name.to_owned(),
            created_ms: now_ms,
            partitions: (0..n.max(1)).map(|_| Partition::default()).collect(),
            consumer_groups,
            next_rr: 0,
        }
    }

    /// The partition for a message: by key hash when keyed, else round robin.
    pub fn choose(&mut self, key: Option<&str>) -> usize {
        let n = self.partitions.len();
        match key {
            Some(k) => (fnv1a(k.as_bytes()) % n as u64) as usize,
            None => {
                self.next_rr = (self.next_rr + 1) % n;
                self.next_rr
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            annotations: Vec::new(),
            bare: vec![0; 9],
            system: Default::default(),
            app: Default::default(),
            ttl_ms: None,
            scheduled_ms: None,
            partition_key: None,
            edited: Default::default(),
        }
    }

    #[test]
    fn same_partition_key_always_lands_in_the_same_partition() {
        let mut h = EventHub::new("h", 4, &[], 0);
        let p = h.choose(Some("k1"));
        assert!((0..10).all(|_| h.choose(Some("k1")) == p));
    }

    #[test]
    fn positions_find_the_right_events() {
        let mut p = Partition::default();
        for t in 0..5 {
            p.append(msg(), t * 10);
        }
        assert_eq!(p.index_of(Position::Earliest), 0);
        assert_eq!(p.index_of(Position::Latest), 5);
        assert_eq!(p.index_of(Position::Sequence(2, false)), 3);
        assert_eq!(p.index_of(Position::Sequence(2, true)), 2);
        assert_eq!(p.index_of(Position::Offset(-1, false)), 0);
        assert_eq!(p.index_of(Position::Offset(10, false)), 2);
        assert_eq!(p.index_of(Position::Enqueued(20, true)), 2);
    }
}
