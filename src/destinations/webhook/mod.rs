//! The webhook kind: receivers signed per Standard Webhooks. Its input and the checks that make
//! its settings (`kind.rs`), signing, the request builder, the HTTP client, the CloudEvents
//! handshake and the classification of answers, each in its own file. The stored settings are
//! in [`crate::model::endpoint::webhook`]; the network policy in [`super::network`].

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
