//! One queue of messages with peek-lock state: a queue, a subscription or a dead-letter
//! sub-queue. Sequence order, locks, scheduled visibility and expiry.

use super::message::{Delivered, Message, Stored};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What happens to a message after a receiver gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with it: remove.
    Complete,
    /// Give it back: available again, one more delivery counted.
    Abandon,
}

/// Messages of one queue-like node.
#[derive(Debug, Default)]
pub struct MessageStore {
    next_seq: i64,
    available: BTreeMap<i64, Stored>,
    locked: BTreeMap<i64, (Stored, Uuid, i64)>,
    scheduled: BTreeMap<i64, (i64, Stored)>,
}

/// What a receive found.
#[derive(Debug)]
pub enum Taken {
    /// A message for the receiver.
    Message(Box<Delivered>),
    /// An expired message, removed (to be dead-lettered or dropped by the caller).
    Expired(Box<Stored>),
    /// Nothing to receive.
    Empty,
}

impl MessageStore {
    /// Number of messages held, in every state.
    pub fn len(&self) -> usize {
        self.available.len() + self.locked.len() + self.scheduled.len()
    }
    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Messages ready for a receiver.
    pub fn active(&self) -> usize {
        self.available.len() + self.locked.len()
    }

    /// Enqueues a new message; returns its sequence number.
    pub fn enqueue(&mut self, msg: Message, now_ms: i64, default_ttl_ms: Option<i64>) -> i64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        let ttl = msg.ttl_ms.or(default_ttl_ms);
        let visible = msg.scheduled_ms.unwrap_or(now_ms);
        let stored = Stored {
            seq,
            enqueued_ms: visible.max(now_ms),
            delivery_count: 0,
            expires_ms: ttl.map(|t| visible.max(now_ms).saturating_add(t)),
            dead_letter: None,
            msg,
        };
        self.insert(stored, visible, now_ms);
        seq
    }

    /// Puts back a message that already has a sequence number (dead letters, replayed logs).
    pub fn restore(&mut self, stored: Stored, now_ms: i64) {
        self.next_seq = self.next_seq.max(stored.seq);
        let visible = stored.msg.scheduled_ms.unwrap_or(0);
        self.insert(stored, visible, now_ms);
    }

    fn insert(&mut self, stored: Stored, visible_ms: i64, now_ms: i64) {
        if visible_ms > now_ms {
            self.scheduled.insert(stored.seq, (visible_ms, stored));
        } else {
            self.available.insert(stored.seq, stored);
        }
    }

    /// Cancels a scheduled message; `false` if it was not scheduled.
    pub fn cancel_scheduled(&mut self, seq: i64) -> bool {
        self.scheduled.remove(&seq).is_some()
    }

    /// Takes the next message: locked for `lock_ms` when given, else removed.
    pub fn take(&mut self, now_ms: i64, lock_ms: Option<i64>) -> Taken {
        let Some((_, stored)) = self.available.pop_first() else {
            return Taken::Empty;
        };
        if stored.expires_ms.is_some_and(|e| e <= now_ms) {
            return Taken::Expired(Box::new(stored));
        }
        let lock = lock_ms.map(|ms| {
            let token = Uuid::new_v4();
            let until = now_ms + ms;
            self.locked
                .insert(stored.seq, (stored.clone(), token, until));
            (token, until)
        });
        Taken::Message(Box::new(Delivered { stored, lock }))
    }

    /// Settles a locked message; `None` if the lock is unknown or lost.
    pub fn settle(&mut self, seq: i64, token: Uuid, how: Settle) -> Option<Stored> {
        let (_, t, _) = self.locked.get(&seq)?;
        if *t != token {
            return None;
        }
        let (mut stored, _, _) = self.locked.remove(&seq)?;
        if how == Settle::Abandon {
            stored.delivery_count += 1;
            self.available.insert(seq, stored.clone());
        }
        Some(stored)
    }

    /// Removes a locked message (to dead-letter it).
    pub fn remove_locked(&mut self, seq: i64, token: Uuid) -> Option<Stored> {
        match self.locked.get(&seq) {
            Some((_, t, _)) if *t == token => self.locked.remove(&seq).map(|(s, _, _)| s),
            _ => None,
        }
    }

    /// Removes a message in whatever state it is (journal replay, dead-lettering).
    pub fn remove_any(&mut self, seq: i64) {
        self.available.remove(&seq);
        self.locked.remove(&seq);
        self.scheduled.remove(&seq);
    }

    /// Extends a lock; returns the new expiry.
    pub fn renew(&mut self, seq: i64, token: Uuid, now_ms: i64, lock_ms: i64) -> Option<i64> {
        match self.locked.get_mut(&seq) {
            Some((_, t, until)) if *t == token => {
                *until = now_ms + lock_ms;
                Some(*until)
            }
            _ => None,
        }
    }

    /// Releases expired locks and makes due scheduled messages visible. Returns the messages
    /// whose lock expired (their delivery count already raised) and whether anything changed.
    pub fn tick(&mut self, now_ms: i64) -> (Vec<(i64, Uuid)>, bool) {
        let expired: Vec<i64> = self
            .locked
            .iter()
            .filter(|(_, (_, _, u))| *u <= now_ms)
            .map(|(s, _)| *s)
            .collect();
        let mut lost = Vec::new();
        for seq in &expired {
            if let Some((mut s, token, _)) = self.locked.remove(seq) {
                s.delivery_count += 1;
                lost.push((*seq, token));
                self.available.insert(*seq, s);
            }
        }
        let due: Vec<i64> = self
            .scheduled
            .iter()
            .filter(|(_, (v, _))| *v <= now_ms)
            .map(|(s, _)| *s)
            .collect();
        for seq in &due {
            if let Some((_, s)) = self.scheduled.remove(seq) {
                self.available.insert(*seq, s);
            }
        }
        let changed = !expired.is_empty() || !due.is_empty();
        (lost, changed)
    }

    /// Up to `count` messages from sequence number `from`, without locking them.
    pub fn peek(&self, from: i64, count: usize) -> Vec<Stored> {
        let mut all: Vec<&Stored> = self
            .available
            .range(from..)
            .map(|(_, s)| s)
            .chain(self.locked.range(from..).map(|(_, (s, _, _))| s))
            .chain(self.scheduled.range(from..).map(|(_, (_, s))| s))
            .collect();
        all.sort_by_key(|s| s.seq);
        all.into_iter().take(count).cloned().collect()
    }

    /// Drops every message.
    pub fn purge(&mut self) -> usize {
        let n = self.len();
        self.available.clear();
        self.locked.clear();
        self.scheduled.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            annotations: Vec::new(),
            bare: vec![1],
            system: Default::default(),
            app: Default::default(),
            ttl_ms: None,
            scheduled_ms: None,
            partition_key: None,
        }
    }

    #[test]
    fn abandoned_message_comes_back_with_a_higher_delivery_count() {
        let mut s = MessageStore::default();
        s.enqueue(msg(), 0, None);
        let Taken::Message(d) = s.take(0, Some(1000)) else {
            panic!("expected message")
        };
        let (token, _) = d.lock.expect("locked");
        assert!(matches!(s.take(0, Some(1000)), Taken::Empty));
        s.settle(d.stored.seq, token, Settle::Abandon)
            .expect("settles");
        let Taken::Message(again) = s.take(0, Some(1000)) else {
            panic!("redelivered")
        };
        assert_eq!(again.stored.delivery_count, 1);
    }

    #[test]
    fn expired_lock_makes_the_message_available_again() {
        let mut s = MessageStore::default();
        s.enqueue(msg(), 0, None);
        assert!(matches!(s.take(0, Some(10)), Taken::Message(_)));
        let (lost, changed) = s.tick(11);
        assert_eq!(lost.len(), 1);
        assert!(changed);
        assert!(matches!(s.take(11, None), Taken::Message(_)));
    }

    #[test]
    fn scheduled_message_is_invisible_until_due_and_ttl_expires() {
        let mut s = MessageStore::default();
        let mut m = msg();
        m.scheduled_ms = Some(100);
        s.enqueue(m, 0, None);
        assert!(matches!(s.take(50, None), Taken::Empty));
        s.tick(100);
        assert!(matches!(s.take(100, None), Taken::Message(_)));
        s.enqueue(msg(), 0, Some(5));
        assert!(matches!(s.take(10, None), Taken::Expired(_)));
    }
}
