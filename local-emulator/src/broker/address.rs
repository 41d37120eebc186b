//! Entity addresses as clients write them: `queue`, `queue/$DeadLetterQueue`,
//! `topic/Subscriptions/sub`, `hub/Partitions/N`, `hub/ConsumerGroups/cg/Partitions/N`.

/// Which node an address names, with names lower-cased (entity names are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A queue, a topic or an event hub (the broker decides which).
    Entity(String),
    /// A queue's dead-letter sub-queue.
    DeadLetter(String),
    /// A topic subscription.
    Subscription(String, String),
    /// A subscription's dead-letter sub-queue.
    SubscriptionDeadLetter(String, String),
    /// An event hub partition, for sending.
    Partition(String, u32),
    /// An event hub partition in a consumer group, for receiving.
    Consumer(String, String, u32),
    /// A management node: `$management` or `<entity>/$management`.
    Management(Option<String>),
    /// The claims-based-security node.
    Cbs,
}

impl std::fmt::Display for Address {
    /// The path as clients write it (names lower-cased).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Entity(e) => write!(f, "{e}"),
            Address::DeadLetter(e) => write!(f, "{e}/$DeadLetterQueue"),
            Address::Subscription(t, s) => write!(f, "{t}/Subscriptions/{s}"),
            Address::SubscriptionDeadLetter(t, s) => {
                write!(f, "{t}/Subscriptions/{s}/$DeadLetterQueue")
            }
            Address::Partition(h, p) => write!(f, "{h}/Partitions/{p}"),
            Address::Consumer(h, cg, p) => write!(f, "{h}/ConsumerGroups/{cg}/Partitions/{p}"),
            Address::Management(Some(e)) => write!(f, "{e}/$management"),
            Address::Management(None) => write!(f, "$management"),
            Address::Cbs => write!(f, "$cbs"),
        }
    }
}

impl std::fmt::Display for super::StoreKey {
    /// The path of the queue-like node.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::StoreKey;
        match self {
            StoreKey::Queue(q) => write!(f, "{q}"),
            StoreKey::QueueDlq(q) => write!(f, "{q}/$DeadLetterQueue"),
            StoreKey::Sub(t, s) => write!(f, "{t}/Subscriptions/{s}"),
            StoreKey::SubDlq(t, s) => write!(f, "{t}/Subscriptions/{s}/$DeadLetterQueue"),
        }
    }
}

/// Why an address cannot name a node.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid entity address {0:?}")]
pub struct BadAddress(pub String);

impl Address {
    /// Parses a path (scheme and host already stripped).
    pub fn parse(path: &str) -> Result<Address, BadAddress> {
        let lower = path.trim_matches('/').to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let bad = || BadAddress(path.to_owned());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let o = |s: &str| s.to_owned();
        Ok(match parts.as_slice() {
            ["$cbs"] => Address::Cbs,
            ["$management"] => Address::Management(None),
            [e, "$management"] => Address::Management(Some(o(e))),
            [e, "subscriptions", s, "$management"] => {
                Address::Management(Some(format!("{e}/subscriptions/{s}")))
            }
            [e] => Address::Entity(o(e)),
            [e, "$deadletterqueue"] => Address::DeadLetter(o(e)),
            [t, "subscriptions", s] => Address::Subscription(o(t), o(s)),
            [t, "subscriptions", s, "$deadletterqueue"] => {
                Address::SubscriptionDeadLetter(o(t), o(s))
            }
            [h, "partitions", p] => Address::Partition(o(h), p.parse().map_err(|_| bad())?),
            [h, "consumergroups", cg, "partitions", p] => {
                Address::Consumer(o(h), o(cg), p.parse().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        })
    }

    /// The path a token must cover to use this node (`None`: any valid token will do).
    pub fn auth_path(&self) -> Option<String> {
        match self {
            Address::Entity(e) | Address::DeadLetter(e) | Address::Partition(e, _) => {
                Some(e.clone())
            }
            Address::Subscription(t, _) | Address::SubscriptionDeadLetter(t, _) => Some(t.clone()),
            Address::Consumer(h, _, _) => Some(h.clone()),
            Address::Management(Some(e)) => Some(e.split('/').next().unwrap_or(e).to_owned()),
            Address::Management(None) | Address::Cbs => None,
        }
    }
}

/// Checks a name against Service Bus rules: letters, digits, `.`, `-`, `_`, `$`, up to 260.
pub fn valid_entity_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 260
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_every_node_kind_parse() {
        assert_eq!(
            Address::parse("Queue1"),
            Ok(Address::Entity("queue1".into()))
        );
        assert_eq!(
            Address::parse("q/$DeadLetterQueue"),
            Ok(Address::DeadLetter("q".into()))
        );
        assert_eq!(
            Address::parse("t/Subscriptions/s"),
            Ok(Address::Subscription("t".into(), "s".into()))
        );
        assert_eq!(
            Address::parse("eh1/ConsumerGroups/$Default/Partitions/1"),
            Ok(Address::Consumer("eh1".into(), "$default".into(), 1))
        );
        assert_eq!(
            Address::parse("q/$management"),
            Ok(Address::Management(Some("q".into())))
        );
        assert!(Address::parse("a//b").is_err());
        for path in [
            "q",
            "q/$DeadLetterQueue",
            "t/Subscriptions/s/$DeadLetterQueue",
            "h/ConsumerGroups/$default/Partitions/1",
            "q/$management",
        ] {
            assert_eq!(Address::parse(path).expect(path).to_string(), path);
        }
        assert!(Address::parse("eh/Partitions/x").is_err());
    }
}
