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
    /// Dataverse's webhook authentication, sent as well as the signature.
    #[serde(default)]
    pub auth: Option<WebhookAuth>,
}

/// Dataverse's webhook authentication types. Values are secrets: stored, sent, never shown
/// (`Debug` prints the type and names only).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum WebhookAuth {
    /// Named headers with values.
    HttpHeader {
        /// Header names and values.
        values: std::collections::BTreeMap<String, String>,
    },
    /// A key sent as the `code` query parameter (as Azure Functions expect).
    WebhookKey {
        /// The key.
        key: String,
    },
    /// Query string parameters with values.
    HttpQueryString {
        /// Parameter names and values.
        values: std::collections::BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, names) = self.describe();
        write!(f, "{kind}({}: [redacted])", names.join(", "))
    }
}

impl WebhookAuth {
    /// The type name and the names it sets (never the values), for views.
    pub fn describe(&self) -> (String, Vec<String>) {
        match self {
            WebhookAuth::HttpHeader { values } => {
                ("HttpHeader".into(), values.keys().cloned().collect())
            }
            WebhookAuth::WebhookKey { .. } => ("WebhookKey".into(), vec!["code".into()]),
            WebhookAuth::HttpQueryString { values } => {
                ("HttpQueryString".into(), values.keys().cloned().collect())
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_never_values() {
        let auth = WebhookAuth::HttpHeader {
            values: [("x-api-key".to_owned(), "s3cr3t".to_owned())].into(),
        };
        let text = format!("{auth:?}");
        assert!(
            text.contains("x-api-key") && !text.contains("s3cr3t"),
            "{text}"
        );
        let key = WebhookAuth::WebhookKey {
            key: "s3cr3t".into(),
        };
        assert!(!format!("{key:?}").contains("s3cr3t"));
    }
}
