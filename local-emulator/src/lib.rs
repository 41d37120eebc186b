//! The local emulator: Azure Service Bus and Event Hubs over AMQP 1.0, and a webhook sink.
#![deny(missing_docs)]

pub mod broker;
pub mod server;
