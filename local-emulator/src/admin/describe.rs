//! Entity descriptions as the Service Bus management API writes and reads them:
//! `QueueDescription`, `TopicDescription`, `SubscriptionDescription` and `RuleDescription`
//! inside Atom entries and feeds, with runtime counts (`CountDetails`).

use super::xml::{escape, Element};
use crate::broker::filter::{Action, Correlation, Filter};
use crate::broker::message::PropValue;
use crate::broker::{EntityTimes, QueueSpec, RuleSpec, StoreSettings, SubscriptionSpec, TopicSpec};
use crate::config::iso_duration_ms;
use std::fmt::Write;

const ATOM: &str = "http://www.w3.org/2005/Atom";
const SB: &str = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect";
const SB_2011: &str = "http://schemas.microsoft.com/netservices/2011/06/servicebus";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// "Forever", as .NET's `TimeSpan.MaxValue` in ISO 8601, which Service Bus writes for no limit.
const FOREVER: &str = "P10675199DT2H48M5.4775807S";
/// Durations this long or longer mean no limit.
const FOREVER_MS: i64 = 10_675_199 * 86_400_000;

/// Message counts of an entity, as `CountDetails` carries them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Available and locked messages.
    pub active: usize,
    /// Messages in the dead-letter sub-queue.
    pub dead_letter: usize,
    /// Scheduled messages.
    pub scheduled: usize,
    /// Deferred messages.
    pub deferred: usize,
    /// Bytes held.
    pub bytes: usize,
}

impl Counts {
    fn total(&self) -> usize {
        self.active + self.dead_letter + self.scheduled + self.deferred
    }
}

/// A description that cannot be used, naming the element.
#[derive(Debug, thiserror::Error)]
#[error("{element}: {message}")]
pub struct BadDescription {
    /// The element, e.g. `QueueDescription.LockDuration`.
    pub element: String,
    /// What is wrong.
    pub message: String,
}

fn bad(element: &str, message: &str) -> BadDescription {
    BadDescription {
        element: element.to_owned(),
        message: message.to_owned(),
    }
}

/// Unix ms as the UTC time Service Bus writes.
pub fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Milliseconds as an ISO 8601 duration (`PT1M`, `P14D`, `PT0.5S`); `None` is forever.
pub fn iso(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|m| *m < FOREVER_MS) else {
        return FOREVER.into();
    };
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (h, m, s, frac) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    let mut out = String::from("P");
    if days > 0 {
        let _ = write!(out, "{days}D");
    }
    if h + m + s + frac > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            let _ = write!(out, "{h}H");
        }
        if m > 0 {
            let _ = write!(out, "{m}M");
        }
        if s + frac > 0 || (h == 0 && m == 0) {
            if frac > 0 {
                let _ = write!(out, "{s}.{frac:03}S");
            } else {
                let _ = write!(out, "{s}S");
            }
        }
    }
    out
}

fn duration(el: &Element, parent: &str, name: &str) -> Result<Option<Option<i64>>, BadDescription> {
    let Some(text) = el.text_of(name) else {
        return Ok(None);
    };
    let ms = iso_duration_ms(text.trim()).ok_or_else(|| {
        bad(
            &format!("{parent}.{name}"),
            "expected an ISO 8601 duration such as PT1M",
        )
    })?;
    Ok(Some((ms < FOREVER_MS).then_some(ms)))
}

fn flag(el: &Element, parent: &str, name: &str) -> Result<Option<bool>, BadDescription> {
    match el.text_of(name).map(str::trim) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(bad(&format!("{parent}.{name}"), "expected true or false")),
    }
}

