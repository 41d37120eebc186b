//! Queues, topics and subscriptions as entities: installing them (from configuration, or at
//! run time from the administration API, journaled so they outlive a restart), updating their
//! settings, deleting them with what they hold, and reading back their descriptions.

use super::address::valid_entity_name;
use super::{
    dedup, Broker, BrokerError, NodeKind, Op, QueueSpec, StoreKey, StoreSettings, Subscription,
    SubscriptionSpec, TopicSpec,
};
use std::collections::BTreeMap;

/// Whether a put creates, updates, or does whichever applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The entity must not exist yet.
    Create,
    /// The entity must exist.
    Update,
    /// Either (journal replay).
    Upsert,
}

/// When an entity was created and last updated (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntityTimes {
    /// Creation.
    pub created_ms: i64,
    /// Last change of its description.
    pub updated_ms: i64,
}

/// Settings Service Bus fixes at creation: an update may not change them.
fn unchangeable(old: &StoreSettings, new: &StoreSettings) -> Result<(), BrokerError> {
    if old.requires_session != new.requires_session {
        return Err(BrokerError::NotAllowed(
            "RequiresSession cannot be changed once the entity exists".into(),
        ));
    }
    if old.duplicate_window_ms.is_some() != new.duplicate_window_ms.is_some() {
        return Err(BrokerError::NotAllowed(
            "RequiresDuplicateDetection cannot be changed once the entity exists".into(),
        ));
    }
    Ok(())
}

/// Service Bus's limit of subscriptions per topic.
const MAX_SUBSCRIPTIONS: usize = 2000;

fn check_name(name: &str) -> Result<(), BrokerError> {
    if valid_entity_name(name) && !name.starts_with('$') {
        Ok(())
    } else {
        Err(BrokerError::NotAllowed(format!(
            "the entity name '{name}' is not valid: use letters, digits, '.', '-', '_' (1 to 260)"
        )))
    }
}

impl Broker {
    fn touch(&mut self, path: String, now_ms: i64) {
        self.times
            .entry(path)
            .and_modify(|t| t.1 = now_ms)
            .or_insert((now_ms, now_ms));
    }

    /// When an entity (`queue`, `topic` or `topic/subscriptions/sub`) was created and updated.
    pub fn times(&self, path: &str) -> EntityTimes {
        self.times
            .get(&path.to_ascii_lowercase())
            .map_or_else(EntityTimes::default, |(c, u)| EntityTimes {
                created_ms: *c,
                updated_ms: *u,
            })
    }

    fn set_store(&mut self, main: StoreKey, dlq: StoreKey, s: &StoreSettings) {
        self.settings.insert(main.clone(), s.clone());
        self.settings.insert(
            dlq.clone(),
            StoreSettings {
                lock_ms: s.lock_ms,
                max_delivery: u32::MAX,
                ..StoreSettings::default()
            },
        );
        self.stores.entry(main).or_default();
        self.stores.entry(dlq).or_default();
    }

    fn set_dedup(&mut self, entity: &str, window_ms: Option<i64>) {
        match window_ms {
            Some(w) => {
                self.dedup
                    .entry(entity.to_owned())
                    .and_modify(|h| h.set_window(w))
                    .or_insert_with(|| dedup::History::new(w));
            }
            None => {
                self.dedup.remove(entity);
            }
        }
    }

    pub(super) fn install_queue(&mut self, q: &QueueSpec, now_ms: i64) {
        let n = q.name.to_ascii_lowercase();
        self.names.insert(n.clone(), q.name.clone());
        self.set_dedup(&n, q.store.duplicate_window_ms);
        self.set_store(
            StoreKey::Queue(n.clone()),
            StoreKey::QueueDlq(n.clone()),
            &q.store,
        );
        self.touch(n, now_ms);
    }

    pub(super) fn install_topic(&mut self, t: &TopicSpec, now_ms: i64) {
        let n = t.name.to_ascii_lowercase();
        self.names.insert(n.clone(), t.name.clone());
        self.set_dedup(&n, t.duplicate_window_ms);
        self.topics.entry(n.clone()).or_default();
        self.touch(n, now_ms);
    }

    pub(super) fn install_subscription(&mut self, topic: &str, s: &SubscriptionSpec, now_ms: i64) {
        let (tn, sn) = (topic.to_ascii_lowercase(), s.name.to_ascii_lowercase());
        self.set_store(
            StoreKey::Sub(tn.clone(), sn.clone()),
            StoreKey::SubDlq(tn.clone(), sn.clone()),
            &s.store,
        );
        let subs: &mut BTreeMap<String, Subscription> = self.topics.entry(tn.clone()).or_default();
        subs.insert(
            sn.clone(),
            Subscription {
                rules: s.rules.clone(),
            },
        );
        self.touch(format!("{tn}/subscriptions/{sn}"), now_ms);
    }

