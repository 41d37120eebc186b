//! Messages on the wire: splits a transfer payload into its sections for the broker (batches
//! into their messages), and writes deliveries with the broker annotations SDKs read.

use super::codec::{DecodeError, Value};
use crate::broker::eventhub::Event;
use crate::broker::message::{Message, PropValue, Stored, SystemProps};
use std::collections::BTreeMap;

/// Message format of an Azure SDK batch: each Data section is a whole message.
pub const BATCH_FORMAT: u32 = 0x8001_3700;

const HEADER: u64 = 0x70;
const MESSAGE_ANNOTATIONS: u64 = 0x72;
const PROPERTIES: u64 = 0x73;
const APPLICATION_PROPERTIES: u64 = 0x74;
const DATA: u64 = 0x75;

/// Annotations the broker owns; a sender's copies are dropped.
const BROKER_ANNOTATIONS: [&str; 7] = [
    "x-opt-message-state",
    "x-opt-sequence-number",
    "x-opt-offset",
    "x-opt-enqueued-time",
    "x-opt-locked-until",
    "x-opt-enqueue-sequence-number",
    "x-opt-partition-key",
];

/// Decoded sections of one message.
pub struct Sections {
    /// Every section, in order.
    pub parts: Vec<(Option<u64>, Value)>,
    /// Byte offset where the bare message starts.
    pub bare_start: usize,
}

/// Splits an encoded message into its sections.
pub fn sections(payload: &[u8]) -> Result<Sections, DecodeError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    let mut bare_start = None;
    while pos < payload.len() {
        let (v, used) = Value::decode(&payload[pos..])?;
        let code = v.descriptor_code();
        if bare_start.is_none() && code.is_some_and(|c| c >= PROPERTIES) {
            bare_start = Some(pos);
        }
        parts.push((code, v));
        pos += used;
    }
    Ok(Sections {
        parts,
        bare_start: bare_start.unwrap_or(payload.len()),
    })
}

/// The messages carried by one delivery (several for a batch).
pub fn messages(payload: &[u8], format: u32) -> Result<Vec<Message>, DecodeError> {
    let envelope = to_message(payload)?;
    if format != BATCH_FORMAT {
        return Ok(vec![envelope]);
    }
    let mut out = Vec::new();
    for (code, v) in sections(payload)?.parts {
        if code == Some(DATA) {
            let mut m = to_message(v.inner().as_bytes().unwrap_or_default())?;
            if m.partition_key.is_none() {
                m.partition_key.clone_from(&envelope.partition_key);
            }
            out.push(m);
        }
    }
    Ok(out)
}

