//! A webhook endpoint's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::signing::Secret;
use crate::ids::SecretId;

/// Where a webhook goes and how it is signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// The receiver's URL.
    pub url: String,
    /// Active signing secrets; each signs every request (rotation: add, then retire the old).
    pub secrets: Vec<SigningSecret>,
    /// Time the receiver has to answer; the configured default when `None`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// One signing secret of an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningSecret {
    /// Its id, to retire it by.
    pub id: SecretId,
    /// The secret.
    pub secret: Secret,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