/// Reads the settings a queue or subscription description carries, refusing the ones the
/// emulator would not honour.
fn settings(el: &Element, parent: &str) -> Result<StoreSettings, BadDescription> {
    let mut s = StoreSettings::default();
    if let Some(Some(ms)) = duration(el, parent, "LockDuration")? {
        if !(5_000..=300_000).contains(&ms) {
            return Err(bad(
                &format!("{parent}.LockDuration"),
                "must be from 5 seconds to 5 minutes",
            ));
        }
        s.lock_ms = ms;
    }
    if let Some(ttl) = duration(el, parent, "DefaultMessageTimeToLive")? {
        s.ttl_ms = ttl;
    }
    if let Some(text) = el.text_of("MaxDeliveryCount") {
        s.max_delivery = text
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                bad(
                    &format!("{parent}.MaxDeliveryCount"),
                    "expected a positive integer",
                )
            })?;
    }
    s.dlq_on_expiry = flag(el, parent, "DeadLetteringOnMessageExpiration")?.unwrap_or(false);
    s.requires_session = flag(el, parent, "RequiresSession")?.unwrap_or(false);
    s.forward_to = el
        .text_of("ForwardTo")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| f.rsplit('/').next().unwrap_or(f).to_owned());
    refuse_unsupported(el, parent)?;
    Ok(s)
}

/// Settings with behaviour the emulator does not have are refused rather than ignored.
fn refuse_unsupported(el: &Element, parent: &str) -> Result<(), BadDescription> {
    if let Some(Some(_)) = duration(el, parent, "AutoDeleteOnIdle")? {
        return Err(bad(
            &format!("{parent}.AutoDeleteOnIdle"),
            "the emulator does not delete idle entities; leave it unset",
        ));
    }
    if el
        .text_of("ForwardDeadLetteredMessagesTo")
        .is_some_and(|f| !f.trim().is_empty())
    {
        return Err(bad(
            &format!("{parent}.ForwardDeadLetteredMessagesTo"),
            "the emulator does not forward dead letters; leave it unset",
        ));
    }
    match el.text_of("Status").map(str::trim) {
        None | Some("Active") => Ok(()),
        Some(other) => Err(bad(
            &format!("{parent}.Status"),
            &format!("the emulator serves Active entities only, not {other}"),
        )),
    }
}

/// A queue from its `QueueDescription`.
pub fn queue_from(name: &str, d: &Element) -> Result<QueueSpec, BadDescription> {
    let mut store = settings(d, "QueueDescription")?;
    if flag(d, "QueueDescription", "RequiresDuplicateDetection")? == Some(true) {
        store.duplicate_window_ms = Some(
            duration(d, "QueueDescription", "DuplicateDetectionHistoryTimeWindow")?
                .flatten()
                .unwrap_or(crate::config::DEFAULT_DUPLICATE_WINDOW_MS),
        );
    }
    Ok(QueueSpec {
        name: name.to_owned(),
        store,
    })
}

/// A topic from its `TopicDescription`.
pub fn topic_from(name: &str, d: &Element) -> Result<TopicSpec, BadDescription> {
    refuse_unsupported(d, "TopicDescription")?;
    let mut t = TopicSpec::new(name, Vec::new());
    if flag(d, "TopicDescription", "RequiresDuplicateDetection")? == Some(true) {
        t.duplicate_window_ms = Some(
            duration(d, "TopicDescription", "DuplicateDetectionHistoryTimeWindow")?
                .flatten()
                .unwrap_or(crate::config::DEFAULT_DUPLICATE_WINDOW_MS),
        );
    }
    Ok(t)
}

/// A subscription from its `SubscriptionDescription` (with its default rule, if it names one).
pub fn subscription_from(name: &str, d: &Element) -> Result<SubscriptionSpec, BadDescription> {
    let mut s = SubscriptionSpec::new(name);
    s.store = settings(d, "SubscriptionDescription")?;
    if let Some(rule) = d.child("DefaultRuleDescription") {
        let mut r = rule_from(
            "$Default",
            rule,
            "SubscriptionDescription.DefaultRuleDescription",
        )?;
        if let Some(n) = rule.text_of("Name").filter(|n| !n.is_empty()) {
            r.name = n.to_owned();
        }
        s.rules = vec![r];
    }
    Ok(s)
}

