//! Request/response nodes: `$cbs` (put-token) and `$management` (Event Hubs `READ`; Service
//! Bus renew-lock, peek, schedule, cancel-scheduled, update-disposition).

use super::cbs::{self, Grant};
use super::codec::Value;
use super::connection::Context;
use super::{message, quirks};
use crate::broker::{Address, BrokerError};

struct Request {
    message_id: Value,
    reply_to: Option<String>,
    app: Value,
    body: Value,
}

fn request(payload: &[u8]) -> Request {
    let mut r = Request {
        message_id: Value::Null,
        reply_to: None,
        app: Value::Map(Vec::new()),
        body: Value::Null,
    };
    if let Ok(s) = message::sections(payload) {
        for (code, v) in s.parts {
            match code {
                Some(0x73) => {
                    r.message_id = v.field(0).clone();
                    r.reply_to = v.field(4).as_str().map(str::to_owned);
                }
                Some(0x74) => r.app = v.inner().clone(),
                Some(0x77) => r.body = v.inner().clone(),
                _ => {}
            }
        }
    }
    r
}

fn status(code: i32, desc: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("status-code", Value::Int(code)),
        ("status-description", Value::str(desc)),
        ("statusCode", Value::Int(code)),
        ("statusDescription", Value::str(desc)),
    ]
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::str(k), v))
            .collect(),
    )
}

/// Handles a `put-token` request; returns the reply, its reply-to and the grant, if any.
pub fn cbs(ctx: &Context, payload: &[u8], now_s: i64) -> (Vec<u8>, Option<String>, Option<Grant>) {
    let r = request(payload);
    let audience = r
        .app
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let token = r.body.as_str().unwrap_or_default();
    let op = r
        .app
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (app, grant) = if op != "put-token" {
        (status(400, "only put-token is supported"), None)
    } else {
        match cbs::verify(token, audience, &ctx.policies, ctx.allow_jwt, now_s) {
            Ok(g) => (status(202, "Accepted"), Some(g)),
            Err(e) => {
                tracing::debug!(audience, error = %e, "token refused");
                (status(401, &format!("Unauthorized: {e}")), None)
            }
        }
    };
    (
        message::reply(r.message_id, r.reply_to.as_deref(), app, Value::Null),
        r.reply_to,
        grant,
    )
}

/// Handles a management request on `$management` (Event Hubs) or `<entity>/$management`.
pub fn handle(ctx: &Context, entity: Option<&str>, payload: &[u8]) -> (Vec<u8>, Option<String>) {
    let r = request(payload);
    let op = r
        .app
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (app, body) = match run(ctx, entity, &op, &r) {
        Ok((code, body)) => (
            status(code, if code == 204 { "No Content" } else { "OK" }),
            body,
        ),
        Err((code, cond, desc)) => {
            let mut s = status(code, &desc);
            s.push(("errorCondition", Value::sym(cond)));
            (s, Value::Null)
        }
    };
    (
        message::reply(r.message_id, r.reply_to.as_deref(), app, body),
        r.reply_to,
    )
}

