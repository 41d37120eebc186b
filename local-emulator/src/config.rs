//! Entity configuration files in the shapes of Microsoft's emulators: the Service Bus
//! emulator's `Config.json` (`UserConfig.Namespaces`) and the Event Hubs emulator's
//! (`UserConfig.NamespaceConfig`). Errors name the JSON path of what is wrong.

use crate::broker::filter::{Action, Correlation, Filter};
use crate::broker::message::PropValue;
use crate::broker::{
    address, HubSpec, QueueSpec, RuleSpec, StoreSettings, SubscriptionSpec, TopicSpec, Topology,
};
use serde_json::Value as Json;
use std::path::Path;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON: {source}")]
    Json {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A value is missing or wrong.
    #[error("{file}: at {path}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// JSON path, e.g. `$.UserConfig.Namespaces[0].Queues[1].Name`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Service Bus's default duplicate detection window: ten minutes.
pub const DEFAULT_DUPLICATE_WINDOW_MS: i64 = 600_000;

/// Reads one file of either shape.
pub fn load(file: &Path) -> Result<Topology, ConfigError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: name.clone(),
        source,
    })?;
    parse(&text, &name)
}

/// Parses the text of one file of either shape.
pub fn parse(text: &str, file: &str) -> Result<Topology, ConfigError> {
    let json: Json = serde_json::from_str(text).map_err(|source| ConfigError::Json {
        file: file.into(),
        source,
    })?;
    let c = ConfigReader { file };
    let user = c.obj(&json, "$", "UserConfig")?;
    let mut t = Topology::default();
    if let Some(ns) = user.get("Namespaces") {
        for (i, n) in c.arr(ns, "$.UserConfig.Namespaces")?.iter().enumerate() {
            c.namespace(n, &format!("$.UserConfig.Namespaces[{i}]"), &mut t)?;
        }
    } else if let Some(ns) = user.get("NamespaceConfig") {
        for (i, n) in c
            .arr(ns, "$.UserConfig.NamespaceConfig")?
            .iter()
            .enumerate()
        {
            let p = format!("$.UserConfig.NamespaceConfig[{i}]");
            let entities = n.get("Entities").unwrap_or(&Json::Null);
            for (j, e) in c
                .arr(entities, &format!("{p}.Entities"))?
                .iter()
                .enumerate()
            {
                let ep = format!("{p}.Entities[{j}]");
                let name = c.name(e, &ep)?;
                let count = match e.get("PartitionCount") {
                    Some(Json::Number(n)) => n.as_u64(),
                    Some(Json::String(s)) => s.parse().ok(),
                    None => Some(1),
                    _ => None,
                }
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    c.bad(
                        &format!("{ep}.PartitionCount"),
                        "expected a partition count from 1 to 1024",
                    )
                })?;
                let mut groups = Vec::new();
                if let Some(g) = e.get("ConsumerGroups") {
                    for (k, cg) in c
                        .arr(g, &format!("{ep}.ConsumerGroups"))?
                        .iter()
                        .enumerate()
                    {
                        groups.push(c.name(cg, &format!("{ep}.ConsumerGroups[{k}]"))?);
                    }
                }
                t.hubs.push(HubSpec {
                    name,
                    partitions: count as u32,
                    consumer_groups: groups,
                });
            }
        }
    } else {
        return Err(c.bad(
            "$.UserConfig",
            "expected Namespaces (Service Bus) or NamespaceConfig (Event Hubs)",
        ));
    }
    Ok(t)
}

/// Reads one Config.json, naming the file and the JSON path of whatever it finds wrong.
struct ConfigReader<'a> {
    file: &'a str,
}

