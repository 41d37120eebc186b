//! A webhook endpoint's settings: URL, signing secrets, timeout and Dataverse authentication.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::model::ids::SecretId;

/// Prefix of a symmetric signing secret's text form (`v1`, HMAC-SHA256).
const PREFIX: &str = "whsec_";
/// Prefix of an ed25519 secret key's text form (`v1a`): the 32-byte seed, base64.
const SECRET_KEY_PREFIX: &str = "whsk_";
/// Prefix of an ed25519 public key's text form: its 32 bytes, base64.
const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// A Standard Webhooks signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// HMAC-SHA256 with a shared `whsec_` secret.
    V1,
    /// ed25519 with a `whsk_` secret key; receivers verify with the `whpk_` public key.
    V1a,
}

impl Scheme {
    /// Its name in the `webhook-signature` header.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V1a => "v1a",
        }
    }
}

/// A signing secret: a `whsec_` HMAC key or a `whsk_` ed25519 secret key. Its `Debug` form
/// never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    scheme: Scheme,
    key: Vec<u8>,
}

/// A secret's text could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No known prefix.
    #[error("a signing secret starts with `whsec_` (HMAC, v1) or `whsk_` (ed25519, v1a)")]
    Prefix,
    /// The part after the prefix is not base64.
    #[error("the part after the prefix must be base64")]
    Base64,
    /// Too short or too long.
    #[error("a `whsec_` signing secret holds 24 to 64 bytes, this one {0}")]
    Length(usize),
    /// Not a 32-byte ed25519 key.
    #[error("a `{0}` ed25519 key holds 32 bytes, this one {1}")]
    KeyLength(&'static str, usize),
}

impl Secret {
    /// A new random `whsec_` secret of 32 bytes.
    pub fn generate() -> Self {
        Self::generate_for(Scheme::V1)
    }

    /// A new random secret of `scheme`: 32 random bytes (an ed25519 seed for `v1a`).
    pub fn generate_for(scheme: Scheme) -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { scheme, key }
    }

    /// Parses `whsec_<base64>` or `whsk_<base64 of a 32-byte seed>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if let Some(b64) = text.strip_prefix(SECRET_KEY_PREFIX) {
            let key = B64.decode(b64).map_err(|_| SecretError::Base64)?;
            if key.len() != 32 {
                return Err(SecretError::KeyLength(SECRET_KEY_PREFIX, key.len()));
            }
            return Ok(Self {
                scheme: Scheme::V1a,
                key,
            });
        }
        let b64 = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = B64.decode(b64).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self {
            scheme: Scheme::V1,
            key,
        })
    }

    /// The text form, `whsec_…` or `whsk_…`: only for storing it or showing it once to its
    /// owner.
    pub fn expose(&self) -> String {
        let prefix = match self.scheme {
            Scheme::V1 => PREFIX,
            Scheme::V1a => SECRET_KEY_PREFIX,
        };
        format!("{prefix}{}", B64.encode(&self.key))
    }

    /// Its scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The key bytes: the HMAC key, or the ed25519 seed.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The ed25519 key pair of a `v1a` secret.
    pub fn signing_key(&self) -> Option<ed25519_dalek::SigningKey> {
        let seed: [u8; 32] = self.key.as_slice().try_into().ok()?;
        (self.scheme == Scheme::V1a).then(|| ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public key of a `v1a` secret, which receivers verify with.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.signing_key()
            .map(|k| PublicKey(k.verifying_key().to_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::V1 => f.write_str("Secret(whsec_***)"),
            Scheme::V1a => f.write_str("Secret(whsk_***)"),
        }
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

/// An ed25519 public key (`whpk_…`): not a secret, published for receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses `whpk_<base64 of 32 bytes>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = B64.decode(b64).map_err(|_| SecretError::Base64)?;
        let len = key.len();
        Ok(Self(key.try_into().map_err(|_| {
            SecretError::KeyLength(PUBLIC_KEY_PREFIX, len)
        })?))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", B64.encode(self.0))
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
    /// Static headers sent with every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<CustomHeader>,
    /// Whether the receiver must grant delivery first (the CloudEvents handshake).
    #[serde(default, skip_serializing_if = "Validation::is_none")]
    pub validation: Validation,
}

/// Whether a webhook receiver must grant delivery before the first one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Deliver without asking.
    #[default]
    None,
    /// The CloudEvents abuse-protection handshake: an `OPTIONS` request with
    /// `WebHook-Request-Origin` (and `WebHook-Request-Rate`, `WebHook-Request-Callback`);
    /// nothing is delivered until the receiver grants, in its answer or through the callback.
    Cloudevents,
}

impl Validation {
    /// `None`: no handshake.
    pub fn is_none(&self) -> bool {
        *self == Validation::None
    }
}

/// A static header of a webhook endpoint. A secret one's value is write-only: stored (sealed),
/// sent, never shown, and `Debug` masks it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomHeader {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Whether the value is a secret.
    #[serde(default)]
    pub secret: bool,
}

impl fmt::Debug for CustomHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.secret {
            "[redacted]"
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
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
