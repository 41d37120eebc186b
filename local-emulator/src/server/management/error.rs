//! Why a management request failed, as the status code and AMQP error condition its reply
//! carries (`status-code`, `status-description`, `errorCondition`).

use crate::broker::BrokerError;

/// Why a management request failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The request names no entity, or one that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An operation or a variant of one the emulator does not serve.
    #[error("{0}")]
    NotImplemented(String),
    /// A message in the request body could not be decoded.
    #[error("a message in the request cannot be decoded: {0}")]
    Decode(String),
    /// The broker refused the operation.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl ManagementError {
    /// The reply's status code.
    pub fn status(&self) -> i32 {
        match self {
            ManagementError::NotFound(_) | ManagementError::Broker(BrokerError::NotFound(_)) => 404,
            ManagementError::NotImplemented(_) => 501,
            ManagementError::Decode(_) | ManagementError::Broker(BrokerError::NotSupported(_)) => {
                400
            }
            ManagementError::Broker(BrokerError::LockLost) => 410,
        }
    }

    /// The reply's `errorCondition`, as Service Bus names it.
    pub fn condition(&self) -> &'static str {
        match self {
            ManagementError::NotFound(_) | ManagementError::Broker(BrokerError::NotFound(_)) => {
                "amqp:not-found"
            }
            ManagementError::NotImplemented(_)
            | ManagementError::Broker(BrokerError::NotSupported(_)) => "amqp:not-implemented",
            ManagementError::Decode(_) => "amqp:decode-error",
            ManagementError::Broker(BrokerError::LockLost) => "com.microsoft:message-lock-lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_the_status_and_condition_service_bus_uses() {
        let lost = ManagementError::Broker(BrokerError::LockLost);
        assert_eq!(
            (lost.status(), lost.condition()),
            (410, "com.microsoft:message-lock-lost")
        );
        let missing = ManagementError::NotFound("no entity".into());
        assert_eq!(
            (missing.status(), missing.condition()),
            (404, "amqp:not-found")
        );
        let unknown = ManagementError::NotImplemented("op".into());
        assert_eq!(
            (unknown.status(), unknown.condition()),
            (501, "amqp:not-implemented")
        );
    }
}
