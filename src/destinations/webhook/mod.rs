//! Webhooks signed per Standard Webhooks: settings, signing, the SSRF guard, the HTTP
//! client, and the classification of answers, each in its own file.

mod classify;
mod client;
mod request_builder;
mod settings;
pub mod signing;
pub mod ssrf;

pub use classify::classify;
pub use client::{StepAnswer, WebhookClient, WebhookDestination};
pub use settings::{SigningSecret, WebhookAuth, WebhookSettings};
pub use signing::{sign, verify, Secret, VerifyError};
pub use ssrf::{BlockedAddress, NetworkPolicy};
