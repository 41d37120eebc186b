//! Service Bus management on `<entity>/$management`: lock renewal, settlement by lock token
//! (Python's fallback when link settlement goes unconfirmed, and the way to settle deferred
//! messages), peek, scheduling and cancelling scheduled messages, receiving deferred messages
//! by sequence number, and sessions (lock renewal, state).

use super::{map, Answer, ManagementError, Request};
use crate::broker::Address;
use crate::server::codec::Value;
use crate::server::context::Context;
use crate::server::{message, quirks};

/// The lock tokens of a request body.
fn tokens(body: &Value) -> Vec<uuid::Uuid> {
    body.get("lock-tokens")
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(quirks::lock_token_from_value)
        .collect()
}

/// `com.microsoft:renew-lock` `{lock-tokens}` → `{expirations}`.
pub(super) fn renew_lock(ctx: &Context, r: &Request) -> Answer {
    let ts = tokens(&r.body);
    let expirations = ctx.broker.with(|b, now| {
        ts.iter()
            .map(|t| b.renew(*t, now).map(Value::Timestamp))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok((200, map(vec![("expirations", Value::Array(expirations))])))
}

/// `com.microsoft:update-disposition` `{disposition-status, lock-tokens, deadletter-*}`.
pub(super) fn update_disposition(ctx: &Context, r: &Request) -> Answer {
    let ts = tokens(&r.body);
    let status = r.body_text("disposition-status");
    let props = r
        .body
        .get("properties-to-modify")
        .map(message::properties)
        .unwrap_or_default();
    let reason = r.body_text("deadletter-reason");
    let description = r.body_text("deadletter-description");
    if !matches!(
        status,
        "completed" | "suspended" | "abandoned" | "defered" | "deferred"
    ) {
        return Err(ManagementError::Argument(format!(
            "disposition-status '{status}' is not one of completed, abandoned, defered, suspended"
        )));
    }
    ctx.broker.with(|b, now| {
        ts.iter().try_for_each(|t| match status {
            "completed" => b.complete(*t),
            "suspended" => b.dead_letter(*t, reason, description, now),
            // Service Bus spells it with one r.
            "defered" | "deferred" => b.defer(*t, &props),
            _ => b.abandon(*t, now, &props),
        })
    })?;
    Ok((200, map(Vec::new())))
}

/// `com.microsoft:peek-message` `{from-sequence-number, message-count}` → `{messages}` or 204.
pub(super) fn peek(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let key = ctx.broker.with(|b, _| b.store_key(entity))?;
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
    let session = r.body.get("session-id").and_then(Value::as_str);
    let msgs = ctx.broker.with(|b, _| b.peek(&key, from, count, session));
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

/// `com.microsoft:schedule-message` `{messages: [{message}]}` → `{sequence-numbers}`.
pub(super) fn schedule(ctx: &Context, entity: &Address, r: &Request) -> Answer {
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
        let mut m =
            message::to_message(bytes).map_err(|e| ManagementError::Decode(e.to_string()))?;
        message::give_id(&mut m);
        msgs.push(m);
    }
    let seqs = ctx.broker.with(|b, now| {
        msgs.into_iter()
            .map(|m| {
                b.send(entity, m, now)
                    .map(|s| Value::Long(s.first().copied().unwrap_or(0)))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok((200, map(vec![("sequence-numbers", Value::Array(seqs))])))
}

/// The `sequence-numbers` of a request body.
fn sequence_numbers(r: &Request) -> Vec<i64> {
    r.body
        .get("sequence-numbers")
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_i64)
        .collect()
}

/// `com.microsoft:cancel-scheduled-message` `{sequence-numbers}`.
pub(super) fn cancel_scheduled(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let seqs = sequence_numbers(r);
    ctx.broker.with(|b, _| {
        let keys: Vec<_> = match entity {
            Address::Entity(_) => b.store_keys_for(entity),
            _ => b.store_key(entity).into_iter().collect(),
        };
        keys.iter().for_each(|k| b.cancel_scheduled(k, &seqs));
    });
    Ok((200, map(Vec::new())))
}

/// `com.microsoft:receive-by-sequence-number` `{sequence-numbers, receiver-settle-mode,
/// session-id?}` → `{messages: [{lock-token, message}]}`: deferred messages, locked unless the
/// receiver settles on receipt (mode 0, receive and delete).
pub(super) fn receive_by_sequence_number(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let key = ctx.broker.with(|b, _| b.store_key(entity))?;
    let seqs = sequence_numbers(r);
    let lock = r.body.get("receiver-settle-mode").and_then(Value::as_u64) != Some(0);
    let session = r.body.get("session-id").and_then(Value::as_str);
    let delivered = ctx
        .broker
        .with(|b, now| b.receive_deferred(&key, &seqs, session, lock, now))?;
    let list = delivered
        .iter()
        .map(|d| {
            let mut entry = vec![(
                "message",
                Value::Binary(message::service_bus(&d.stored, d.lock.map(|l| l.1))),
            )];
            if let Some((token, _)) = d.lock {
                entry.push(("lock-token", Value::Uuid(*token.as_bytes())));
            }
            map(entry)
        })
        .collect();
    Ok((200, map(vec![("messages", Value::List(list))])))
}

/// The session a session request names.
fn session_id(r: &Request) -> Result<String, ManagementError> {
    r.body
        .get("session-id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ManagementError::Decode("the request names no session-id".into()))
}

/// `com.microsoft:renew-session-lock` `{session-id}` → `{expiration}`.
pub(super) fn renew_session_lock(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let key = ctx.broker.with(|b, _| b.store_key(entity))?;
    let session = session_id(r)?;
    let until = ctx
        .broker
        .with(|b, now| b.renew_session(&key, &session, now))?;
    Ok((200, map(vec![("expiration", Value::Timestamp(until))])))
}

/// `com.microsoft:get-session-state` `{session-id}` → `{session-state}` (binary, or null).
pub(super) fn get_session_state(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let key = ctx.broker.with(|b, _| b.store_key(entity))?;
    let session = session_id(r)?;
    let state = ctx
        .broker
        .with(|b, now| b.session_state(&key, &session, now))?;
    Ok((
        200,
        map(vec![(
            "session-state",
            state.map_or(Value::Null, Value::Binary),
        )]),
    ))
}

/// `com.microsoft:set-session-state` `{session-id, session-state}` (binary, or null to clear).
pub(super) fn set_session_state(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let key = ctx.broker.with(|b, _| b.store_key(entity))?;
    let session = session_id(r)?;
    let state = match r.body.get("session-state").map(Value::inner) {
        None | Some(Value::Null) => None,
        Some(Value::Binary(b)) => Some(b.clone()),
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(_) => {
            return Err(ManagementError::Decode(
                "session-state must be binary or null".into(),
            ))
        }
    };
    ctx.broker
        .with(|b, now| b.set_session_state(&key, &session, state, now))?;
    Ok((200, map(Vec::new())))
}
