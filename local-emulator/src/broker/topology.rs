//! The entities a broker serves, and the built-in default set.

use super::filter::{Action, Filter};
use serde::{Deserialize, Serialize};

/// A rule of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Rule name.
    pub name: String,
    /// Its filter.
    pub filter: Filter,
    /// Its action, applied to the copy of a message the rule selects.
    pub action: Option<Action>,
}

impl RuleSpec {
    /// A rule with a filter and no action.
    pub fn new(name: &str, filter: Filter) -> RuleSpec {
        RuleSpec {
            name: name.to_owned(),
            filter,
            action: None,
        }
    }
}

/// Settings shared by queues and subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSettings {
    /// Lock duration (ms).
    pub lock_ms: i64,
    /// Deliveries before dead-lettering.
    pub max_delivery: u32,
    /// Default time to live (ms).
    pub ttl_ms: Option<i64>,
    /// Dead-letter expired messages instead of dropping them.
    pub dlq_on_expiry: bool,
    /// Forward every message to this entity.
    pub forward_to: Option<String>,
    /// Messages must carry a session id and are received by session.
    #[serde(default)]
    pub requires_session: bool,
    /// Duplicate detection window (ms) for a queue: a message id seen within it is dropped.
    #[serde(default)]
    pub duplicate_window_ms: Option<i64>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            lock_ms: 60_000,
            max_delivery: 10,
            ttl_ms: None,
            dlq_on_expiry: false,
            forward_to: None,
            requires_session: false,
            duplicate_window_ms: None,
        }
    }
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// Name.
    pub name: String,
    /// Settings.
    pub store: StoreSettings,
}

impl QueueSpec {
    /// A queue with default settings.
    pub fn new(name: &str) -> QueueSpec {
        QueueSpec {
            name: name.to_owned(),
            store: StoreSettings::default(),
        }
    }
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    /// Name.
    pub name: String,
    /// Settings.
    pub store: StoreSettings,
    /// Rules; a message matching any is copied in.
    pub rules: Vec<RuleSpec>,
}

impl SubscriptionSpec {
    /// A subscription with the default true filter.
    pub fn new(name: &str) -> SubscriptionSpec {
        SubscriptionSpec {
            name: name.to_owned(),
            store: StoreSettings::default(),
            rules: vec![RuleSpec::new("$Default", Filter::True)],
        }
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Duplicate detection window (ms): a message id seen within it is dropped.
    pub duplicate_window_ms: Option<i64>,
}

impl TopicSpec {
    /// A topic with these subscriptions and no duplicate detection.
    pub fn new(name: &str, subscriptions: Vec<SubscriptionSpec>) -> TopicSpec {
        TopicSpec {
            name: name.to_owned(),
            subscriptions,
            duplicate_window_ms: None,
        }
    }
}

/// An event hub.
#[derive(Debug, Clone)]
pub struct HubSpec {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Consumer groups besides `$Default`.
    pub consumer_groups: Vec<String>,
}

/// Every entity served.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Queues.
    pub queues: Vec<QueueSpec>,
    /// Topics.
    pub topics: Vec<TopicSpec>,
    /// Event hubs.
    pub hubs: Vec<HubSpec>,
}

impl Topology {
    /// The built-in set: Microsoft's emulator defaults plus what Herald's demo uses.
    pub fn builtin() -> Topology {
        let mut filtered = SubscriptionSpec::new("subscription2");
        filtered.rules = vec![RuleSpec::new(
            "app-prop-filter",
            Filter::sql("prop1 = 'value1'").expect("built-in filter parses"),
        )];
        let mut topic1_subs = vec![SubscriptionSpec::new("subscription1"), filtered];
        let mut sub3 = SubscriptionSpec::new("subscription3");
        sub3.rules = vec![RuleSpec::new(
            "sql-filter",
            Filter::sql("sys.Label = 'important' OR priority > 5").expect("built-in filter parses"),
        )];
        topic1_subs.push(sub3);
        let hub = |n: &str| HubSpec {
            name: n.into(),
            partitions: 2,
            consumer_groups: vec!["cg1".into()],
        };
        Topology {
            queues: vec![QueueSpec::new("queue1"), QueueSpec::new("herald-events")],
            topics: vec![
                TopicSpec::new("topic1", topic1_subs),
                TopicSpec::new("herald-topic", vec![SubscriptionSpec::new("all")]),
            ],
            hubs: vec![hub("eh1"), hub("herald-hub")],
        }
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: Topology) {
        self.queues.extend(other.queues);
        self.topics.extend(other.topics);
        self.hubs.extend(other.hubs);
    }
}