type Outcome = Result<(i32, Value), (i32, &'static str, String)>;

fn broker_err(e: BrokerError) -> (i32, &'static str, String) {
    match e {
        BrokerError::NotFound(_) => (404, "amqp:not-found", e.to_string()),
        BrokerError::LockLost => (410, "com.microsoft:message-lock-lost", e.to_string()),
        BrokerError::NotSupported(_) => (400, "amqp:not-implemented", e.to_string()),
    }
}

fn tokens(body: &Value) -> Vec<uuid::Uuid> {
    body.get("lock-tokens")
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(quirks::lock_token_from_value)
        .collect()
}

fn run(ctx: &Context, entity: Option<&str>, op: &str, r: &Request) -> Outcome {
    let b = &ctx.broker;
    let addr = || {
        entity.and_then(|e| Address::parse(e).ok()).ok_or((
            404,
            "amqp:not-found",
            format!("no entity for {op}"),
        ))
    };
    match op {
        "READ" => {
            let name = r
                .app
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let not_found = || {
                (
                    404,
                    "amqp:not-found",
                    format!("event hub '{name}' not found"),
                )
            };
            match r
                .app
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "com.microsoft:eventhub" => {
                    let h = b.with(|b, _| b.hub_info(name)).ok_or_else(not_found)?;
                    let ids = (0..h.partitions)
                        .map(|i| Value::String(i.to_string()))
                        .collect();
                    Ok((
                        200,
                        map(vec![
                            ("name", Value::str(&h.name)),
                            ("type", Value::sym("com.microsoft:eventhub")),
                            ("created_at", Value::Timestamp(h.created_ms)),
                            ("partition_count", Value::Int(h.partitions as i32)),
                            ("partition_ids", Value::Array(ids)),
                        ]),
                    ))
                }
                "com.microsoft:partition" => {
                    let pid = r
                        .app
                        .get("partition")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let p: usize = pid.parse().map_err(|_| not_found())?;
                    let i = b
                        .with(|b, _| b.partition_info(name, p))
                        .ok_or_else(not_found)?;
                    Ok((
                        200,
                        map(vec![
                            ("name", Value::str(name)),
                            ("type", Value::sym("com.microsoft:partition")),
                            ("partition", Value::String(pid)),
                            ("begin_sequence_number", Value::Long(i.begin_seq)),
                            ("last_enqueued_sequence_number", Value::Long(i.last_seq)),
                            (
                                "last_enqueued_offset",
                                Value::String(i.last_offset.to_string()),
                            ),
                            (
                                "last_enqueued_time_utc",
                                Value::Timestamp(i.last_enqueued_ms),
                            ),
                            ("is_partition_empty", Value::Bool(i.empty)),
                            ("last_enqueued_sequence_number_epoch", Value::Long(0)),
                        ]),
                    ))
                }
                other => Err((
                    400,
                    "amqp:not-implemented",
                    format!("READ of '{other}' is not supported"),
                )),
            }
        }
        "com.microsoft:renew-lock" => {
            let ts = tokens(&r.body);
            let exp = b.with(|b, now| {
                ts.iter()
                    .map(|t| b.renew(*t, now).map(Value::Timestamp))
                    .collect::<Result<Vec<_>, _>>()
            });
            Ok((
                200,
                map(vec![(
                    "expirations",
                    Value::Array(exp.map_err(broker_err)?),
                )]),
            ))
        }
        "com.microsoft:update-disposition" => {
            let ts = tokens(&r.body);
            let st = r
                .body
                .get("disposition-status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let reason = r
                .body
                .get("deadletter-reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let desc = r
                .body
                .get("deadletter-description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            b.with(|b, now| {
                ts.iter().try_for_each(|t| match st.as_str() {
                    "completed" => b.complete(*t),
                    "suspended" => b.dead_letter(*t, &reason, &desc, now),
                    _ => b.abandon(*t, now),
                })
            })
            .map_err(broker_err)?;
            Ok((200, map(Vec::new())))
        }
        "com.microsoft:peek-message" => {
            let key = b.with(|b, _| b.store_key(&addr()?).map_err(broker_err))?;
            let from = r
                .body
                .get("from-sequence-number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let count = r
                .body
                .get("message-count")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .clamp(1, 1000) as usize;
            let msgs = b.with(|b, _| b.peek(&key, from, count));
            if msgs.is_empty() {
                return Ok((204, map(Vec::new())));
            }
            let list = msgs
                .iter()
                .map(|s| {
                    map(vec![(
                        "message",
                        Value::Binary(message::service_bus(s, None)),
                    )])
                })
                .collect();
            Ok((200, map(vec![("messages", Value::List(list))])))
        }
        "com.microsoft:schedule-message" => {
            let a = addr()?;
            let items = r
                .body
                .get("messages")
                .and_then(Value::as_seq)
                .unwrap_or_default();
            let mut msgs = Vec::new();
            for item in items {
                let bytes = item
                    .get("message")
                    .and_then(Value::as_bytes)
                    .unwrap_or_default();
                msgs.push(
                    message::to_message(bytes)
                        .map_err(|e| (400, "amqp:decode-error", e.to_string()))?,
                );
            }
            let seqs = b.with(|b, now| {
                msgs.into_iter()
                    .map(|m| {
                        b.send(&a, m, now)
                            .map(|s| Value::Long(s.first().copied().unwrap_or(0)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            });
            Ok((
                200,
                map(vec![(
                    "sequence-numbers",
                    Value::Array(seqs.map_err(broker_err)?),
                )]),
            ))
        }
        "com.microsoft:cancel-scheduled-message" => {
            let a = addr()?;
            let seqs: Vec<i64> = r
                .body
                .get("sequence-numbers")
                .and_then(Value::as_seq)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            b.with(|b, _| {
                let keys: Vec<_> = match &a {
                    Address::Entity(_) => b.store_keys_for(&a),
                    _ => b.store_key(&a).into_iter().collect(),
                };
                keys.iter().for_each(|k| b.cancel_scheduled(k, &seqs));
            });
            Ok((200, map(Vec::new())))
        }
        other => Err((
            501,
            "amqp:not-implemented",
            format!("management operation '{other}' is not supported"),
        )),
    }
}
