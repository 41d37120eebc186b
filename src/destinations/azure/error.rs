//! Why sending to Service Bus or Event Hubs failed, and why an endpoint's settings cannot be
//! used on this host, with the client library's errors as causes.

use std::time::Duration;

use super::message::MessageError;
use crate::destinations::network::HostError;

/// Why a send to a broker failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker refused with an AMQP error condition (`amqp:not-found`…).
    #[error("{doing}: {condition}{}", detail(description))]
    Refused {
        /// What Herald was doing (`sending to amqp://…/orders`).
        doing: String,
        /// The condition.
        condition: String,
        /// The broker's description.
        description: Option<String>,
    },
    /// A claims-based-security or management request was answered with a status code.
    #[error("{doing}: the broker answered {code}{}", detail(description))]
    Status {
        /// What Herald was doing.
        doing: String,
        /// The status code.
        code: u16,
        /// The broker's description.
        description: Option<String>,
    },
    /// The broker rejected the message and said nothing more.
    #[error("the broker rejected the message without saying why")]
    RejectedWithoutReason,
    /// The broker released the message: it was not stored.
    #[error("the broker released the message (not stored)")]
    Released,
    /// The broker modified the delivery: it was not stored.
    #[error("the broker did not store the message (modified: delivery failed {delivery_failed:?}, undeliverable here {undeliverable_here:?})")]
    Modified {
        /// The broker's `delivery-failed` flag.
        delivery_failed: Option<bool>,
        /// The broker's `undeliverable-here` flag.
        undeliverable_here: Option<bool>,
    },
    /// The AMQP client failed (connection, session, link, I/O).
    #[error("{doing}")]
    Client {
        /// What Herald was doing.
        doing: String,
        /// The client's error.
        #[source]
        source: azure_core::Error,
    },
    /// Something took longer than Herald waits.
    #[error("{doing} timed out after {after:?}")]
    Timeout {
        /// What Herald was doing.
        doing: String,
        /// How long it waited.
        after: Duration,
    },
    /// No token for the entity.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The entity's sender task is gone (the endpoint changed meanwhile).
    #[error("the {0} sender stopped (the endpoint changed); sending again")]
    SenderStopped(&'static str),
    /// The message can never be sent (too large, a bad session id…).
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The message is larger than the entity takes.
    #[error("the event is larger than {0} accepts in one message")]
    TooLarge(String),
    /// The message could not be encoded.
    #[error("the message cannot be encoded")]
    Encode(#[source] azure_core::Error),
    /// The namespace's host is refused by the network policy, or does not resolve (checked
    /// before connecting, so nothing is learnt of what listens behind a refused host).
    #[error("not connecting: {0}")]
    Network(#[from] HostError),
}

fn detail(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// Why an endpoint's settings cannot be used on this host.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A ready-made SAS token without a readable expiry.
    #[error("the SAS token has no valid `se` expiry")]
    SasTokenExpiry,
    /// An Entra ID credential could not be built (say, no managed identity here).
    #[error("the {kind} credential cannot be used here")]
    Identity {
        /// Which credential.
        kind: &'static str,
        /// Why.
        #[source]
        source: azure_core::Error,
    },
    /// The namespace does not make a URL.
    #[error("invalid namespace URL")]
    NamespaceUrl(#[source] url::ParseError),
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The configured SAS token has expired: retrying will not help.
    #[error("the configured SAS token has expired; give the endpoint a new one")]
    Expired,
    /// Microsoft Entra ID gave no token (throttling, network, a misconfigured identity).
    #[error("Entra ID token")]
    Entra(#[source] azure_core::Error),
}
