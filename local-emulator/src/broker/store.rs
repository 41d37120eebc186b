//! One queue of messages with peek-lock state: a queue, a subscription or a dead-letter
//! sub-queue. Sequence order, locks, scheduled visibility, expiry, deferral, and the index of
//! available messages by session.

use super::message::{Delivered, Message, Stored};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What happens to a message after a receiver gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with it: remove.
    Complete,
    /// Give it back: available again (or deferred again), one more delivery counted.
    Abandon,
    /// Set it aside: only a receive by sequence number gets it again.
    Defer,
}

/// A message a receiver holds.
#[derive(Debug)]
struct Locked {
    stored: Stored,
    token: Uuid,
    /// When the lock expires (unix ms); `i64::MAX` for messages under a session lock.
    until: i64,
}

/// Messages of one queue-like node.
#[derive(Debug, Default)]
pub struct MessageStore {
    next_seq: i64,
    available: BTreeMap<i64, Stored>,
    /// Sequence numbers of available messages, per session id.
    by_session: BTreeMap<String, BTreeSet<i64>>,
    locked: BTreeMap<i64, Locked>,
    scheduled: BTreeMap<i64, (i64, Stored)>,
    deferred: BTreeMap<i64, Stored>,
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

/// Message counts by state, for runtime properties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Available or locked.
    pub active: usize,
    /// Scheduled for later.
    pub scheduled: usize,
    /// Deferred.
    pub deferred: usize,
    /// Bytes of every message held.
    pub bytes: usize,
}

