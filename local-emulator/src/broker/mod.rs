//! Broker state: queues, topics with subscriptions and rules, dead-letter sub-queues, locks
//! and event hubs. Pure state driven by method calls; no protocol types and no I/O.
//! [`handle::BrokerHandle`] shares it between connections and journals it to disk.

pub mod address;
mod dedup;
mod entities;
pub mod eventhub;
pub mod filter;
pub mod handle;
pub mod message;
mod readers;
mod rules;
mod sessions;
pub mod store;
mod topology;
mod views;

pub use address::Address;
pub use entities::{EntityTimes, Put};
pub use topology::{
    HubSpec, QueueSpec, RuleSpec, StoreSettings, SubscriptionSpec, TopicSpec, Topology,
};
pub use views::{EntityCount, HubInfo, PartitionInfo};

use eventhub::{Event, EventHub};
use message::{Delivered, Message, PropValue, Stored};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use store::{MessageStore, Settle, Taken};
use uuid::Uuid;

/// Why the broker refused an operation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BrokerError {
    /// No such entity.
    #[error("the messaging entity '{0}' could not be found")]
    NotFound(String),
    /// The operation does not apply to this kind of node.
    #[error("operation not supported on '{0}'")]
    NotSupported(String),
    /// The operation is not allowed on this entity as it is configured.
    #[error("{0}")]
    NotAllowed(String),
    /// The lock token is unknown or its lock was lost.
    #[error(
        "the lock supplied is invalid: either the lock expired or the message was already settled"
    )]
    LockLost,
    /// Another receiver holds the session.
    #[error("the session '{0}' is locked by another receiver")]
    SessionCannotBeLocked(String),
    /// The session lock expired or was released.
    #[error("the session lock for '{0}' was lost; accept the session again")]
    SessionLockLost(String),
    /// No unlocked session has messages.
    #[error("no unlocked session with messages is available")]
    NoSessionAvailable,
    /// No deferred message has the sequence number.
    #[error("no deferred message has the sequence number {0}")]
    MessageNotFound(i64),
    /// A receiver with a higher epoch owns the partition.
    #[error("{0}")]
    LinkStolen(String),
    /// Something with that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
}

/// Identifies one queue-like store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreKey {
    /// A queue.
    Queue(String),
    /// A queue's dead-letter sub-queue.
    QueueDlq(String),
    /// A subscription.
    Sub(String, String),
    /// A subscription's dead-letter sub-queue.
    SubDlq(String, String),
}

/// A change to durable state, for the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A message entered a store (or changed state in it, such as being deferred).
    Put(StoreKey, Stored),
    /// A message left a store.
    Remove(StoreKey, i64),
    /// An event was appended to a partition.
    Append(String, usize, Event),
    /// A session's state was set (`None` clears it).
    SessionState(StoreKey, String, Option<Vec<u8>>),
    /// An entity with duplicate detection saw a message id at a time (unix ms).
    Seen(String, String, i64),
    /// A rule was added to a subscription (topic, subscription, rule).
    AddRule(String, String, RuleSpec),
    /// A rule was removed from a subscription (topic, subscription, rule name).
    RemoveRule(String, String, String),
    /// A queue was created or updated.
    PutQueue(QueueSpec),
    /// A topic was created or updated (its subscriptions come with their own ops).
    PutTopic(TopicSpec),
    /// A subscription of a topic was created or updated.
    PutSubscription(String, SubscriptionSpec),
    /// A queue or topic was deleted, with what it held.
    DeleteEntity(String),
    /// A subscription was deleted (topic, subscription).
    DeleteSubscription(String, String),
}

/// What kind of node an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A queue-like store that can be received from and maybe sent to.
    Queue,
    /// A topic (send only).
    Topic,
    /// An event hub or one of its partitions (send).
    Hub,
    /// An event hub partition reader.
    Consumer,
}

/// How many times a message is forwarded (`ForwardTo`) at most; a cycle stops there.
const MAX_FORWARDS: u8 = 4;

/// What a sender without a session id is told by a session queue.
const NO_SESSION_ID: &str = "The SessionId was not set on a message, and it cannot be sent to the entity. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value.";

struct Subscription {
    rules: Vec<RuleSpec>,
}

