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
    /// An argument of the request is wrong (a rule's SQL, a missing name).
    #[error("{0}")]
    Argument(String),
    /// The broker refused the operation.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl ManagementError {
    /// The reply's status code.
    pub fn status(&self) -> i32 {
        match self {
            ManagementError::NotFound(_) => 404,
            ManagementError::NotImplemented(_) => 501,
            ManagementError::Decode(_) | ManagementError::Argument(_) => 400,
            ManagementError::Broker(e) => broker_status(e),
        }
    }

    /// The reply's `errorCondition`, as Service Bus names it.
    pub fn condition(&self) -> &'static str {
        match self {
            ManagementError::NotFound(_) => "amqp:not-found",
            ManagementError::NotImplemented(_) => "amqp:not-implemented",
            ManagementError::Decode(_) => "amqp:decode-error",
            ManagementError::Argument(_) => "com.microsoft:argument-error",
            ManagementError::Broker(e) => broker_condition(e),
        }
    }
}

/// The status code a management reply gives for a broker refusal.
fn broker_status(e: &BrokerError) -> i32 {
    match e {
        BrokerError::NotFound(_) | BrokerError::MessageNotFound(_) => 404,
        BrokerError::NotSupported(_) | BrokerError::NotAllowed(_) => 400,
        BrokerError::LockLost | BrokerError::SessionLockLost(_) => 410,
        BrokerError::SessionCannotBeLocked(_)
        | BrokerError::LinkStolen(_)
        | BrokerError::AlreadyExists(_) => 409,
        BrokerError::NoSessionAvailable => 408,
    }
}

/// The AMQP error condition Service Bus and Event Hubs use for a broker refusal, on links and
/// in management replies alike; the SDKs turn each into their own error type.
pub fn broker_condition(e: &BrokerError) -> &'static str {
    match e {
        BrokerError::NotFound(_) => "amqp:not-found",
        BrokerError::NotSupported(_) => "amqp:not-implemented",
        BrokerError::NotAllowed(_) => "amqp:not-allowed",
        BrokerError::LockLost => "com.microsoft:message-lock-lost",
        BrokerError::SessionCannotBeLocked(_) => "com.microsoft:session-cannot-be-locked",
        BrokerError::SessionLockLost(_) => "com.microsoft:session-lock-lost",
        BrokerError::NoSessionAvailable => "com.microsoft:timeout",
        BrokerError::MessageNotFound(_) => "com.microsoft:message-not-found",
        BrokerError::LinkStolen(_) => "amqp:link:stolen",
        BrokerError::AlreadyExists(_) => "com.microsoft:entity-already-exists",
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
