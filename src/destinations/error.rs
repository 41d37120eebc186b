//! Why a send failed, kept with its cause until the attempt is recorded: the errors of every
//! destination under one type, cheap to share (one AMQP batch answers many deliveries).

use std::sync::Arc;

use super::azure::BrokerError;
use super::webhook::WebhookError;

/// Why a send failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// A webhook receiver refused, failed or could not be reached.
    #[error(transparent)]
    Webhook(Arc<WebhookError>),
    /// Service Bus or Event Hubs refused, failed or could not be reached.
    #[error(transparent)]
    Broker(Arc<BrokerError>),
    /// The endpoint's settings cannot be used on this host (say, an identity it lacks).
    #[error("the endpoint cannot be used: {0}")]
    Unusable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A plug-in refused, failed, ran into a limit or could not be loaded.
    #[error("{0}")]
    Plugin(Arc<str>),
}

impl From<WebhookError> for SendError {
    fn from(e: WebhookError) -> Self {
        SendError::Webhook(Arc::new(e))
    }
}

impl From<BrokerError> for SendError {
    fn from(e: BrokerError) -> Self {
        SendError::Broker(Arc::new(e))
    }
}

/// `e` and every cause below it, joined with `: `; a cause whose text is already there is
/// not repeated. This is the text an attempt records.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_keeps_every_cause_once() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "outer: disk on fire");
        let shared = SendError::from(WebhookError::Status { status: 503 });
        assert_eq!(error_chain(&shared), "receiver answered 503");
    }
}
