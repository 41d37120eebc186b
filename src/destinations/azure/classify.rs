//! What a broker's answer means for a delivery: accepted → delivered; resource limits,
//! server busy, timeouts and lost connections → retry; a missing entity, refused
//! authorization or an oversized message → permanent. The broker's description is kept.

use azure_core_amqp::{AmqpDescribedError, AmqpError, AmqpErrorKind, AmqpSendOutcome};

use crate::destinations::Outcome;

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

/// The outcome of a broker's disposition of one transfer.
pub fn send_outcome(outcome: &AmqpSendOutcome) -> Outcome {
    match outcome {
        AmqpSendOutcome::Accepted => Outcome::Delivered { status: None },
        AmqpSendOutcome::Rejected(Some(e)) => described(e, "the broker rejected the message"),
        AmqpSendOutcome::Rejected(None) => Outcome::Permanent {
            error: "the broker rejected the message without saying why".into(),
            status: None,
        },
        AmqpSendOutcome::Released => retry("the broker released the message (not stored)".into()),
        AmqpSendOutcome::Modified(m) => retry(format!(
            "the broker did not store the message (modified: delivery failed {:?}, undeliverable here {:?})",
            m.delivery_failed, m.undeliverable_here
        )),
    }
}

/// The outcome of an error of `azure_core` or `azure_core_amqp` while `doing` something.
pub fn error(doing: &str, err: &azure_core::Error) -> Outcome {
    if let Some(amqp) = find_amqp(err) {
        if let Some(outcome) = amqp_error(doing, amqp) {
            return outcome;
        }
    }
    // The text of the whole chain: fe2o3 reports some remote errors only as text.
    let text = chain_text(err);
    match PERMANENT.iter().find(|c| text.contains(*c)) {
        Some(_) => Outcome::Permanent {
            error: format!("{doing}: {text}"),
            status: None,
        },
        None => retry(format!("{doing}: {text}")),
    }
}

fn amqp_error(doing: &str, e: &AmqpError) -> Option<Outcome> {
    match e.kind() {
        AmqpErrorKind::AmqpDescribedError(d) => Some(described(d, doing)),
        AmqpErrorKind::ManagementStatusCode(code, description) => {
            let code = u16::from(*code);
            let text = format!(
                "{doing}: the broker answered {code}{}",
                description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
            Some(match code {
                401 | 403 | 404 | 400 => Outcome::Permanent {
                    error: text,
                    status: None,
                },
                _ => retry(text),
            })
        }
        _ => None,
    }
}

fn described(e: &AmqpDescribedError, doing: &str) -> Outcome {
    let condition = e.condition.to_string();
    let text = format!(
        "{doing}: {condition}{}",
        e.description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    if PERMANENT.contains(&condition.as_str()) {
        Outcome::Permanent {
            error: text,
            status: None,
        }
    } else {
        retry(text)
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        error,
        status: None,
        retry_after: None,
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

/// Every message of the chain of `err`, joined.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}
