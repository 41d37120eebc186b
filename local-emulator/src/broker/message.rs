//! The broker's view of a message: opaque encoded sections plus the properties that filters,
//! time to live and scheduling need. No protocol types here.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A property value that filters can compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PropValue {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer.
    Int(i64),
    /// Any floating-point number.
    Float(f64),
    /// A string, symbol, uuid or other value shown as text.
    Str(String),
}

/// System properties that filters and management read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemProps {
    /// `message-id`, as text.
    pub message_id: Option<String>,
    /// `correlation-id`, as text.
    pub correlation_id: Option<String>,
    /// `subject` (Service Bus label).
    pub subject: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `reply-to`.
    pub reply_to: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `group-id` (Service Bus session id).
    pub session_id: Option<String>,
    /// `reply-to-group-id`.
    #[serde(default)]
    pub reply_to_session_id: Option<String>,
}

/// A message as the broker keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The sender's message annotations, encoded (an AMQP map), or empty.
    pub annotations: Vec<u8>,
    /// The bare message (properties, application properties, body, footer), encoded.
    pub bare: Vec<u8>,
    /// System properties.
    pub system: SystemProps,
    /// Application properties.
    pub app: BTreeMap<String, PropValue>,
    /// Time to live in milliseconds, if the sender set one.
    pub ttl_ms: Option<i64>,
    /// When the message becomes visible (unix ms), for scheduled messages.
    pub scheduled_ms: Option<i64>,
    /// Event Hubs partition key.
    pub partition_key: Option<String>,
    /// Properties a rule action changed (`sys.Label`, `user.color`): the encoded message is
    /// rewritten from [`Message::system`] and [`Message::app`] for these when delivered.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub edited: BTreeSet<String>,
}

impl Message {
    /// Size used for limits and Event Hubs offsets.
    pub fn size(&self) -> usize {
        self.annotations.len() + self.bare.len()
    }
}

/// A message held by a queue or subscription, with its broker state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The message.
    pub msg: Message,
    /// Sequence number in its entity.
    pub seq: i64,
    /// Enqueue time (unix ms).
    pub enqueued_ms: i64,
    /// Failed deliveries so far.
    pub delivery_count: u32,
    /// Absolute expiry (unix ms).
    pub expires_ms: Option<i64>,
    /// Why it was dead-lettered, if it was.
    pub dead_letter: Option<(String, String)>,
    /// Deferred: received only by sequence number.
    #[serde(default)]
    pub deferred: bool,
}

impl Stored {
    /// The session the message belongs to, if any.
    pub fn session(&self) -> Option<&str> {
        self.msg.system.session_id.as_deref()
    }
}

/// A message handed to a receiver.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The stored message (a copy).
    pub stored: Stored,
    /// Lock token and lock expiry (unix ms) in peek-lock mode.
    pub lock: Option<(uuid::Uuid, i64)>,
}