/// A rule from its `RuleDescription`.
pub fn rule_from(name: &str, d: &Element, parent: &str) -> Result<RuleSpec, BadDescription> {
    let filter = match d.child("Filter") {
        None => Filter::True,
        Some(f) => match f.attr("type").unwrap_or("SqlFilter") {
            "TrueFilter" => Filter::True,
            "FalseFilter" => Filter::False,
            "SqlFilter" => Filter::sql(f.text_of("SqlExpression").unwrap_or_default())
                .map_err(|e| bad(&format!("{parent}.Filter.SqlExpression"), &e.to_string()))?,
            "CorrelationFilter" => Filter::Correlation(correlation(f)),
            other => {
                return Err(bad(
                    &format!("{parent}.Filter"),
                    &format!("unknown filter type {other}"),
                ))
            }
        },
    };
    let action = match d.child("Action") {
        Some(a) if a.attr("type") == Some("SqlRuleAction") => Some(
            Action::sql(a.text_of("SqlExpression").unwrap_or_default())
                .map_err(|e| bad(&format!("{parent}.Action.SqlExpression"), &e.to_string()))?,
        ),
        None => None,
        Some(a) if matches!(a.attr("type"), None | Some("EmptyRuleAction")) => None,
        Some(a) => {
            return Err(bad(
                &format!("{parent}.Action"),
                &format!("unknown action type {}", a.attr("type").unwrap_or_default()),
            ))
        }
    };
    Ok(RuleSpec {
        name: name.to_owned(),
        filter,
        action,
    })
}

fn correlation(f: &Element) -> Correlation {
    let text = |n: &str| f.text_of(n).filter(|s| !s.is_empty()).map(str::to_owned);
    let properties = f
        .child("Properties")
        .map(|p| {
            p.children
                .iter()
                .filter_map(|kv| {
                    let key = kv.text_of("Key")?.to_owned();
                    let v = kv.child("Value")?;
                    let ty = v.attr("type").unwrap_or("string");
                    let ty = ty.rsplit(':').next().unwrap_or(ty);
                    let value = match ty {
                        "int" | "long" | "short" => v.text.parse().map(PropValue::Int).ok()?,
                        "double" | "float" | "decimal" => {
                            v.text.parse().map(PropValue::Float).ok()?
                        }
                        "boolean" => PropValue::Bool(v.text == "true"),
                        _ => PropValue::Str(v.text.clone()),
                    };
                    Some((key, value))
                })
                .collect()
        })
        .unwrap_or_default();
    Correlation {
        correlation_id: text("CorrelationId"),
        message_id: text("MessageId"),
        to: text("To"),
        reply_to: text("ReplyTo"),
        label: text("Label"),
        session_id: text("SessionId"),
        content_type: text("ContentType"),
        reply_to_session_id: text("ReplyToSessionId"),
        properties,
    }
}

fn el(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "<{name}>{value}</{name}>");
}

