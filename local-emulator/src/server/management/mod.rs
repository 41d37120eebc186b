//! Request/response nodes: `$cbs` (put-token) and `$management`, one function per operation:
//! Event Hubs `READ` in [`event_hubs`], Service Bus renew-lock, peek, schedule,
//! cancel-scheduled, update-disposition, receive-by-sequence-number and the session
//! operations in [`service_bus`], rule management in [`rules`]. Failures are
//! [`ManagementError`]s, answered with their status code and AMQP condition.

mod error;
mod event_hubs;
mod rules;
mod service_bus;

use super::cbs::{self, Grant};
use super::codec::Value;
use super::context::Context;
use super::{message, quirks};
use crate::broker::Address;
pub use error::{broker_condition, ManagementError};

/// A management request: its message id, reply-to, application properties and body.
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

impl Request {
    /// An application property as text (empty when absent).
    fn app_text(&self, key: &str) -> &str {
        self.app
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A body entry as text (empty when absent).
    fn body_text(&self, key: &str) -> &str {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// What a successful operation answers: a status code and a body.
type Answer = Result<(i32, Value), ManagementError>;

/// An AMQP map with string keys.
fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::str(k), v))
            .collect(),
    )
}

/// The answer to a `put-token` request.
pub struct CbsReply {
    /// The reply message, encoded.
    pub reply: Vec<u8>,
    /// Where to send it.
    pub reply_to: Option<String>,
    /// What the token grants, if it was accepted.
    pub grant: Option<Grant>,
}

/// Handles a `put-token` request.
pub fn cbs(ctx: &Context, payload: &[u8], now_s: i64) -> CbsReply {
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
        (
            quirks::status_properties(400, "only put-token is supported"),
            None,
        )
    } else {
        match cbs::verify(token, audience, &ctx.policies, ctx.allow_jwt, now_s) {
            Ok(g) => (quirks::status_properties(202, "Accepted"), Some(g)),
            Err(e) => {
                tracing::debug!(audience, error = %e, "token refused");
                (
                    quirks::status_properties(401, &format!("Unauthorized: {e}")),
                    None,
                )
            }
        }
    };
    CbsReply {
        reply: message::reply(r.message_id, r.reply_to.as_deref(), app, Value::Null),
        reply_to: r.reply_to,
        grant,
    }
}

/// Handles a management request on `$management` (Event Hubs) or `<entity>/$management`.
pub fn handle(ctx: &Context, entity: Option<&str>, payload: &[u8]) -> (Vec<u8>, Option<String>) {
    let r = request(payload);
    let (app, body) = match run(ctx, entity, &r) {
        Ok((code, body)) => (
            quirks::status_properties(code, if code == 204 { "No Content" } else { "OK" }),
            body,
        ),
        Err(e) => {
            let mut s = quirks::status_properties(e.status(), &e.to_string());
            s.push(("errorCondition", Value::sym(e.condition())));
            (s, Value::Null)
        }
    };
    (
        message::reply(r.message_id, r.reply_to.as_deref(), app, body),
        r.reply_to,
    )
}

/// The operation the request names.
fn run(ctx: &Context, entity: Option<&str>, r: &Request) -> Answer {
    let op = r.app_text("operation");
    // Service Bus operations work on the entity whose `$management` node was addressed.
    let entity = || {
        entity
            .and_then(|e| Address::parse(e).ok())
            .ok_or_else(|| ManagementError::NotFound(format!("no entity for {op}")))
    };
    match op {
        "READ" => event_hubs::read(ctx, r),
        "com.microsoft:renew-lock" => service_bus::renew_lock(ctx, r),
        "com.microsoft:update-disposition" => service_bus::update_disposition(ctx, r),
        "com.microsoft:peek-message" => service_bus::peek(ctx, &entity()?, r),
        "com.microsoft:schedule-message" => service_bus::schedule(ctx, &entity()?, r),
        "com.microsoft:cancel-scheduled-message" => {
            service_bus::cancel_scheduled(ctx, &entity()?, r)
        }
        "com.microsoft:receive-by-sequence-number" => {
            service_bus::receive_by_sequence_number(ctx, &entity()?, r)
        }
        "com.microsoft:renew-session-lock" => service_bus::renew_session_lock(ctx, &entity()?, r),
        "com.microsoft:get-session-state" => service_bus::get_session_state(ctx, &entity()?, r),
        "com.microsoft:set-session-state" => service_bus::set_session_state(ctx, &entity()?, r),
        "com.microsoft:add-rule" => rules::add_rule(ctx, &entity()?, r),
        "com.microsoft:remove-rule" => rules::remove_rule(ctx, &entity()?, r),
        "com.microsoft:enumerate-rules" => rules::enumerate_rules(ctx, &entity()?, r),
        other => Err(ManagementError::NotImplemented(format!(
            "management operation '{other}' is not supported"
        ))),
    }
}
