//! Rule management on `<topic>/Subscriptions/<sub>/$management`, as the JavaScript and .NET
//! rule managers use it: `com.microsoft:add-rule`, `com.microsoft:remove-rule`,
//! `com.microsoft:enumerate-rules`, with Service Bus's described types for rule descriptions.

use super::{map, Answer, ManagementError, Request};
use crate::broker::filter::{Action, Correlation, Filter};
use crate::broker::{Address, RuleSpec};
use crate::server::codec::Value;
use crate::server::context::Context;
use crate::server::message;

/// Descriptor codes of the rule description types.
mod code {
    pub const RULE_DESCRIPTION: u64 = 0x0000_0137_0000_0004;
    pub const EMPTY_ACTION: u64 = 0x0000_0137_0000_0005;
    pub const SQL_ACTION: u64 = 0x0000_0137_0000_0006;
    pub const SQL_FILTER: u64 = 0x0000_0013_7000_0006;
    pub const TRUE_FILTER: u64 = 0x0000_0013_7000_0007;
    pub const FALSE_FILTER: u64 = 0x0000_0013_7000_0008;
    pub const CORRELATION_FILTER: u64 = 0x0000_0013_7000_0009;
}

/// Service Bus's SQL compatibility level, sent with every SQL filter and action.
const COMPATIBILITY_LEVEL: i32 = 20;

fn subscription(entity: &Address) -> Result<(String, String), ManagementError> {
    match entity {
        Address::Subscription(t, s) => Ok((t.clone(), s.clone())),
        other => Err(ManagementError::Argument(format!(
            "rules belong to subscriptions; '{other}' is not one"
        ))),
    }
}

fn rule_name(r: &Request) -> Result<String, ManagementError> {
    let name = r.body_text("rule-name");
    if name.is_empty() || name.len() > 50 {
        return Err(ManagementError::Argument(
            "rule-name must be 1 to 50 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// `com.microsoft:add-rule` `{rule-name, rule-description: {sql-filter | correlation-filter,
/// sql-rule-action?}}`.
pub(super) fn add_rule(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let (topic, sub) = subscription(entity)?;
    let name = rule_name(r)?;
    let desc = r.body.get("rule-description").unwrap_or(&Value::Null);
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        ManagementError::Argument(format!("{what} of rule '{name}': {e}"))
    };
    let filter = if let Some(f) = desc.get("sql-filter") {
        let text = f
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Filter::sql(text).map_err(|e| bad("the SQL filter", &e))?
    } else if let Some(c) = desc.get("correlation-filter") {
        Filter::Correlation(correlation(c))
    } else if desc.get("false-filter").is_some() {
        Filter::False
    } else if desc.get("true-filter").is_some() {
        Filter::True
    } else {
        return Err(ManagementError::Argument(format!(
            "rule '{name}' names no filter: give sql-filter, correlation-filter, true-filter or false-filter"
        )));
    };
    let action = match desc
        .get("sql-rule-action")
        .and_then(|a| a.get("expression"))
        .and_then(Value::as_str)
    {
        Some(text) => Some(Action::sql(text).map_err(|e| bad("the SQL action", &e))?),
        None => None,
    };
    let rule = RuleSpec {
        name,
        filter,
        action,
    };
    ctx.broker.with(|b, _| b.add_rule(&topic, &sub, rule))?;
    Ok((200, map(Vec::new())))
}

fn correlation(c: &Value) -> Correlation {
    let f = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Correlation {
        correlation_id: f("correlation-id"),
        message_id: f("message-id"),
        to: f("to"),
        reply_to: f("reply-to"),
        label: f("label"),
        session_id: f("session-id"),
        content_type: f("content-type"),
        reply_to_session_id: f("reply-to-session-id"),
        properties: c
            .get("properties")
            .and_then(Value::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), message::prop(v))))
            .collect(),
    }
}

/// `com.microsoft:remove-rule` `{rule-name}`.
pub(super) fn remove_rule(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let (topic, sub) = subscription(entity)?;
    let name = rule_name(r)?;
    ctx.broker.with(|b, _| b.remove_rule(&topic, &sub, &name))?;
    Ok((200, map(Vec::new())))
}

/// `com.microsoft:enumerate-rules` `{top, skip}` → `{rules: [{rule-description}]}`, or 204
/// when there are none past `skip`.
pub(super) fn enumerate_rules(ctx: &Context, entity: &Address, r: &Request) -> Answer {
    let (topic, sub) = subscription(entity)?;
    let int = |k: &str| r.body.get(k).and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
    let top = match int("top") {
        0 => usize::MAX,
        n => n,
    };
    let rules = ctx.broker.with(|b, _| b.rules(&topic, &sub))?;
    let list: Vec<Value> = rules
        .iter()
        .skip(int("skip"))
        .take(top)
        .map(|rule| map(vec![("rule-description", description(rule))]))
        .collect();
    if list.is_empty() {
        return Ok((204, map(Vec::new())));
    }
    Ok((200, map(vec![("rules", Value::List(list))])))
}

/// A rule as Service Bus describes it: filter, action, name.
fn description(rule: &RuleSpec) -> Value {
    let text = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::str);
    let filter = match &rule.filter {
        Filter::True => Value::described_list(code::TRUE_FILTER, Vec::new()),
        Filter::False => Value::described_list(code::FALSE_FILTER, Vec::new()),
        Filter::Sql(sql, _) => Value::described_list(
            code::SQL_FILTER,
            vec![Value::str(sql), Value::Int(COMPATIBILITY_LEVEL)],
        ),
        Filter::Correlation(c) => Value::described_list(
            code::CORRELATION_FILTER,
            vec![
                text(&c.correlation_id),
                text(&c.message_id),
                text(&c.to),
                text(&c.reply_to),
                text(&c.label),
                text(&c.session_id),
                text(&c.reply_to_session_id),
                text(&c.content_type),
                Value::Map(
                    c.properties
                        .iter()
                        .map(|(k, v)| (Value::str(k), message::prop_value(v)))
                        .collect(),
                ),
            ],
        ),
    };
    let action = match &rule.action {
        Some(a) => Value::described_list(
            code::SQL_ACTION,
            vec![Value::str(&a.text), Value::Int(COMPATIBILITY_LEVEL)],
        ),
        None => Value::described_list(code::EMPTY_ACTION, Vec::new()),
    };
    Value::described_list(
        code::RULE_DESCRIPTION,
        vec![filter, action, Value::str(&rule.name)],
    )
}