fn count_details(out: &mut String, c: &Counts) {
    let _ = write!(out, r#"<CountDetails xmlns:d2p1="{SB_2011}">"#);
    for (name, n) in [
        ("ActiveMessageCount", c.active),
        ("DeadLetterMessageCount", c.dead_letter),
        ("ScheduledMessageCount", c.scheduled),
        ("TransferMessageCount", 0),
        ("TransferDeadLetterMessageCount", 0),
    ] {
        let _ = write!(out, "<d2p1:{name}>{n}</d2p1:{name}>");
    }
    out.push_str("</CountDetails>");
}

fn times(out: &mut String, t: EntityTimes) {
    el(out, "CreatedAt", utc(t.created_ms));
    el(out, "UpdatedAt", utc(t.updated_ms));
    el(out, "AccessedAt", utc(t.updated_ms));
}

/// A `QueueDescription` with runtime counts.
pub fn queue_xml(q: &QueueSpec, t: EntityTimes, c: &Counts) -> String {
    let s = &q.store;
    let mut o = format!(r#"<QueueDescription xmlns="{SB}" xmlns:i="{XSI}">"#);
    el(&mut o, "LockDuration", iso(Some(s.lock_ms)));
    el(&mut o, "MaxSizeInMegabytes", 1024);
    el(
        &mut o,
        "RequiresDuplicateDetection",
        s.duplicate_window_ms.is_some(),
    );
    el(&mut o, "RequiresSession", s.requires_session);
    el(&mut o, "DefaultMessageTimeToLive", iso(s.ttl_ms));
    el(&mut o, "DeadLetteringOnMessageExpiration", s.dlq_on_expiry);
    el(
        &mut o,
        "DuplicateDetectionHistoryTimeWindow",
        iso(Some(
            s.duplicate_window_ms
                .unwrap_or(crate::config::DEFAULT_DUPLICATE_WINDOW_MS),
        )),
    );
    el(&mut o, "MaxDeliveryCount", s.max_delivery);
    el(&mut o, "EnableBatchedOperations", true);
    el(&mut o, "SizeInBytes", c.bytes);
    el(&mut o, "MessageCount", c.total());
    el(&mut o, "IsAnonymousAccessible", false);
    o.push_str("<AuthorizationRules/>");
    el(&mut o, "Status", "Active");
    if let Some(f) = &s.forward_to {
        el(&mut o, "ForwardTo", escape(f));
    }
    times(&mut o, t);
    el(&mut o, "SupportOrdering", true);
    count_details(&mut o, c);
    el(&mut o, "AutoDeleteOnIdle", FOREVER);
    el(&mut o, "EnablePartitioning", false);
    el(&mut o, "EntityAvailabilityStatus", "Available");
    el(&mut o, "EnableExpress", false);
    el(&mut o, "MaxMessageSizeInKilobytes", 256);
    o.push_str("</QueueDescription>");
    o
}

/// A `TopicDescription` with runtime counts.
pub fn topic_xml(tp: &TopicSpec, t: EntityTimes, subscriptions: usize, c: &Counts) -> String {
    let mut o = format!(r#"<TopicDescription xmlns="{SB}" xmlns:i="{XSI}">"#);
    el(&mut o, "DefaultMessageTimeToLive", FOREVER);
    el(&mut o, "MaxSizeInMegabytes", 1024);
    el(
        &mut o,
        "RequiresDuplicateDetection",
        tp.duplicate_window_ms.is_some(),
    );
    el(
        &mut o,
        "DuplicateDetectionHistoryTimeWindow",
        iso(Some(
            tp.duplicate_window_ms
                .unwrap_or(crate::config::DEFAULT_DUPLICATE_WINDOW_MS),
        )),
    );
    el(&mut o, "EnableBatchedOperations", true);
    el(&mut o, "SizeInBytes", c.bytes);
    el(&mut o, "FilteringMessagesBeforePublishing", false);
    el(&mut o, "IsAnonymousAccessible", false);
    o.push_str("<AuthorizationRules/>");
    el(&mut o, "Status", "Active");
    times(&mut o, t);
    el(&mut o, "SupportOrdering", true);
    count_details(&mut o, c);
    el(&mut o, "SubscriptionCount", subscriptions);
    el(&mut o, "AutoDeleteOnIdle", FOREVER);
    el(&mut o, "EnablePartitioning", false);
    el(&mut o, "IsExpress", false);
    el(&mut o, "EntityAvailabilityStatus", "Available");
    el(&mut o, "EnableSubscriptionPartitioning", false);
    el(&mut o, "EnableExpress", false);
    el(&mut o, "MaxMessageSizeInKilobytes", 256);
    o.push_str("</TopicDescription>");
    o
}

/// A `SubscriptionDescription` with runtime counts.
pub fn subscription_xml(s: &SubscriptionSpec, t: EntityTimes, c: &Counts) -> String {
    let st = &s.store;
    let mut o = format!(r#"<SubscriptionDescription xmlns="{SB}" xmlns:i="{XSI}">"#);
    el(&mut o, "LockDuration", iso(Some(st.lock_ms)));
    el(&mut o, "RequiresSession", st.requires_session);
    el(&mut o, "DefaultMessageTimeToLive", iso(st.ttl_ms));
    el(&mut o, "DeadLetteringOnMessageExpiration", st.dlq_on_expiry);
    el(&mut o, "DeadLetteringOnFilterEvaluationExceptions", false);
    el(&mut o, "MessageCount", c.total());
    el(&mut o, "MaxDeliveryCount", st.max_delivery);
    el(&mut o, "EnableBatchedOperations", true);
    el(&mut o, "Status", "Active");
    if let Some(f) = &st.forward_to {
        el(&mut o, "ForwardTo", escape(f));
    }
    times(&mut o, t);
    count_details(&mut o, c);
    el(&mut o, "AutoDeleteOnIdle", FOREVER);
    el(&mut o, "EntityAvailabilityStatus", "Available");
    o.push_str("</SubscriptionDescription>");
    o
}

/// A `RuleDescription`.
pub fn rule_xml(r: &RuleSpec, created_ms: i64) -> String {
    let mut o = format!(r#"<RuleDescription xmlns="{SB}" xmlns:i="{XSI}">"#);
    let sql = |o: &mut String, ty: &str, text: &str| {
        let _ = write!(
            o,
            r#"<Filter i:type="{ty}"><SqlExpression>{}</SqlExpression><CompatibilityLevel>20</CompatibilityLevel></Filter>"#,
            escape(text)
        );
    };
    match &r.filter {
        Filter::True => sql(&mut o, "TrueFilter", "1=1"),
        Filter::False => sql(&mut o, "FalseFilter", "1=0"),
        Filter::Sql(text, _) => sql(&mut o, "SqlFilter", text),
        Filter::Correlation(c) => {
            o.push_str(r#"<Filter i:type="CorrelationFilter">"#);
            for (name, v) in [
                ("CorrelationId", &c.correlation_id),
                ("MessageId", &c.message_id),
                ("To", &c.to),
                ("ReplyTo", &c.reply_to),
                ("Label", &c.label),
                ("SessionId", &c.session_id),
                ("ReplyToSessionId", &c.reply_to_session_id),
                ("ContentType", &c.content_type),
            ] {
                if let Some(v) = v {
                    el(&mut o, name, escape(v));
                }
            }
            o.push_str("<Properties>");
            for (k, v) in &c.properties {
                let (ty, text) = match v {
                    PropValue::Int(i) => ("long", i.to_string()),
                    PropValue::Float(f) => ("double", f.to_string()),
                    PropValue::Bool(b) => ("boolean", b.to_string()),
                    PropValue::Str(s) => ("string", escape(s)),
                    PropValue::Null => continue,
                };
                let _ = write!(
                    o,
                    r#"<KeyValueOfstringanyType><Key>{}</Key><Value xmlns:d6p1="http://www.w3.org/2001/XMLSchema" i:type="d6p1:{ty}">{text}</Value></KeyValueOfstringanyType>"#,
                    escape(k)
                );
            }
            o.push_str("</Properties></Filter>");
        }
    }
    match &r.action {
        Some(a) => {
            let _ = write!(
                o,
                r#"<Action i:type="SqlRuleAction"><SqlExpression>{}</SqlExpression><CompatibilityLevel>20</CompatibilityLevel></Action>"#,
                escape(&a.text)
            );
        }
        None => o.push_str(r#"<Action i:type="EmptyRuleAction"/>"#),
    }
    el(&mut o, "CreatedAt", utc(created_ms));
    el(&mut o, "Name", escape(&r.name));
    o.push_str("</RuleDescription>");
    o
}

/// An Atom entry around a description.
pub fn entry(base: &str, path: &str, title: &str, updated_ms: i64, content: &str) -> String {
    format!(
        r#"<entry xmlns="{ATOM}"><id>{base}/{path}</id><title type="text">{title}</title><published>{updated}</published><updated>{updated}</updated><link rel="self" href="{base}/{path}"/><content type="application/xml">{content}</content></entry>"#,
        base = escape(base),
        path = escape(path),
        title = escape(title),
        updated = utc(updated_ms),
    )
}

/// An Atom feed of entries, with a link to the next page when there is one.
pub fn feed(
    base: &str,
    path: &str,
    title: &str,
    entries: &[String],
    next: Option<String>,
) -> String {
    let mut o = format!(
        r#"<feed xmlns="{ATOM}"><title type="text">{title}</title><id>{base}/{path}</id><updated>{now}</updated><link rel="self" href="{base}/{path}"/>"#,
        base = escape(base),
        path = escape(path),
        title = escape(title),
        now = utc(crate::broker::handle::now_ms()),
    );
    if let Some(n) = next {
        let _ = write!(o, r#"<link rel="next" href="{}"/>"#, escape(&n));
    }
    for e in entries {
        o.push_str(e);
    }
    o.push_str("</feed>");
    o
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    #[test]
    fn durations_are_written_as_service_bus_writes_them_and_read_back() {
        assert_eq!(iso(Some(60_000)), "PT1M");
        assert_eq!(iso(Some(14 * 86_400_000)), "P14D");
        assert_eq!(iso(Some(500)), "PT0.500S");
        assert_eq!(iso(Some(0)), "PT0S");
        assert_eq!(iso(Some(90_061_000)), "P1DT1H1M1S");
        assert_eq!(iso(None), FOREVER);
        for ms in [60_000, 500, 90_061_000, 14 * 86_400_000] {
            assert_eq!(iso_duration_ms(&iso(Some(ms))), Some(ms));
        }
    }

    #[test]
    fn a_queue_description_round_trips_and_unsupported_settings_are_refused() {
        let mut q = QueueSpec::new("q");
        q.store.requires_session = true;
        q.store.lock_ms = 30_000;
        q.store.max_delivery = 4;
        q.store.duplicate_window_ms = Some(120_000);
        let xml = queue_xml(&q, EntityTimes::default(), &Counts::default());
        let back = queue_from("q", &parse(xml.as_bytes()).expect("xml")).expect("valid");
        assert_eq!(back, q);
        let auto =
            r#"<QueueDescription><AutoDeleteOnIdle>PT5M</AutoDeleteOnIdle></QueueDescription>"#;
        let e = queue_from("q", &parse(auto.as_bytes()).expect("xml")).expect_err("refused");
        assert_eq!(e.element, "QueueDescription.AutoDeleteOnIdle");
        let lock = r#"<QueueDescription><LockDuration>soon</LockDuration></QueueDescription>"#;
        assert!(queue_from("q", &parse(lock.as_bytes()).expect("xml")).is_err());
    }

    #[test]
    fn rules_with_sql_and_correlation_filters_round_trip() {
        let mut corr = Correlation {
            label: Some("refund".into()),
            ..Default::default()
        };
        corr.properties
            .insert("region".into(), PropValue::Str("eu".into()));
        corr.properties.insert("n".into(), PropValue::Int(3));
        for rule in [
            RuleSpec {
                name: "big".into(),
                filter: Filter::sql("Total > 100").expect("sql"),
                action: Some(Action::sql("SET Tier = 'gold'").expect("action")),
            },
            RuleSpec::new("corr", Filter::Correlation(corr.clone())),
            RuleSpec::new("all", Filter::True),
        ] {
            let xml = rule_xml(&rule, 0);
            let back =
                rule_from(&rule.name, &parse(xml.as_bytes()).expect("xml"), "Rule").expect("valid");
            assert_eq!(back, rule);
        }
    }
}