impl Subscription {
    /// The copies of `msg` this subscription takes: one if any rule without an action
    /// matches, plus one per matching rule with an action (that action applied, and a
    /// `RuleName` property naming the rule), as Service Bus does.
    fn copies(&self, msg: &Message) -> Vec<Message> {
        let mut plain = false;
        let mut out = Vec::new();
        for r in self.rules.iter().filter(|r| r.filter.matches(msg)) {
            match &r.action {
                None => plain = true,
                Some(a) => {
                    let mut m = msg.clone();
                    a.apply(&mut m);
                    m.app
                        .insert("RuleName".into(), PropValue::Str(r.name.clone()));
                    m.edited.insert("user.RuleName".into());
                    out.push(m);
                }
            }
        }
        if plain {
            out.insert(0, msg.clone());
        }
        out
    }
}

/// All broker state.
pub struct Broker {
    stores: BTreeMap<StoreKey, MessageStore>,
    settings: HashMap<StoreKey, StoreSettings>,
    topics: BTreeMap<String, BTreeMap<String, Subscription>>,
    hubs: BTreeMap<String, EventHub>,
    locks: HashMap<Uuid, (StoreKey, i64)>,
    names: HashMap<String, String>,
    journal: Vec<Op>,
    sessions: HashMap<StoreKey, BTreeMap<String, sessions::SessionInfo>>,
    dedup: HashMap<String, dedup::History>,
    readers: readers::Readers,
    /// Creation and last update (unix ms) of queues, topics and subscriptions, by path.
    times: HashMap<String, (i64, i64)>,
}

impl Broker {
    /// A broker serving `t`.
    pub fn new(t: &Topology, now_ms: i64) -> Broker {
        let mut b = Broker {
            stores: BTreeMap::new(),
            settings: HashMap::new(),
            topics: BTreeMap::new(),
            hubs: BTreeMap::new(),
            locks: HashMap::new(),
            names: HashMap::new(),
            journal: Vec::new(),
            sessions: HashMap::new(),
            dedup: HashMap::new(),
            readers: Default::default(),
            times: HashMap::new(),
        };
        for q in &t.queues {
            b.install_queue(q, now_ms);
        }
        for topic in &t.topics {
            b.install_topic(topic, now_ms);
            for sub in &topic.subscriptions {
                b.install_subscription(&topic.name, sub, now_ms);
            }
        }
        for h in &t.hubs {
            let hn = h.name.to_ascii_lowercase();
            b.names.insert(hn.clone(), h.name.clone());
            b.hubs.insert(
                hn,
                EventHub::new(&h.name, h.partitions, &h.consumer_groups, now_ms),
            );
        }
        b
    }