impl ConfigReader<'_> {
    fn bad(&self, path: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.into(),
            path: path.into(),
            message: message.into(),
        }
    }
    fn obj<'j>(
        &self,
        v: &'j Json,
        path: &str,
        key: &str,
    ) -> Result<&'j serde_json::Map<String, Json>, ConfigError> {
        v.get(key)
            .and_then(Json::as_object)
            .ok_or_else(|| self.bad(&format!("{path}.{key}"), "expected an object"))
    }
    fn arr<'j>(&self, v: &'j Json, path: &str) -> Result<&'j Vec<Json>, ConfigError> {
        v.as_array()
            .ok_or_else(|| self.bad(path, "expected an array"))
    }
    fn name(&self, v: &Json, path: &str) -> Result<String, ConfigError> {
        let n = v
            .get("Name")
            .and_then(Json::as_str)
            .ok_or_else(|| self.bad(&format!("{path}.Name"), "expected a string"))?;
        if !address::valid_entity_name(n) {
            return Err(self.bad(
                &format!("{path}.Name"),
                "entity names use letters, digits, '.', '-', '_' (1 to 260)",
            ));
        }
        Ok(n.to_owned())
    }

    fn namespace(&self, n: &Json, p: &str, t: &mut Topology) -> Result<(), ConfigError> {
        for (i, q) in n
            .get("Queues")
            .map(|v| self.arr(v, &format!("{p}.Queues")))
            .transpose()?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let qp = format!("{p}.Queues[{i}]");
            t.queues.push(QueueSpec {
                name: self.name(q, &qp)?,
                store: self.settings(q, &qp)?,
            });
        }
        for (i, tp) in n
            .get("Topics")
            .map(|v| self.arr(v, &format!("{p}.Topics")))
            .transpose()?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let tpp = format!("{p}.Topics[{i}]");
            let mut topic = TopicSpec::new(&self.name(tp, &tpp)?, Vec::new());
            topic.duplicate_window_ms = self.settings(tp, &tpp)?.duplicate_window_ms;
            let subs = tp
                .get("Subscriptions")
                .map(|v| self.arr(v, &format!("{tpp}.Subscriptions")))
                .transpose()?;
            for (j, s) in subs.into_iter().flatten().enumerate() {
                let sp = format!("{tpp}.Subscriptions[{j}]");
                let mut spec = SubscriptionSpec::new(&self.name(s, &sp)?);
                spec.store = self.settings(s, &sp)?;
                if let Some(rules) = s.get("Rules") {
                    let rules = self.arr(rules, &format!("{sp}.Rules"))?;
                    if !rules.is_empty() {
                        spec.rules = rules
                            .iter()
                            .enumerate()
                            .map(|(k, r)| self.rule(r, &format!("{sp}.Rules[{k}]")))
                            .collect::<Result<_, _>>()?;
                    }
                }
                topic.subscriptions.push(spec);
            }
            t.topics.push(topic);
        }
        Ok(())
    }

    fn settings(&self, e: &Json, p: &str) -> Result<StoreSettings, ConfigError> {
        let mut s = StoreSettings::default();
        let Some(props) = e.get("Properties") else {
            return Ok(s);
        };
        let pp = format!("{p}.Properties");
        let dur = |k: &str| -> Result<Option<i64>, ConfigError> {
            match props.get(k) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(v)) => iso_duration_ms(v).map(Some).ok_or_else(|| {
                    self.bad(
                        &format!("{pp}.{k}"),
                        "expected an ISO 8601 duration such as PT1M",
                    )
                }),
                Some(_) => {
                    Err(self.bad(&format!("{pp}.{k}"), "expected an ISO 8601 duration string"))
                }
            }
        };
        if let Some(l) = dur("LockDuration")? {
            s.lock_ms = l;
        }
        s.ttl_ms = dur("DefaultMessageTimeToLive")?;
        if let Some(m) = props.get("MaxDeliveryCount") {
            s.max_delivery = m.as_u64().filter(|m| *m >= 1).ok_or_else(|| {
                self.bad(
                    &format!("{pp}.MaxDeliveryCount"),
                    "expected a positive integer",
                )
            })? as u32;
        }
        s.dlq_on_expiry = props
            .get("DeadLetteringOnMessageExpiration")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        s.forward_to = props
            .get("ForwardTo")
            .and_then(Json::as_str)
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        let flag = |k: &str| -> Result<bool, ConfigError> {
            match props.get(k) {
                None | Some(Json::Null) => Ok(false),
                Some(Json::Bool(b)) => Ok(*b),
                Some(_) => Err(self.bad(&format!("{pp}.{k}"), "expected true or false")),
            }
        };
        s.requires_session = flag("RequiresSession")?;
        if flag("RequiresDuplicateDetection")? {
            s.duplicate_window_ms = Some(
                dur("DuplicateDetectionHistoryTimeWindow")?.unwrap_or(DEFAULT_DUPLICATE_WINDOW_MS),
            );
        }
        Ok(s)
    }

    fn rule(&self, r: &Json, p: &str) -> Result<RuleSpec, ConfigError> {
        let name = r
            .get("Name")
            .and_then(Json::as_str)
            .unwrap_or("$Default")
            .to_owned();
        let props = r.get("Properties").unwrap_or(&Json::Null);
        let pp = format!("{p}.Properties");
        let filter = match props.get("FilterType").and_then(Json::as_str) {
            Some("Sql") => {
                let e = props
                    .get("SqlFilter")
                    .and_then(|f| f.get("SqlExpression"))
                    .and_then(Json::as_str)
                    .ok_or_else(|| {
                        self.bad(
                            &format!("{pp}.SqlFilter.SqlExpression"),
                            "expected a string",
                        )
                    })?;
                Filter::sql(e).map_err(|err| {
                    self.bad(&format!("{pp}.SqlFilter.SqlExpression"), &err.to_string())
                })?
            }
            Some("Correlation") => {
                let c = props.get("CorrelationFilter").unwrap_or(&Json::Null);
                let f = |k: &str| {
                    c.get(k)
                        .and_then(Json::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                let mut corr = Correlation {
                    correlation_id: f("CorrelationId"),
                    message_id: f("MessageId"),
                    to: f("To"),
                    reply_to: f("ReplyTo"),
                    label: f("Label"),
                    session_id: f("SessionId"),
                    content_type: f("ContentType"),
                    reply_to_session_id: f("ReplyToSessionId"),
                    properties: Default::default(),
                };
                for (k, v) in c
                    .get("Properties")
                    .and_then(Json::as_object)
                    .into_iter()
                    .flatten()
                {
                    let v = match v {
                        Json::String(s) => PropValue::Str(s.clone()),
                        Json::Bool(b) => PropValue::Bool(*b),
                        Json::Number(n) => n
                            .as_i64()
                            .map_or(PropValue::Float(n.as_f64().unwrap_or(0.0)), PropValue::Int),
                        _ => PropValue::Null,
                    };
                    corr.properties.insert(k.clone(), v);
                }
                Filter::Correlation(corr)
            }
            None => Filter::True,
            Some(other) => {
                return Err(self.bad(
                    &format!("{pp}.FilterType"),
                    &format!("unknown filter type '{other}' (Sql or Correlation)"),
                ))
            }
        };
        let action = match props.get("Action") {
            None | Some(Json::Null) => None,
            Some(a) => {
                let path = format!("{pp}.Action.SqlExpression");
                let text = a
                    .get("SqlExpression")
                    .and_then(Json::as_str)
                    .ok_or_else(|| self.bad(&path, "expected a string"))?;
                Some(Action::sql(text).map_err(|err| self.bad(&path, &err.to_string()))?)
            }
        };
        Ok(RuleSpec {
            name,
            filter,
            action,
        })
    }
}

/// Parses the ISO 8601 durations the emulator files use (`PT1M`, `P14D`, `PT0.5S`).
pub fn iso_duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut ms = 0f64;
    let mut num = String::new();
    for (part, units) in [
        (
            days,
            [
                ('D', 86_400_000f64),
                ('W', 604_800_000f64),
                ('Y', 31_536_000_000f64),
            ],
        ),
        (
            time,
            [('H', 3_600_000f64), ('M', 60_000f64), ('S', 1_000f64)],
        ),
    ] {
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                num.push(ch);
            } else {
                let unit = units.iter().find(|(u, _)| *u == ch)?.1;
                ms += num.parse::<f64>().ok()? * unit;
                num.clear();
            }
        }
        if !num.is_empty() {
            return None;
        }
    }
    Some(ms.min(i64::MAX as f64 / 2.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_service_bus_config_is_read_with_rules_and_properties() {
        let text = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"queue.1","Properties":{"LockDuration":"PT1M","MaxDeliveryCount":3,"DefaultMessageTimeToLive":"PT1H","ForwardTo":""}}],
          "Topics":[{"Name":"topic.1","Properties":{},"Subscriptions":[{"Name":"subscription.1","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Label":"subject1","Properties":{"prop1":"value1"}}}}]},
          {"Name":"subscription.2","Rules":[{"Name":"s","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"color = 'red'"}}}]}]}]}],"Logging":{"Type":"File"}}}"#;
        let t = parse(text, "Config.json").expect("parses");
        assert_eq!(t.queues[0].store.max_delivery, 3);
        assert_eq!(t.queues[0].store.ttl_ms, Some(3_600_000));
        assert_eq!(t.topics[0].subscriptions.len(), 2);
    }

    #[test]
    fn sessions_duplicate_detection_and_rule_actions_are_read() {
        let text = r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q","Properties":{"RequiresSession":true,"RequiresDuplicateDetection":true,"DuplicateDetectionHistoryTimeWindow":"PT20S"}}],
          "Topics":[{"Name":"t","Properties":{"RequiresDuplicateDetection":true},"Subscriptions":[{"Name":"s","Properties":{"RequiresSession":true},"Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"},"Action":{"SqlExpression":"SET sys.Label = 'x'"}}}]}]}]}]}}"#;
        let t = parse(text, "Config.json").expect("parses");
        assert!(t.queues[0].store.requires_session);
        assert_eq!(t.queues[0].store.duplicate_window_ms, Some(20_000));
        assert_eq!(
            t.topics[0].duplicate_window_ms,
            Some(DEFAULT_DUPLICATE_WINDOW_MS)
        );
        let sub = &t.topics[0].subscriptions[0];
        assert!(sub.store.requires_session);
        assert_eq!(
            sub.rules[0].action.as_ref().map(|a| a.text.as_str()),
            Some("SET sys.Label = 'x'")
        );
        let bad = text.replace("SET sys.Label = 'x'", "SET = 1");
        assert!(parse(&bad, "c.json")
            .expect_err("bad action")
            .to_string()
            .contains("Rules[0].Properties.Action.SqlExpression"));
    }

    #[test]
    fn microsoft_event_hubs_config_is_read_with_string_partition_counts() {
        let text = r#"{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"emulatorNs1","Entities":[{"Name":"eh1","PartitionCount":"2","ConsumerGroups":[{"Name":"cg1"}]}]}],"LoggingConfig":{"Type":"File"}}}"#;
        let t = parse(text, "Config.json").expect("parses");
        assert_eq!(t.hubs[0].partitions, 2);
        assert_eq!(t.hubs[0].consumer_groups, vec!["cg1".to_owned()]);
    }

    #[test]
    fn errors_name_the_json_path() {
        let text =
            r#"{"UserConfig":{"Namespaces":[{"Queues":[{"Name":"ok"},{"Name":"bad name!"}]}]}}"#;
        let e = parse(text, "c.json").expect_err("invalid name").to_string();
        assert!(
            e.contains("$.UserConfig.Namespaces[0].Queues[1].Name"),
            "{e}"
        );
        let sql = r#"{"UserConfig":{"Namespaces":[{"Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"a ="}}}]}]}]}]}}"#;
        assert!(parse(sql, "c.json")
            .expect_err("bad sql")
            .to_string()
            .contains("Rules[0].Properties.SqlFilter"));
    }

    #[test]
    fn iso_durations_parse() {
        assert_eq!(iso_duration_ms("PT1M"), Some(60_000));
        assert_eq!(iso_duration_ms("P1DT1H"), Some(90_000_000));
        assert_eq!(iso_duration_ms("PT0.5S"), Some(500));
        assert_eq!(iso_duration_ms("1M"), None);
    }
}