    /// Creates or updates a queue. Returns whether it was created.
    pub fn put_queue(&mut self, q: QueueSpec, how: Put, now_ms: i64) -> Result<bool, BrokerError> {
        check_name(&q.name)?;
        let n = q.name.to_ascii_lowercase();
        let exists = self.check_put(&n, NodeKind::Queue, how)?;
        if let Some(old) = self.queue_spec(&n).filter(|_| exists && how != Put::Upsert) {
            unchangeable(&old.store, &q.store)?;
        }
        self.install_queue(&q, now_ms);
        self.journal.push(Op::PutQueue(q));
        Ok(!exists)
    }

    /// Creates or updates a topic (its settings; its subscriptions stay). Returns whether it
    /// was created.
    pub fn put_topic(&mut self, t: TopicSpec, how: Put, now_ms: i64) -> Result<bool, BrokerError> {
        check_name(&t.name)?;
        let n = t.name.to_ascii_lowercase();
        let exists = self.check_put(&n, NodeKind::Topic, how)?;
        self.install_topic(&t, now_ms);
        self.journal.push(Op::PutTopic(TopicSpec {
            subscriptions: Vec::new(),
            ..t
        }));
        Ok(!exists)
    }

    /// Whether an entity of `kind` named `n` exists, refusing the put as `how` requires.
    fn check_put(&self, n: &str, kind: NodeKind, how: Put) -> Result<bool, BrokerError> {
        let exists = match self.kind(&super::Address::Entity(n.to_owned())) {
            Ok(k) if k == kind => true,
            Ok(_) => {
                return Err(BrokerError::AlreadyExists(format!(
                    "another kind of entity is named '{n}'"
                )))
            }
            Err(_) => false,
        };
        match (how, exists) {
            (Put::Create, true) => Err(BrokerError::AlreadyExists(format!(
                "the messaging entity '{n}' already exists"
            ))),
            (Put::Update, false) => Err(BrokerError::NotFound(n.to_owned())),
            _ => Ok(exists),
        }
    }

