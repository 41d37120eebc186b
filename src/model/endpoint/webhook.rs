//! A webhook endpoint's settings: URL, signing secrets, timeout and Dataverse authentication.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::model::ids::SecretId;

/// Prefix of a signing secret's text form.
const PREFIX: &str = "whsec_";

/// A signing secret. Its `Debug` form never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// A secret's text could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No `whsec_` prefix.
    #[error("a signing secret starts with `whsec_`")]
    Prefix,
    /// The part after the prefix is not base64.
    #[error("the part after `whsec_` must be base64")]
    Base64,
    /// Too short or too long.
    #[error("a signing secret holds 24 to 64 bytes, this one {0}")]
    Length(usize),
}

impl Secret {
    /// A new random secret of 32 bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = B64.decode(b64).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// The text form, `whsec_<base64>`: only for storing it or showing it once to its owner.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.0))
    }

    /// The key bytes, to sign with.
    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Secret::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

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
