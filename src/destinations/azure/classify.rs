//! What a broker's answer means for a delivery, as pure functions over [`BrokerError`]:
//! accepted → delivered; resource limits, server busy, timeouts and lost connections → retry;
//! a missing entity, refused authorization or an oversized message → permanent. The broker's
//! condition and description are kept.

use crate::destinations::network::HostError;
use azure_core_amqp::{AmqpDescribedError, AmqpError, AmqpErrorKind, AmqpSendOutcome};

use super::error::BrokerError;
use super::error::TokenError;
use crate::destinations::{error_chain, Outcome};

/// Conditions that retrying will not cure.
const PERMANENT: &[&str] = &[
    "amqp:not-found",
    "amqp:unauthorized-access",
    "amqp:link:message-size-exceeded",
    "amqp:not-allowed",
    "amqp:not-implemented",
    "amqp:invalid-field",
    "amqp:decode-error",
    "com.microsoft:entity-disabled",
    "com.microsoft:message-lock-lost",
    "com.microsoft:argument-error",
    "com.microsoft:argument-out-of-range",
];

/// The error of a broker's disposition of one transfer; `None` when it was accepted.
pub fn disposition(outcome: &AmqpSendOutcome) -> Option<BrokerError> {
    match outcome {
        AmqpSendOutcome::Accepted => None,
        AmqpSendOutcome::Rejected(Some(e)) => {
            Some(described(e, "the broker rejected the message".into()))
        }
        AmqpSendOutcome::Rejected(None) => Some(BrokerError::RejectedWithoutReason),
        AmqpSendOutcome::Released => Some(BrokerError::Released),
        AmqpSendOutcome::Modified(m) => Some(BrokerError::Modified {
            delivery_failed: m.delivery_failed,
            undeliverable_here: m.undeliverable_here,
        }),
    }
}

/// The error of `azure_core` or `azure_core_amqp` while `doing` something: the broker's own
/// condition or status when it sent one, the client's error otherwise.
pub fn client_error(doing: String, err: azure_core::Error) -> BrokerError {
    if let Some(amqp) = find_amqp(&err) {
        match amqp.kind() {
            AmqpErrorKind::AmqpDescribedError(d) => return described(d, doing),
            AmqpErrorKind::ManagementStatusCode(code, description) => {
                return BrokerError::Status {
                    doing,
                    code: u16::from(*code),
                    description: description.clone(),
                }
            }
            _ => {}
        }
    }
    BrokerError::Client { doing, source: err }
}

/// Whether retrying cannot cure `e`.
pub fn is_permanent(e: &BrokerError) -> bool {
    match e {
        BrokerError::Refused { condition, .. } => PERMANENT.contains(&condition.as_str()),
        BrokerError::Status { code, .. } => matches!(code, 400 | 401 | 403 | 404),
        // fe2o3 reports some remote errors only as text: look for a condition in the chain.
        BrokerError::Client { .. } => {
            let text = error_chain(e);
            PERMANENT.iter().any(|c| text.contains(c))
        }
        BrokerError::Token(TokenError::Expired) => true,
        BrokerError::Network(HostError::Blocked(_)) => true,
        BrokerError::Network(HostError::Resolve { .. }) => false,
        BrokerError::Token(TokenError::Entra(_)) => false,
        BrokerError::RejectedWithoutReason
        | BrokerError::Message(_)
        | BrokerError::TooLarge(_)
        | BrokerError::Encode(_) => true,
        BrokerError::Released
        | BrokerError::Modified { .. }
        | BrokerError::Timeout { .. }
        | BrokerError::SenderStopped(_) => false,
    }
}

/// The outcome of a failed send.
pub fn outcome(e: BrokerError) -> Outcome {
    if is_permanent(&e) {
        Outcome::Permanent {
            error: e.into(),
            status: None,
        }
    } else {
        Outcome::Retry {
            error: e.into(),
            status: None,
            retry_after: None,
        }
    }
}

fn described(e: &AmqpDescribedError, doing: String) -> BrokerError {
    BrokerError::Refused {
        doing,
        condition: e.condition.to_string(),
        description: e.description.clone(),
    }
}

/// The first `AmqpError` in the chain of `err`.
fn find_amqp(err: &azure_core::Error) -> Option<&AmqpError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(a) = e.downcast_ref::<AmqpError>() {
            return Some(a);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(condition: &str) -> BrokerError {
        BrokerError::Refused {
            doing: "sending to amqp://localhost:5672/orders".into(),
            condition: condition.into(),
            description: Some("why".into()),
        }
    }

    #[test]
    fn missing_entities_and_refused_authorization_are_permanent() {
        assert!(is_permanent(&refused("amqp:not-found")));
        assert!(is_permanent(&refused("amqp:unauthorized-access")));
        assert!(is_permanent(&BrokerError::Status {
            doing: "authorizing".into(),
            code: 401,
            description: None
        }));
        assert!(is_permanent(&BrokerError::Token(TokenError::Expired)));
    }

    #[test]
    fn busy_brokers_timeouts_and_released_messages_are_retried() {
        assert!(!is_permanent(&refused("com.microsoft:server-busy")));
        assert!(!is_permanent(&refused("amqp:resource-limit-exceeded")));
        assert!(!is_permanent(&BrokerError::Released));
        assert!(!is_permanent(&BrokerError::Timeout {
            doing: "connecting".into(),
            after: std::time::Duration::from_secs(30)
        }));
        assert!(!is_permanent(&BrokerError::Status {
            doing: "authorizing".into(),
            code: 503,
            description: None
        }));
    }

    #[test]
    fn the_error_text_carries_the_condition_and_description() {
        assert_eq!(
            refused("amqp:not-found").to_string(),
            "sending to amqp://localhost:5672/orders: amqp:not-found: why"
        );
        assert!(disposition(&AmqpSendOutcome::Accepted).is_none());
    }
}