/// Turns one encoded message into the broker's [`Message`].
pub fn to_message(payload: &[u8]) -> Result<Message, DecodeError> {
    let s = sections(payload)?;
    let mut m = Message {
        annotations: Vec::new(),
        bare: payload[s.bare_start..].to_vec(),
        system: SystemProps::default(),
        app: BTreeMap::new(),
        ttl_ms: None,
        scheduled_ms: None,
        partition_key: None,
        edited: Default::default(),
    };
    for (code, v) in &s.parts {
        match *code {
            Some(HEADER) => m.ttl_ms = v.field(2).as_i64().filter(|t| *t > 0),
            Some(MESSAGE_ANNOTATIONS) => {
                let entries = v.inner().as_map().unwrap_or_default();
                m.partition_key = v
                    .get("x-opt-partition-key")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                m.scheduled_ms = v
                    .get("x-opt-scheduled-enqueue-time")
                    .and_then(Value::as_i64);
                let kept: Vec<(Value, Value)> = entries
                    .iter()
                    .filter(|(k, _)| !k.as_str().is_some_and(|k| BROKER_ANNOTATIONS.contains(&k)))
                    .cloned()
                    .collect();
                if !kept.is_empty() {
                    m.annotations = Value::Map(kept).to_bytes();
                }
            }
            Some(PROPERTIES) => {
                let t = |i: usize| text(v.field(i));
                m.system = SystemProps {
                    message_id: t(0),
                    to: t(2),
                    subject: t(3),
                    reply_to: t(4),
                    correlation_id: t(5),
                    content_type: t(6),
                    session_id: t(10),
                    reply_to_session_id: t(11),
                };
            }
            Some(APPLICATION_PROPERTIES) => {
                for (k, val) in v.inner().as_map().unwrap_or_default() {
                    if let Some(k) = k.as_str() {
                        m.app.insert(k.to_owned(), prop(val));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

/// A message id or similar shown as text.
pub fn text(v: &Value) -> Option<String> {
    match v.inner() {
        Value::Null => None,
        Value::String(s) | Value::Symbol(s) => Some(s.clone()),
        Value::Uuid(u) => Some(uuid::Uuid::from_bytes(*u).to_string()),
        Value::Binary(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
        other => other.as_i64().map(|n| n.to_string()),
    }
}

/// A map of properties (a receiver's `properties-to-modify`) as broker properties.
pub fn properties(map: &Value) -> Vec<(String, PropValue)> {
    map.as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), prop(v))))
        .collect()
}

/// An AMQP value as a property filters compare.
pub fn prop(v: &Value) -> PropValue {
    match v.inner() {
        Value::Null => PropValue::Null,
        Value::Bool(b) => PropValue::Bool(*b),
        Value::Float(f) => PropValue::Float((*f).into()),
        Value::Double(f) => PropValue::Float(*f),
        other => match other.as_i64() {
            Some(n) => PropValue::Int(n),
            None => text(other).map_or(PropValue::Null, PropValue::Str),
        },
    }
}

fn annotations_with(stored: &[u8], extra: Vec<(&str, Value)>) -> Value {
    let mut entries = match Value::decode(stored) {
        Ok((Value::Map(m), _)) => m,
        _ => Vec::new(),
    };
    entries.extend(extra.into_iter().map(|(k, v)| (Value::sym(k), v)));
    Value::described_list(MESSAGE_ANNOTATIONS, Vec::new()).with_map(entries)
}

trait WithMap {
    fn with_map(self, entries: Vec<(Value, Value)>) -> Value;
}

impl WithMap for Value {
    fn with_map(self, entries: Vec<(Value, Value)>) -> Value {
        match self {
            Value::Described(d, _) => Value::Described(d, Box::new(Value::Map(entries))),
            v => v,
        }
    }
}

/// A Service Bus delivery: header, annotations (sequence number, enqueue and lock times), bare
/// message; properties a rule action changed are rewritten, and dead letters get
/// `DeadLetterReason`/`DeadLetterErrorDescription` properties.
pub fn service_bus(s: &Stored, locked_until: Option<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.msg.size() + 128);
    let ttl = s.msg.ttl_ms.map_or(Value::Null, |t| {
        Value::Uint(t.clamp(0, u32::MAX.into()) as u32)
    });
    Value::described_list(
        HEADER,
        vec![
            Value::Bool(true),
            Value::Ubyte(4),
            ttl,
            Value::Bool(s.delivery_count == 0),
            Value::Uint(s.delivery_count),
        ],
    )
    .encode(&mut out);
    let mut extra = vec![
        ("x-opt-sequence-number", Value::Long(s.seq)),
        ("x-opt-enqueue-sequence-number", Value::Long(s.seq)),
        ("x-opt-enqueued-time", Value::Timestamp(s.enqueued_ms)),
        // 0 active, 1 deferred (2 scheduled is not told apart here).
        ("x-opt-message-state", Value::Int(i32::from(s.deferred))),
    ];
    if let Some(until) = locked_until {
        extra.push(("x-opt-locked-until", Value::Timestamp(until)));
    }
    if let Some(pk) = &s.msg.partition_key {
        extra.push(("x-opt-partition-key", Value::str(pk)));
    }
    annotations_with(&s.msg.annotations, extra).encode(&mut out);
    let mut edits = Edits::of(&s.msg);
    if let Some((reason, desc)) = &s.dead_letter {
        for (k, v) in [
            ("DeadLetterReason", reason),
            ("DeadLetterErrorDescription", desc),
        ] {
            edits.app.push((k.to_owned(), Some(Value::str(v))));
        }
    }
    if edits.is_empty() {
        out.extend(&s.msg.bare);
    } else {
        out.extend(edits.apply(&s.msg.bare));
    }
    out
}

/// Gives a message without an id one, written into its encoded properties once, as Service
/// Bus gives every message an id (receivers, the JavaScript lock renewer among them, rely on
/// one).
pub fn give_id(m: &mut Message) {
    if m.system.message_id.is_some() {
        return;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let edits = Edits {
        system: vec![(0, Value::str(&id))],
        app: Vec::new(),
    };
    m.bare = edits.apply(&m.bare);
    m.system.message_id = Some(id);
}

/// Changes to the properties and application properties of an encoded bare message.
#[derive(Default)]
struct Edits {
    /// Fields of the properties section, by position.
    system: Vec<(usize, Value)>,
    /// Application properties set (`Some`) or removed (`None`).
    app: Vec<(String, Option<Value>)>,
}

impl Edits {
    /// What a rule action changed in `m`, as values to write.
    fn of(m: &Message) -> Edits {
        let mut e = Edits::default();
        let text = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::str);
        let sys = &m.system;
        for name in &m.edited {
            if let Some(key) = name.strip_prefix("user.") {
                e.app.push((key.to_owned(), m.app.get(key).map(prop_value)));
                continue;
            }
            let field = match name.as_str() {
                "sys.messageid" => (0, text(&sys.message_id)),
                "sys.to" => (2, text(&sys.to)),
                "sys.label" => (3, text(&sys.subject)),
                "sys.replyto" => (4, text(&sys.reply_to)),
                "sys.correlationid" => (5, text(&sys.correlation_id)),
                "sys.contenttype" => (
                    6,
                    sys.content_type.as_deref().map_or(Value::Null, Value::sym),
                ),
                "sys.sessionid" => (10, text(&sys.session_id)),
                _ => continue,
            };
            e.system.push(field);
        }
        e
    }

    fn is_empty(&self) -> bool {
        self.system.is_empty() && self.app.is_empty()
    }

    /// The bare message with these changes, sections in their AMQP order.
    fn apply(&self, bare: &[u8]) -> Vec<u8> {
        let Ok(s) = sections(bare) else {
            return bare.to_vec();
        };
        let mut props = None;
        let mut app: Vec<(Value, Value)> = Vec::new();
        let mut rest = Vec::new();
        for (code, v) in s.parts {
            match code {
                Some(PROPERTIES) => props = Some(v.inner().as_seq().unwrap_or_default().to_vec()),
                Some(APPLICATION_PROPERTIES) => {
                    app = v.inner().as_map().unwrap_or_default().to_vec()
                }
                _ => rest.push(v),
            }
        }
        if !self.system.is_empty() {
            let fields = props.get_or_insert_with(Vec::new);
            for (i, v) in &self.system {
                if fields.len() <= *i {
                    fields.resize(i + 1, Value::Null);
                }
                fields[*i] = v.clone();
            }
        }
        for (k, v) in &self.app {
            app.retain(|(key, _)| key.as_str() != Some(k));
            if let Some(v) = v {
                app.push((Value::str(k), v.clone()));
            }
        }
        let mut out = Vec::with_capacity(bare.len() + 128);
        if let Some(fields) = props {
            Value::described_list(PROPERTIES, fields).encode(&mut out);
        }
        Value::described_list(APPLICATION_PROPERTIES, Vec::new())
            .with_map(app)
            .encode(&mut out);
        for v in rest {
            v.encode(&mut out);
        }
        out
    }
}

/// A broker property value as AMQP writes it.
pub fn prop_value(v: &PropValue) -> Value {
    match v {
        PropValue::Null => Value::Null,
        PropValue::Bool(b) => Value::Bool(*b),
        PropValue::Int(i) => Value::Long(*i),
        PropValue::Float(f) => Value::Double(*f),
        PropValue::Str(s) => Value::str(s),
    }
}

/// An Event Hubs delivery: annotations (sequence number, offset as a string, enqueue time,
/// partition key) then the bare message.
pub fn event_hubs(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.msg.size() + 128);
    let mut extra = vec![
        ("x-opt-sequence-number", Value::Long(e.seq)),
        ("x-opt-offset", Value::String(e.offset.to_string())),
        ("x-opt-enqueued-time", Value::Timestamp(e.enqueued_ms)),
    ];
    if let Some(pk) = &e.msg.partition_key {
        extra.push(("x-opt-partition-key", Value::str(pk)));
    }
    annotations_with(&e.msg.annotations, extra).encode(&mut out);
    out.extend(&e.msg.bare);
    out
}

/// Encodes a reply message: properties with correlation id, application properties, body.
pub fn reply(
    correlation: Value,
    to: Option<&str>,
    app: Vec<(&str, Value)>,
    body: Value,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut props = vec![Value::Null; 13];
    props[0] = Value::str(&uuid::Uuid::new_v4().to_string());
    props[2] = to.map_or(Value::Null, Value::str);
    props[5] = correlation;
    Value::described_list(PROPERTIES, props).encode(&mut out);
    let entries = app.into_iter().map(|(k, v)| (Value::str(k), v)).collect();
    Value::described_list(APPLICATION_PROPERTIES, Vec::new())
        .with_map(entries)
        .encode(&mut out);
    Value::Described(Box::new(Value::Ulong(0x77)), Box::new(body)).encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(app: Vec<(Value, Value)>, pk: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(pk) = pk {
            Value::Described(
                Box::new(Value::Ulong(MESSAGE_ANNOTATIONS)),
                Box::new(Value::Map(vec![(
                    Value::sym("x-opt-partition-key"),
                    Value::str(pk),
                )])),
            )
            .encode(&mut out);
        }
        let mut props = vec![Value::Null; 4];
        props[0] = Value::str("m1");
        props[3] = Value::str("subj");
        Value::described_list(PROPERTIES, props).encode(&mut out);
        Value::Described(
            Box::new(Value::Ulong(APPLICATION_PROPERTIES)),
            Box::new(Value::Map(app)),
        )
        .encode(&mut out);
        Value::Described(
            Box::new(Value::Ulong(DATA)),
            Box::new(Value::Binary(b"hi".to_vec())),
        )
        .encode(&mut out);
        out
    }

    #[test]
    fn batch_is_split_into_its_messages_with_the_envelope_partition_key() {
        let inner = encoded(vec![(Value::str("a"), Value::Int(1))], None);
        let mut env = Vec::new();
        Value::Described(
            Box::new(Value::Ulong(MESSAGE_ANNOTATIONS)),
            Box::new(Value::Map(vec![(
                Value::sym("x-opt-partition-key"),
                Value::str("k"),
            )])),
        )
        .encode(&mut env);
        for _ in 0..3 {
            Value::Described(
                Box::new(Value::Ulong(DATA)),
                Box::new(Value::Binary(inner.clone())),
            )
            .encode(&mut env);
        }
        let ms = messages(&env, BATCH_FORMAT).expect("batch");
        assert_eq!(ms.len(), 3);
        assert_eq!(ms[0].partition_key.as_deref(), Some("k"));
        assert_eq!(ms[0].app.get("a"), Some(&PropValue::Int(1)));
        assert_eq!(ms[0].system.subject.as_deref(), Some("subj"));
    }

    #[test]
    fn properties_a_rule_action_changed_are_rewritten_and_the_others_kept() {
        let mut m = to_message(&encoded(
            vec![
                (Value::str("keep"), Value::Int(7)),
                (Value::str("color"), Value::str("blue")),
            ],
            None,
        ))
        .expect("message");
        crate::broker::filter::Action::sql(
            "SET sys.Label = 'new'; SET color = 'red'; SET added = 1; REMOVE keep",
        )
        .expect("action")
        .apply(&mut m);
        let stored = Stored {
            msg: m,
            seq: 1,
            enqueued_ms: 1,
            delivery_count: 0,
            expires_ms: None,
            dead_letter: None,
            deferred: false,
        };
        let back = to_message(&service_bus(&stored, None)).expect("decodes");
        assert_eq!(back.system.subject.as_deref(), Some("new"));
        assert_eq!(back.system.message_id.as_deref(), Some("m1"), "untouched");
        assert_eq!(back.app.get("color"), Some(&PropValue::Str("red".into())));
        assert_eq!(back.app.get("added"), Some(&PropValue::Int(1)));
        assert!(!back.app.contains_key("keep"));
        let body = sections(&service_bus(&stored, None)).expect("sections");
        assert!(
            body.parts.iter().any(|(c, _)| *c == Some(DATA)),
            "body kept"
        );
    }

    #[test]
    fn dead_letter_delivery_carries_the_reason_as_application_properties() {
        let m = to_message(&encoded(vec![], None)).expect("message");
        let stored = Stored {
            msg: m,
            seq: 7,
            enqueued_ms: 1,
            delivery_count: 0,
            expires_ms: None,
            dead_letter: Some(("why".into(), "because".into())),
            deferred: false,
        };
        let bytes = service_bus(&stored, None);
        let back = to_message(&bytes).expect("decodes");
        assert_eq!(
            back.app.get("DeadLetterReason"),
            Some(&PropValue::Str("why".into()))
        );
        let s = sections(&bytes).expect("sections");
        let ann = s
            .parts
            .iter()
            .find(|(c, _)| *c == Some(MESSAGE_ANNOTATIONS))
            .expect("annotations");
        assert_eq!(ann.1.get("x-opt-sequence-number"), Some(&Value::Long(7)));
    }
}
