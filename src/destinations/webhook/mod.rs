//! Webhooks signed per Standard Webhooks: signing, the SSRF guard, the request builder, the
//! HTTP client, and the classification of answers, each in its own file. The settings are in
//! [`crate::model::endpoint::webhook`].

mod classify;
mod client;
mod error;
pub mod handshake;
mod kind;
mod request_builder;
pub mod signing;

pub use classify::{classify, failure};

/// The `User-Agent` of every request Herald makes to a receiver.
pub const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));
pub use client::{StepAnswer, WebhookClient, WebhookDestination};
pub use error::WebhookError;
pub use kind::{parse_secret, HeaderInput, Signing, Webhook, WebhookInput};
pub use signing::{sign, verify, Secret, VerifyError, VerifyKey};