impl MessageStore {
    /// Number of messages held, in every state.
    pub fn len(&self) -> usize {
        self.available.len() + self.locked.len() + self.scheduled.len() + self.deferred.len()
    }
    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Counts by state.
    pub fn counts(&self) -> Counts {
        let bytes = self.available.values().map(|s| s.msg.size()).sum::<usize>()
            + self
                .locked
                .values()
                .map(|l| l.stored.msg.size())
                .sum::<usize>()
            + self
                .scheduled
                .values()
                .map(|(_, s)| s.msg.size())
                .sum::<usize>()
            + self.deferred.values().map(|s| s.msg.size()).sum::<usize>();
        Counts {
            active: self.available.len() + self.locked.len(),
            scheduled: self.scheduled.len(),
            deferred: self.deferred.len(),
            bytes,
        }
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
            deferred: false,
            msg,
        };
        self.insert(stored, visible, now_ms);
        seq
    }

    /// Puts back a message that already has a sequence number (dead letters, replayed logs),
    /// replacing any message with the same number.
    pub fn restore(&mut self, stored: Stored, now_ms: i64) {
        self.remove_any(stored.seq);
        self.next_seq = self.next_seq.max(stored.seq);
        if stored.deferred {
            self.deferred.insert(stored.seq, stored);
            return;
        }
        let visible = stored.msg.scheduled_ms.unwrap_or(0);
        self.insert(stored, visible, now_ms);
    }

    fn insert(&mut self, stored: Stored, visible_ms: i64, now_ms: i64) {
        if visible_ms > now_ms {
            self.scheduled.insert(stored.seq, (visible_ms, stored));
        } else {
            self.make_available(stored);
        }
    }

    fn make_available(&mut self, stored: Stored) {
        if let Some(s) = stored.session() {
            self.by_session
                .entry(s.to_owned())
                .or_default()
                .insert(stored.seq);
        }
        self.available.insert(stored.seq, stored);
    }

    fn take_available(&mut self, seq: i64) -> Option<Stored> {
        let stored = self.available.remove(&seq)?;
        if let Some(s) = stored.session() {
            if let Some(set) = self.by_session.get_mut(s) {
                set.remove(&seq);
                if set.is_empty() {
                    self.by_session.remove(s);
                }
            }
        }
        Some(stored)
    }

    /// Puts a message back after a receiver let it go: where it came from, one more delivery.
    fn give_back(&mut self, mut stored: Stored) {
        stored.delivery_count += 1;
        if stored.deferred {
            self.deferred.insert(stored.seq, stored);
        } else {
            self.make_available(stored);
        }
    }

    /// Cancels a scheduled message; `false` if it was not scheduled.
    pub fn cancel_scheduled(&mut self, seq: i64) -> bool {
        self.scheduled.remove(&seq).is_some()
    }

    /// Takes the next message (of `session`, when given): locked until `lock_until` when
    /// given, else removed.
    pub fn take(&mut self, now_ms: i64, lock_until: Option<i64>, session: Option<&str>) -> Taken {
        let next = match session {
            None => self.available.keys().next().copied(),
            Some(s) => self
                .by_session
                .get(s)
                .and_then(|set| set.iter().next().copied()),
        };
        let Some(stored) = next.and_then(|seq| self.take_available(seq)) else {
            return Taken::Empty;
        };
        if stored.expires_ms.is_some_and(|e| e <= now_ms) {
            return Taken::Expired(Box::new(stored));
        }
        Taken::Message(Box::new(self.hand_out(stored, lock_until)))
    }

    /// Takes a deferred message by sequence number: locked until `lock_until` when given,
    /// else removed. `None` if no deferred message has that number.
    pub fn take_deferred(&mut self, seq: i64, lock_until: Option<i64>) -> Option<Delivered> {
        let stored = self.deferred.remove(&seq)?;
        Some(self.hand_out(stored, lock_until))
    }

    /// Whether a deferred message has this sequence number (in `session`, when given).
    pub fn is_deferred(&self, seq: i64, session: Option<&str>) -> bool {
        self.deferred
            .get(&seq)
            .is_some_and(|s| session.is_none() || s.session() == session)
    }

    fn hand_out(&mut self, stored: Stored, lock_until: Option<i64>) -> Delivered {
        let lock = lock_until.map(|until| {
            let token = Uuid::new_v4();
            self.locked.insert(
                stored.seq,
                Locked {
                    stored: stored.clone(),
                    token,
                    until,
                },
            );
            (token, until)
        });
        Delivered { stored, lock }
    }

    /// The session whose first available message came first, among those `locked` says are
    /// free.
    pub fn next_session(&self, locked: impl Fn(&str) -> bool) -> Option<String> {
        self.by_session
            .iter()
            .filter(|(s, _)| !locked(s))
            .filter_map(|(s, seqs)| seqs.iter().next().map(|first| (*first, s)))
            .min()
            .map(|(_, s)| s.clone())
    }

    /// Settles a locked message; `None` if the lock is unknown or lost.
    pub fn settle(&mut self, seq: i64, token: Uuid, how: Settle) -> Option<Stored> {
        if self.locked.get(&seq)?.token != token {
            return None;
        }
        let Locked { mut stored, .. } = self.locked.remove(&seq)?;
        match how {
            Settle::Complete => {}
            Settle::Abandon => {
                self.give_back(stored.clone());
                stored.delivery_count += 1;
            }
            Settle::Defer => {
                stored.deferred = true;
                self.deferred.insert(seq, stored.clone());
            }
        }
        Some(stored)
    }

    /// Sets application properties of a message that is available or deferred (a receiver's
    /// `properties-to-modify` when it gives a message back). Returns the changed message.
    pub fn set_properties(
        &mut self,
        seq: i64,
        props: &[(String, super::message::PropValue)],
    ) -> Option<Stored> {
        let s = match self.available.get_mut(&seq) {
            Some(s) => s,
            None => self.deferred.get_mut(&seq)?,
        };
        for (k, v) in props {
            s.msg.app.insert(k.clone(), v.clone());
            s.msg.edited.insert(format!("user.{k}"));
        }
        Some(s.clone())
    }

    /// Removes a locked message (to dead-letter it).
    pub fn remove_locked(&mut self, seq: i64, token: Uuid) -> Option<Stored> {
        match self.locked.get(&seq) {
            Some(l) if l.token == token => self.locked.remove(&seq).map(|l| l.stored),
            _ => None,
        }
    }

    /// Removes a message in whatever state it is (journal replay, dead-lettering).
    pub fn remove_any(&mut self, seq: i64) {
        self.take_available(seq);
        self.locked.remove(&seq);
        self.scheduled.remove(&seq);
        self.deferred.remove(&seq);
    }

    /// Extends a lock; returns the new expiry.
    pub fn renew(&mut self, seq: i64, token: Uuid, until: i64) -> Option<i64> {
        match self.locked.get_mut(&seq) {
            Some(l) if l.token == token => {
                l.until = until;
                Some(until)
            }
            _ => None,
        }
    }

    /// Gives back every message locked under `session`'s lock (the lock was released or
    /// lost). Returns their lock tokens.
    pub fn release_session(&mut self, session: &str) -> Vec<Uuid> {
        let seqs: Vec<i64> = self
            .locked
            .iter()
            .filter(|(_, l)| l.until == i64::MAX && l.stored.session() == Some(session))
            .map(|(s, _)| *s)
            .collect();
        let mut tokens = Vec::new();
        for seq in seqs {
            if let Some(l) = self.locked.remove(&seq) {
                tokens.push(l.token);
                self.give_back(l.stored);
            }
        }
        tokens
    }

    /// Releases expired locks and makes due scheduled messages visible. Returns the tokens of
    /// the locks that expired (their messages' delivery counts already raised) and whether
    /// anything changed.
    pub fn tick(&mut self, now_ms: i64) -> (Vec<Uuid>, bool) {
        let expired: Vec<i64> = self
            .locked
            .iter()
            .filter(|(_, l)| l.until <= now_ms)
            .map(|(s, _)| *s)
            .collect();
        let mut lost = Vec::new();
        for seq in &expired {
            if let Some(l) = self.locked.remove(seq) {
                lost.push(l.token);
                self.give_back(l.stored);
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
                self.make_available(s);
            }
        }
        let changed = !expired.is_empty() || !due.is_empty();
        (lost, changed)
    }

    /// Up to `count` messages (of `session`, when given) from sequence number `from`, in every
    /// state, without locking them.
    pub fn peek(&self, from: i64, count: usize, session: Option<&str>) -> Vec<Stored> {
        let mut all: Vec<&Stored> = self
            .available
            .range(from..)
            .map(|(_, s)| s)
            .chain(self.locked.range(from..).map(|(_, l)| &l.stored))
            .chain(self.scheduled.range(from..).map(|(_, (_, s))| s))
            .chain(self.deferred.range(from..).map(|(_, s)| s))
            .filter(|s| session.is_none() || s.session() == session)
            .collect();
        all.sort_by_key(|s| s.seq);
        all.into_iter().take(count).cloned().collect()
    }

    /// Drops every message.
    pub fn purge(&mut self) -> usize {
        let n = self.len();
        self.available.clear();
        self.by_session.clear();
        self.locked.clear();
        self.scheduled.clear();
        self.deferred.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            bare: vec![1],
            ..Default::default()
        }
    }

    fn in_session(s: &str) -> Message {
        let mut m = msg();
        m.system.session_id = Some(s.into());
        m
    }

    #[test]
    fn abandoned_message_comes_back_with_a_higher_delivery_count() {
        let mut s = MessageStore::default();
        s.enqueue(msg(), 0, None);
        let Taken::Message(d) = s.take(0, Some(1000), None) else {
            panic!("expected message")
        };
        let (token, _) = d.lock.expect("locked");
        assert!(matches!(s.take(0, Some(1000), None), Taken::Empty));
        s.settle(d.stored.seq, token, Settle::Abandon)
            .expect("settles");
        let Taken::Message(again) = s.take(0, Some(1000), None) else {
            panic!("redelivered")
        };
        assert_eq!(again.stored.delivery_count, 1);
    }

    #[test]
    fn expired_lock_makes_the_message_available_again() {
        let mut s = MessageStore::default();
        s.enqueue(msg(), 0, None);
        assert!(matches!(s.take(0, Some(10), None), Taken::Message(_)));
        let (lost, changed) = s.tick(11);
        assert_eq!(lost.len(), 1);
        assert!(changed);
        assert!(matches!(s.take(11, None, None), Taken::Message(_)));
    }

    #[test]
    fn scheduled_message_is_invisible_until_due_and_ttl_expires() {
        let mut s = MessageStore::default();
        let mut m = msg();
        m.scheduled_ms = Some(100);
        s.enqueue(m, 0, None);
        assert!(matches!(s.take(50, None, None), Taken::Empty));
        s.tick(100);
        assert!(matches!(s.take(100, None, None), Taken::Message(_)));
        s.enqueue(msg(), 0, Some(5));
        assert!(matches!(s.take(10, None, None), Taken::Expired(_)));
    }

    #[test]
    fn a_session_receiver_gets_only_its_sessions_messages_in_order() {
        let mut s = MessageStore::default();
        for id in ["a", "b", "a", "b", "a"] {
            s.enqueue(in_session(id), 0, None);
        }
        let mut got = Vec::new();
        while let Taken::Message(d) = s.take(0, None, Some("a")) {
            got.push(d.stored.seq);
        }
        assert_eq!(got, vec![1, 3, 5]);
        assert_eq!(s.next_session(|_| false).as_deref(), Some("b"));
        assert_eq!(s.next_session(|id| id == "b"), None);
    }

    #[test]
    fn next_session_is_the_one_whose_first_message_came_first() {
        let mut s = MessageStore::default();
        for id in ["c", "a", "b"] {
            s.enqueue(in_session(id), 0, None);
        }
        assert_eq!(s.next_session(|_| false).as_deref(), Some("c"));
        assert_eq!(s.next_session(|id| id == "c").as_deref(), Some("a"));
    }

    #[test]
    fn releasing_a_session_gives_back_its_locked_messages() {
        let mut s = MessageStore::default();
        s.enqueue(in_session("a"), 0, None);
        s.enqueue(in_session("b"), 0, None);
        assert!(matches!(
            s.take(0, Some(i64::MAX), Some("a")),
            Taken::Message(_)
        ));
        assert!(matches!(
            s.take(0, Some(i64::MAX), Some("b")),
            Taken::Message(_)
        ));
        assert_eq!(s.release_session("a").len(), 1);
        let Taken::Message(d) = s.take(0, None, Some("a")) else {
            panic!("released message is available again")
        };
        assert_eq!(d.stored.delivery_count, 1);
        assert!(matches!(s.take(0, None, Some("b")), Taken::Empty));
    }

    #[test]
    fn a_deferred_message_is_received_only_by_sequence_number() {
        let mut s = MessageStore::default();
        let seq = s.enqueue(msg(), 0, None);
        let Taken::Message(d) = s.take(0, Some(100), None) else {
            panic!("message")
        };
        s.settle(seq, d.lock.expect("lock").0, Settle::Defer)
            .expect("defers");
        assert!(matches!(s.take(0, Some(100), None), Taken::Empty));
        assert_eq!(s.peek(0, 10, None).len(), 1);
        assert!(s.is_deferred(seq, None));
        let again = s.take_deferred(seq, Some(100)).expect("by sequence number");
        let token = again.lock.expect("locked").0;
        s.settle(seq, token, Settle::Abandon).expect("abandons");
        assert!(s.is_deferred(seq, None), "abandoned, it stays deferred");
        let last = s.take_deferred(seq, Some(100)).expect("again");
        s.settle(seq, last.lock.expect("lock").0, Settle::Complete)
            .expect("completes");
        assert!(s.is_empty());
    }
}
