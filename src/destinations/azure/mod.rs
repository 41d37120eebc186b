//! The Azure messaging kinds over AMQP 1.0, each in its folder (`servicebus/`, `eventhubs/`:
//! its input and its sender), and what they share: connection strings and credential rules
//! (`input.rs`), credentials (SAS key, SAS token, Microsoft Entra ID), the message mapping, and
//! what a broker's answer means for a delivery. The stored settings are in
//! [`crate::model::endpoint::azure`].

pub mod classify;
pub mod credential;
mod error;
pub mod eventhubs;
pub mod input;
pub mod message;
pub mod servicebus;

pub use error::{BrokerError, SetupError};
