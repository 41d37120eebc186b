//! Entry points for the fuzz targets (`local-emulator/fuzz`) and for the replay of their
//! corpora in the test command: the frame decoder feeding a connection's engine, the AMQP
//! value codec, and the SQL filter and action parser. Each takes arbitrary bytes and must
//! return without panicking, hanging or allocating without bound.

use crate::broker::filter::{Action, Filter};
use crate::broker::handle::BrokerHandle;
use crate::broker::message::{Message, PropValue, SystemProps};
use crate::broker::{Broker, Topology};
use crate::server::cbs::Grant;
use crate::server::codec::Value;
use crate::server::context::Context;
use crate::server::frame::decode_frame;
use crate::server::session::ConnectionState;
use std::sync::{Arc, OnceLock};

/// Frames cut from `data` one after another, each handled by one connection's engine (with
/// the whole namespace granted, so every node is reachable) over a fresh broker, until one
/// does not decode.
pub fn frames(data: &[u8]) {
    static TOPOLOGY: OnceLock<Topology> = OnceLock::new();
    let broker = BrokerHandle::new(
        Broker::new(TOPOLOGY.get_or_init(Topology::builtin), 0),
        None,
    )
    .expect("a broker without a journal starts");
    let ctx = Arc::new(Context {
        broker,
        policies: Vec::new(),
        allow_jwt: false,
        max_message_size: 256 * 1024,
        hub_max_message_size: 1024 * 1024,
        max_frame: 64 * 1024,
        faults: Default::default(),
        https: None,
    });
    let grant = Grant {
        path: String::new(),
        expires_s: i64::MAX,
    };
    let mut engine = ConnectionState::new(ctx.clone(), vec![grant], 64 * 1024);
    let mut rest = data;
    while let Ok((frame, used)) = decode_frame(rest, ctx.max_frame) {
        engine.on_frame(frame);
        engine.pump();
        engine.flush_deferred();
        engine.out.clear();
        if engine.closed || engine.dropped {
            break;
        }
        rest = &rest[used..];
    }
}

/// Decodes a value; one that decodes must encode to bytes that decode to the same encoding.
pub fn codec(data: &[u8]) {
    if let Ok((v, used)) = Value::decode(data) {
        assert!(used <= data.len());
        let once = v.to_bytes();
        let (again, n) = Value::decode(&once).expect("what the encoder wrote decodes");
        assert_eq!(n, once.len());
        assert_eq!(again.to_bytes(), once, "encoding is stable");
    }
}

/// Parses the text as a SQL filter and as a SQL action; what parses is run on a message.
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut m = Message {
        system: SystemProps {
            subject: Some("label".into()),
            session_id: Some("s".into()),
            ..Default::default()
        },
        app: [
            ("n".to_owned(), PropValue::Int(5)),
            ("f".to_owned(), PropValue::Float(1.5)),
            ("s".to_owned(), PropValue::Str("text".into())),
            ("b".to_owned(), PropValue::Bool(true)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    if let Ok(f) = Filter::sql(&text) {
        f.matches(&m);
    }
    if let Ok(a) = Action::sql(&text) {
        a.apply(&mut m);
    }
}
