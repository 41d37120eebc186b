//! Azure Service Bus and Event Hubs destinations over AMQP 1.0: settings and connection
//! strings, credentials (SAS key, SAS token, Microsoft Entra ID), the message mapping, and
//! what a broker's answer means for a delivery.

pub mod classify;
pub mod credential;
pub mod eventhubs;
pub mod message;
pub mod servicebus;
pub mod settings;

pub use settings::{AzureCredential, AzureInput, AzureSettings, SecretString};