    /// Creates or updates a subscription (an update keeps its rules). Returns whether it was
    /// created.
    pub fn put_subscription(
        &mut self,
        topic: &str,
        mut s: SubscriptionSpec,
        how: Put,
        now_ms: i64,
    ) -> Result<bool, BrokerError> {
        check_name(&s.name)?;
        let tn = topic.to_ascii_lowercase();
        let subs = self
            .topics
            .get(&tn)
            .ok_or_else(|| BrokerError::NotFound(topic.to_owned()))?;
        let existing = subs.get(&s.name.to_ascii_lowercase());
        if existing.is_none() && subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(BrokerError::NotAllowed(format!(
                "a topic has at most {MAX_SUBSCRIPTIONS} subscriptions"
            )));
        }
        match (how, existing) {
            (Put::Create, Some(_)) => {
                return Err(BrokerError::AlreadyExists(format!(
                    "the subscription '{}' of '{topic}' already exists",
                    s.name
                )))
            }
            (Put::Update, None) => {
                return Err(BrokerError::NotFound(format!(
                    "{topic}/Subscriptions/{}",
                    s.name
                )))
            }
            (_, Some(sub)) => s.rules = sub.rules.clone(),
            (_, None) => {}
        }
        if let Some(old) = self
            .subscription_spec(topic, &s.name)
            .filter(|_| how != Put::Upsert)
        {
            unchangeable(&old.store, &s.store)?;
        }
        let created = existing.is_none();
        self.install_subscription(&tn, &s, now_ms);
        self.journal.push(Op::PutSubscription(tn, s));
        Ok(created)
    }

    /// Deletes a queue or a topic (with its subscriptions) and every message they hold.
    pub fn delete_entity(&mut self, name: &str) -> Result<(), BrokerError> {
        let n = name.to_ascii_lowercase();
        let keys: Vec<StoreKey> = match self.kind(&super::Address::Entity(n.clone()))? {
            NodeKind::Queue => vec![StoreKey::Queue(n.clone()), StoreKey::QueueDlq(n.clone())],
            NodeKind::Topic => {
                let subs = self.topics.remove(&n).unwrap_or_default();
                for s in subs.keys() {
                    self.times.remove(&format!("{n}/subscriptions/{s}"));
                }
                subs.keys()
                    .flat_map(|s| {
                        [
                            StoreKey::Sub(n.clone(), s.clone()),
                            StoreKey::SubDlq(n.clone(), s.clone()),
                        ]
                    })
                    .collect()
            }
            _ => {
                return Err(BrokerError::NotSupported(format!(
                    "'{name}' is an event hub; the administration API manages Service Bus entities"
                )))
            }
        };
        self.drop_stores(&keys);
        self.names.remove(&n);
        self.dedup.remove(&n);
        self.times.remove(&n);
        self.journal.push(Op::DeleteEntity(n));
        Ok(())
    }

    /// Deletes a subscription and every message it holds.
    pub fn delete_subscription(&mut self, topic: &str, sub: &str) -> Result<(), BrokerError> {
        let (tn, sn) = (topic.to_ascii_lowercase(), sub.to_ascii_lowercase());
        self.topics
            .get_mut(&tn)
            .and_then(|t| t.remove(&sn))
            .ok_or_else(|| BrokerError::NotFound(format!("{topic}/Subscriptions/{sub}")))?;
        self.drop_stores(&[
            StoreKey::Sub(tn.clone(), sn.clone()),
            StoreKey::SubDlq(tn.clone(), sn.clone()),
        ]);
        self.times.remove(&format!("{tn}/subscriptions/{sn}"));
        self.journal.push(Op::DeleteSubscription(tn, sn));
        Ok(())
    }

    fn drop_stores(&mut self, keys: &[StoreKey]) {
        for k in keys {
            self.stores.remove(k);
            self.settings.remove(k);
            self.sessions.remove(k);
        }
        self.locks.retain(|_, (k, _)| !keys.contains(k));
    }

    /// A queue's description, by name.
    pub fn queue_spec(&self, name: &str) -> Option<QueueSpec> {
        let n = name.to_ascii_lowercase();
        let store = self.settings.get(&StoreKey::Queue(n.clone()))?.clone();
        Some(QueueSpec {
            name: self.names.get(&n).cloned().unwrap_or(n),
            store,
        })
    }

    /// A topic's description (without its subscriptions), by name.
    pub fn topic_spec(&self, name: &str) -> Option<TopicSpec> {
        let n = name.to_ascii_lowercase();
        self.topics.get(&n)?;
        Some(TopicSpec {
            name: self.names.get(&n).cloned().unwrap_or_else(|| n.clone()),
            subscriptions: Vec::new(),
            duplicate_window_ms: self.dedup.get(&n).map(dedup::History::window),
        })
    }

    /// A subscription's description with its rules.
    pub fn subscription_spec(&self, topic: &str, sub: &str) -> Option<SubscriptionSpec> {
        let (tn, sn) = (topic.to_ascii_lowercase(), sub.to_ascii_lowercase());
        let s = self.topics.get(&tn)?.get(&sn)?;
        Some(SubscriptionSpec {
            name: sn.clone(),
            store: self.settings.get(&StoreKey::Sub(tn, sn))?.clone(),
            rules: s.rules.clone(),
        })
    }

    /// Names of every queue.
    pub fn queue_names(&self) -> Vec<String> {
        self.stores
            .keys()
            .filter_map(|k| match k {
                StoreKey::Queue(q) => Some(self.names.get(q).cloned().unwrap_or_else(|| q.clone())),
                _ => None,
            })
            .collect()
    }

    /// Names of every topic.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics
            .keys()
            .map(|t| self.names.get(t).cloned().unwrap_or_else(|| t.clone()))
            .collect()
    }

    /// Names of a topic's subscriptions.
    pub fn subscription_names(&self, topic: &str) -> Option<Vec<String>> {
        Some(
            self.topics
                .get(&topic.to_ascii_lowercase())?
                .keys()
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Address, Topology};
    use super::*;

    #[test]
    fn entities_made_at_run_time_come_back_from_the_journal() {
        let mut b = Broker::new(&Topology::default(), 0);
        let mut q = QueueSpec::new("made");
        q.store.requires_session = true;
        assert_eq!(b.put_queue(q.clone(), Put::Create, 5), Ok(true));
        assert!(matches!(
            b.put_queue(q.clone(), Put::Create, 6),
            Err(BrokerError::AlreadyExists(_))
        ));
        b.put_topic(TopicSpec::new("t", Vec::new()), Put::Create, 5)
            .expect("topic");
        b.put_subscription("t", SubscriptionSpec::new("s"), Put::Create, 5)
            .expect("subscription");
        b.put_subscription("t", SubscriptionSpec::new("gone"), Put::Create, 5)
            .expect("subscription");
        b.delete_subscription("t", "gone").expect("deleted");
        q.store.max_delivery = 3;
        assert_eq!(b.put_queue(q.clone(), Put::Update, 9), Ok(false));
        assert_eq!(
            b.times("made"),
            EntityTimes {
                created_ms: 5,
                updated_ms: 9
            }
        );
        let mut again = Broker::new(&Topology::default(), 0);
        for op in b.drain_journal() {
            again.replay(op, 0);
        }
        assert_eq!(again.queue_spec("made"), Some(q));
        assert_eq!(again.subscription_names("t"), Some(vec!["s".to_owned()]));
        assert!(again.requires_session(&StoreKey::Queue("made".into())));
    }

    #[test]
    fn deleting_a_topic_deletes_its_subscriptions_and_their_messages() {
        let mut b = Broker::new(&Topology::builtin(), 0);
        b.delete_entity("topic1").expect("deleted");
        assert!(b
            .kind(&Address::parse("topic1/Subscriptions/subscription1").expect("addr"))
            .is_err());
        assert!(matches!(
            b.delete_entity("topic1"),
            Err(BrokerError::NotFound(_))
        ));
        assert!(
            b.put_queue(QueueSpec::new("eh1"), Put::Create, 0).is_err(),
            "a hub's name"
        );
        assert!(b
            .put_queue(QueueSpec::new("bad/name"), Put::Create, 0)
            .is_err());
    }
}