    /// Changes since the last call, for the journal.
    pub fn drain_journal(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.journal)
    }

    /// Re-applies a journaled change (start-up replay).
    pub fn replay(&mut self, op: Op, now_ms: i64) {
        match op {
            Op::Put(k, s) => {
                if let Some(st) = self.stores.get_mut(&k) {
                    st.restore(s, now_ms)
                }
            }
            Op::Remove(k, seq) => {
                if let Some(st) = self.stores.get_mut(&k) {
                    st.remove_any(seq)
                }
            }
            Op::Append(h, p, e) => {
                if let Some(part) = self.hubs.get_mut(&h).and_then(|h| h.partitions.get_mut(p)) {
                    part.restore(e)
                }
            }
            Op::SessionState(k, s, state) => self.restore_session_state(k, s, state),
            Op::Seen(e, id, at) => {
                if let Some(h) = self.dedup.get_mut(&e) {
                    h.record(id, at);
                }
            }
            Op::AddRule(t, s, r) => {
                let _ = self.add_rule(&t, &s, r);
            }
            Op::RemoveRule(t, s, name) => {
                let _ = self.remove_rule(&t, &s, &name);
            }
            Op::PutQueue(q) => {
                let _ = self.put_queue(q, Put::Upsert, now_ms);
            }
            Op::PutTopic(t) => {
                let _ = self.put_topic(t, Put::Upsert, now_ms);
            }
            Op::PutSubscription(t, sub) => {
                let _ = self.put_subscription(&t, sub, Put::Upsert, now_ms);
            }
            Op::DeleteEntity(name) => {
                let _ = self.delete_entity(&name);
            }
            Op::DeleteSubscription(t, sub) => {
                let _ = self.delete_subscription(&t, &sub);
            }
        }
    }

    /// The store an address names.
    pub fn store_key(&self, a: &Address) -> Result<StoreKey, BrokerError> {
        let k = match a {
            Address::Entity(e) => StoreKey::Queue(e.clone()),
            Address::DeadLetter(e) => StoreKey::QueueDlq(e.clone()),
            Address::Subscription(t, s) => StoreKey::Sub(t.clone(), s.clone()),
            Address::SubscriptionDeadLetter(t, s) => StoreKey::SubDlq(t.clone(), s.clone()),
            Address::Management(Some(e)) => {
                return self
                    .store_key(&Address::parse(e).map_err(|_| BrokerError::NotFound(e.clone()))?)
            }
            other => return Err(BrokerError::NotSupported(other.to_string())),
        };
        if self.stores.contains_key(&k) {
            Ok(k)
        } else {
            Err(BrokerError::NotFound(a.to_string()))
        }
    }

    /// Every store a send to `a` can land in (a queue, or each subscription of a topic).
    pub fn store_keys_for(&self, a: &Address) -> Vec<StoreKey> {
        match a {
            Address::Entity(t) if self.topics.contains_key(t) => self.topics[t]
                .keys()
                .map(|s| StoreKey::Sub(t.clone(), s.clone()))
                .collect(),
            _ => self.store_key(a).into_iter().collect(),
        }
    }

    /// What kind of node an address names, or `NotFound`.
    pub fn kind(&self, a: &Address) -> Result<NodeKind, BrokerError> {
        match a {
            Address::Entity(e) if self.topics.contains_key(e) => Ok(NodeKind::Topic),
            Address::Entity(e) if self.hubs.contains_key(e) => Ok(NodeKind::Hub),
            Address::Partition(h, p)
                if self
                    .hubs
                    .get(h)
                    .is_some_and(|x| (*p as usize) < x.partitions.len()) =>
            {
                Ok(NodeKind::Hub)
            }
            Address::Consumer(h, cg, p)
                if self.hubs.get(h).is_some_and(|x| {
                    (*p as usize) < x.partitions.len() && x.consumer_groups.contains(cg)
                }) =>
            {
                Ok(NodeKind::Consumer)
            }
            Address::Partition(h, _) | Address::Consumer(h, _, _) => {
                Err(BrokerError::NotFound(h.clone()))
            }
            other => self.store_key(other).map(|_| NodeKind::Queue),
        }
    }

    /// Sends a message to a queue, topic, hub or partition. Returns the sequence numbers given
    /// (none for a duplicate that duplicate detection dropped).
    pub fn send(
        &mut self,
        a: &Address,
        msg: Message,
        now_ms: i64,
    ) -> Result<Vec<i64>, BrokerError> {
        self.send_at(a, msg, now_ms, 0)
    }

    /// [`Broker::send`] at a depth of forwarding: a forwarded copy is not checked for
    /// duplicates again (it is the one that passed), and forwarding stops at a depth of four.
    fn send_at(
        &mut self,
        a: &Address,
        msg: Message,
        now_ms: i64,
        depth: u8,
    ) -> Result<Vec<i64>, BrokerError> {
        let kind = self.kind(a)?;
        if let (NodeKind::Queue | NodeKind::Topic, Address::Entity(e)) = (kind, a) {
            if kind == NodeKind::Queue
                && msg.system.session_id.is_none()
                && self.requires_session(&StoreKey::Queue(e.clone()))
            {
                return Err(BrokerError::NotAllowed(NO_SESSION_ID.into()));
            }
            if depth == 0 && self.is_duplicate(e, &msg, now_ms) {
                return Ok(Vec::new());
            }
        }
        match (kind, a) {
            (NodeKind::Topic, Address::Entity(t)) => {
                let copies: Vec<(String, Message)> = self.topics[t]
                    .iter()
                    .flat_map(|(name, sub)| {
                        sub.copies(&msg).into_iter().map(move |m| (name.clone(), m))
                    })
                    .collect();
                let mut seqs = Vec::new();
                for (s, m) in copies {
                    seqs.push(self.enqueue(StoreKey::Sub(t.clone(), s), m, now_ms, depth));
                }
                Ok(seqs)
            }
            (NodeKind::Hub, Address::Entity(h) | Address::Partition(h, _)) => {
                let hub = self
                    .hubs
                    .get_mut(h)
                    .ok_or_else(|| BrokerError::NotFound(h.clone()))?;
                let p = match a {
                    Address::Partition(_, p) => *p as usize,
                    _ => hub.choose(msg.partition_key.as_deref()),
                };
                let e = hub.partitions[p].append(msg, now_ms);
                let seq = e.seq;
                self.journal.push(Op::Append(h.clone(), p, e));
                Ok(vec![seq])
            }
            (NodeKind::Queue, _) => {
                let k = self.store_key(a)?;
                Ok(vec![self.enqueue(k, msg, now_ms, depth)])
            }
            _ => Err(BrokerError::NotSupported(a.to_string())),
        }
    }

    fn enqueue(&mut self, k: StoreKey, msg: Message, now_ms: i64, depth: u8) -> i64 {
        let fwd = self.settings.get(&k).and_then(|s| s.forward_to.clone());
        let mut forward_failed = None;
        if let (Some(f), true) = (fwd, depth < MAX_FORWARDS) {
            if let Ok(a) = Address::parse(&f) {
                if let Ok(NodeKind::Topic | NodeKind::Queue) = self.kind(&a) {
                    match self.send_at(&a, msg.clone(), now_ms, depth + 1) {
                        Ok(seqs) => return seqs.first().copied().unwrap_or(0),
                        Err(e) => forward_failed = Some(format!("forwarding to '{f}' failed: {e}")),
                    }
                }
            }
        }
        let ttl = self.settings.get(&k).and_then(|s| s.ttl_ms);
        let Some(store) = self.stores.get_mut(&k) else {
            return 0;
        };
        let seq = store.enqueue(msg, now_ms, ttl);
        let Some(s) = store.peek(seq, 1, None).into_iter().next() else {
            return seq;
        };
        if let Some(why) = forward_failed {
            // Kept where it was sent, as a dead letter that says why, rather than lost.
            if let Some(st) = self.stores.get_mut(&k) {
                st.remove_any(seq);
            }
            self.move_to_dead_letter(&k, s, "ForwardingFailed", &why, now_ms);
            return seq;
        }
        if s.session().is_none() && self.requires_session(&k) {
            // A topic's copy for a session subscription: dead-lettered, as Service Bus does.
            if let Some(st) = self.stores.get_mut(&k) {
                st.remove_any(seq);
            }
            let desc =
                "Session enabled entity doesn't allow a message whose session identifier is null.";
            self.move_to_dead_letter(&k, s, "Session id is null.", desc, now_ms);
            return seq;
        }
        self.journal.push(Op::Put(k, s));
        seq
    }

    /// Receives one message from a queue-like node; peek-lock when `lock` is true.
    pub fn receive(&mut self, k: &StoreKey, now_ms: i64, lock: bool) -> Option<Delivered> {
        let lock_ms = self.settings.get(k)?.lock_ms;
        self.take_from(k, now_ms, lock.then_some(now_ms + lock_ms), None)
    }

    /// Takes the next message of a store (of one session, when given), handling expired ones
    /// on the way; registers its lock, or journals its removal when it is not locked.
    fn take_from(
        &mut self,
        k: &StoreKey,
        now_ms: i64,
        lock_until: Option<i64>,
        session: Option<&str>,
    ) -> Option<Delivered> {
        let dlq_on_expiry = self.settings.get(k)?.dlq_on_expiry;
        loop {
            match self.stores.get_mut(k)?.take(now_ms, lock_until, session) {
                Taken::Empty => return None,
                Taken::Expired(s) => {
                    self.journal.push(Op::Remove(k.clone(), s.seq));
                    if dlq_on_expiry {
                        self.move_to_dead_letter(
                            k,
                            *s,
                            "TTLExpiredException",
                            "The message expired",
                            now_ms,
                        );
                    }
                }
                Taken::Message(d) => {
                    self.handed_out(k, &d);
                    return Some(*d);
                }
            }
        }
    }

    /// Registers a handed-out message's lock, or journals its removal when it has none.
    fn handed_out(&mut self, k: &StoreKey, d: &Delivered) {
        match d.lock {
            Some((token, _)) => {
                self.locks.insert(token, (k.clone(), d.stored.seq));
            }
            None => self.journal.push(Op::Remove(k.clone(), d.stored.seq)),
        }
    }

    fn move_to_dead_letter(
        &mut self,
        k: &StoreKey,
        mut s: Stored,
        reason: &str,
        desc: &str,
        now_ms: i64,
    ) {
        let dlq = match k {
            StoreKey::Queue(q) => StoreKey::QueueDlq(q.clone()),
            StoreKey::Sub(t, n) => StoreKey::SubDlq(t.clone(), n.clone()),
            _ => return,
        };
        s.dead_letter = Some((reason.to_owned(), desc.to_owned()));
        s.expires_ms = None;
        s.deferred = false;
        if let Some(st) = self.stores.get_mut(&dlq) {
            st.restore(s.clone(), now_ms);
            self.journal.push(Op::Put(dlq, s));
        }
    }

    /// Completes (removes) a locked message.
    pub fn complete(&mut self, token: Uuid) -> Result<(), BrokerError> {
        let (k, seq) = self.locks.remove(&token).ok_or(BrokerError::LockLost)?;
        let st = self.stores.get_mut(&k).ok_or(BrokerError::LockLost)?;
        st.settle(seq, token, Settle::Complete)
            .ok_or(BrokerError::LockLost)?;
        self.journal.push(Op::Remove(k, seq));
        Ok(())
    }

    /// Abandons a locked message: redelivered later, dead-lettered past the max delivery count.
    pub fn abandon(
        &mut self,
        token: Uuid,
        now_ms: i64,
        props: &[(String, PropValue)],
    ) -> Result<(), BrokerError> {
        let (k, seq) = self.locks.remove(&token).ok_or(BrokerError::LockLost)?;
        let max = self.settings.get(&k).map_or(u32::MAX, |s| s.max_delivery);
        let st = self.stores.get_mut(&k).ok_or(BrokerError::LockLost)?;
        let mut s = st
            .settle(seq, token, Settle::Abandon)
            .ok_or(BrokerError::LockLost)?;
        if let Some(changed) = st.set_properties(seq, props) {
            s = changed;
            self.journal.push(Op::Put(k.clone(), s.clone()));
        }
        if s.delivery_count >= max {
            st.remove_any(seq);
            self.journal.push(Op::Remove(k.clone(), seq));
            self.move_to_dead_letter(
                &k,
                s,
                "MaxDeliveryCountExceeded",
                "Message could not be consumed after maximum delivery attempts",
                now_ms,
            );
        }
        Ok(())
    }

    /// Moves a locked message to its dead-letter sub-queue.
    pub fn dead_letter(
        &mut self,
        token: Uuid,
        reason: &str,
        desc: &str,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        let (k, seq) = self.locks.remove(&token).ok_or(BrokerError::LockLost)?;
        let st = self.stores.get_mut(&k).ok_or(BrokerError::LockLost)?;
        let s = st.remove_locked(seq, token).ok_or(BrokerError::LockLost)?;
        self.journal.push(Op::Remove(k.clone(), seq));
        self.move_to_dead_letter(&k, s, reason, desc, now_ms);
        Ok(())
    }

    /// Defers a locked message: it leaves the queue's order and is received only by its
    /// sequence number.
    pub fn defer(&mut self, token: Uuid, props: &[(String, PropValue)]) -> Result<(), BrokerError> {
        let (k, seq) = self.locks.remove(&token).ok_or(BrokerError::LockLost)?;
        let st = self.stores.get_mut(&k).ok_or(BrokerError::LockLost)?;
        let mut s = st
            .settle(seq, token, Settle::Defer)
            .ok_or(BrokerError::LockLost)?;
        if let Some(changed) = st.set_properties(seq, props) {
            s = changed;
        }
        s.deferred = true;
        self.journal.push(Op::Put(k, s));
        Ok(())
    }

    /// Receives deferred messages by sequence number (of `session`, when given): all of them,
    /// or none if any is not deferred there. Locked when `lock` is true, else removed.
    pub fn receive_deferred(
        &mut self,
        k: &StoreKey,
        seqs: &[i64],
        session: Option<&str>,
        lock: bool,
        now_ms: i64,
    ) -> Result<Vec<Delivered>, BrokerError> {
        let lock_ms = self
            .settings
            .get(k)
            .ok_or_else(|| BrokerError::NotFound(k.to_string()))?
            .lock_ms;
        let st = self
            .stores
            .get(k)
            .ok_or_else(|| BrokerError::NotFound(k.to_string()))?;
        if session.is_none() && self.requires_session(k) {
            return Err(BrokerError::NotAllowed(
                "messages of a session entity are received by sequence number through a session receiver (session-id)".into(),
            ));
        }
        if let Some(missing) = seqs.iter().find(|s| !st.is_deferred(**s, session)) {
            return Err(BrokerError::MessageNotFound(*missing));
        }
        let until = match session {
            Some(s) => self.session_until(k, s, now_ms)?,
            None => now_ms + lock_ms,
        };
        let held = if session.is_some() { i64::MAX } else { until };
        let mut out = Vec::new();
        for seq in seqs {
            let Some(st) = self.stores.get_mut(k) else {
                break;
            };
            if let Some(mut d) = st.take_deferred(*seq, lock.then_some(held)) {
                self.handed_out(k, &d);
                if let Some(l) = d.lock.as_mut() {
                    l.1 = until;
                }
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Renews a lock; returns the new expiry (unix ms).
    pub fn renew(&mut self, token: Uuid, now_ms: i64) -> Result<i64, BrokerError> {
        let (k, seq) = self
            .locks
            .get(&token)
            .cloned()
            .ok_or(BrokerError::LockLost)?;
        if self.requires_session(&k) {
            return Err(BrokerError::NotAllowed(
                "messages of a session are locked by the session: renew the session lock".into(),
            ));
        }
        let lock_ms = self.settings.get(&k).map_or(60_000, |s| s.lock_ms);
        let st = self.stores.get_mut(&k).ok_or(BrokerError::LockLost)?;
        st.renew(seq, token, now_ms + lock_ms)
            .ok_or(BrokerError::LockLost)
    }

    /// Peeks messages of a queue-like node (of one session, when given).
    pub fn peek(
        &self,
        k: &StoreKey,
        from: i64,
        count: usize,
        session: Option<&str>,
    ) -> Vec<Stored> {
        self.stores
            .get(k)
            .map(|s| s.peek(from, count, session))
            .unwrap_or_default()
    }

    /// Message counts by state of a queue-like node.
    pub fn counts(&self, k: &StoreKey) -> Option<store::Counts> {
        self.stores.get(k).map(MessageStore::counts)
    }

    /// Cancels scheduled messages by sequence number.
    pub fn cancel_scheduled(&mut self, k: &StoreKey, seqs: &[i64]) {
        for seq in seqs {
            if self
                .stores
                .get_mut(k)
                .is_some_and(|st| st.cancel_scheduled(*seq))
            {
                self.journal.push(Op::Remove(k.clone(), *seq));
            }
        }
    }

    /// Lock expiry (messages and sessions), scheduled visibility, the end of duplicate
    /// detection windows. Returns whether receivers may have work.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        let mut any = self.expire_session_locks(now_ms);
        for h in self.dedup.values_mut() {
            h.prune(now_ms);
        }
        let keys: Vec<StoreKey> = self.stores.keys().cloned().collect();
        for k in keys {
            let (lost, changed) = match self.stores.get_mut(&k) {
                Some(st) => st.tick(now_ms),
                None => continue,
            };
            any |= changed;
            for token in lost {
                self.locks.remove(&token);
            }
        }
        any
    }

    /// Empties a store; returns how many messages went.
    pub fn purge(&mut self, k: &StoreKey) -> usize {
        let Some(st) = self.stores.get_mut(k) else {
            return 0;
        };
        let seqs: Vec<i64> = st.peek(0, usize::MAX, None).iter().map(|s| s.seq).collect();
        let n = st.purge();
        self.locks.retain(|_, (key, _)| key != k);
        self.journal
            .extend(seqs.into_iter().map(|s| Op::Remove(k.clone(), s)));
        n
    }
}

#[cfg(test)]
mod tests;
