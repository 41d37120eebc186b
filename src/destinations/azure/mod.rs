//! Azure Service Bus and Event Hubs destinations over AMQP 1.0: credentials (SAS key, SAS
//! token, Microsoft Entra ID), the message mapping, the senders, and what a broker's answer
//! means for a delivery. The settings themselves are in [`crate::model::endpoint::azure`].

pub mod classify;
pub mod credential;
mod error;
pub mod eventhubs;
pub mod input;
pub mod message;
pub mod servicebus;

pub use error::{BrokerError, SetupError};
