//! API keys: `Authorization: Bearer <key>`, kept only as SHA-256 hashes, each scoped to
//! solutions and optionally allowed to administer endpoints, subscriptions and deliveries.
//!
//! Keys are 32 random bytes, so a plain SHA-256 is enough (no password-hashing work factor
//! is needed for high-entropy secrets); lookups compare hashes, so the time a lookup takes
//! says nothing about the key.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::{Scope, OPERATIONAL_SOLUTION};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name, recorded as the caller of events.
    pub name: String,
    /// Solutions the key may send events for; `None` for all.
    pub solutions: Option<Vec<String>>,
    /// Whether it may manage endpoints, subscriptions and deliveries.
    pub admin: bool,
    /// Herald itself: the only caller of the operational events (solution `herald`).
    pub system: bool,
}

impl Principal {
    /// Herald itself, sending its operational events.
    pub fn herald() -> Self {
        Self {
            name: OPERATIONAL_SOLUTION.into(),
            solutions: Some(vec![OPERATIONAL_SOLUTION.into()]),
            admin: false,
            system: true,
        }
    }

    /// Whether the key may send events of `solution`: a solution it may use, but never
    /// Herald's own operational events, which only Herald sends.
    pub fn may_send(&self, solution: &str) -> bool {
        if solution == OPERATIONAL_SOLUTION {
            return self.system;
        }
        self.may_use(solution)
    }

    /// Whether the key may see and subscribe to events of `solution`.
    pub fn may_use(&self, solution: &str) -> bool {
        self.scope().covers(solution)
    }

    /// The solutions the key acts in, which every query it reaches is limited to.
    pub fn scope(&self) -> Scope {
        Scope::of(self.solutions.as_deref())
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    Missing,
    /// The key is not known.
    #[error("invalid API key")]
    Invalid,
}

/// The known keys, by hash.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: Arc<HashMap<[u8; 32], Principal>>,
}

impl ApiKeys {
    /// These keys, each given by its SHA-256 hash.
    pub fn new(keys: impl IntoIterator<Item = ([u8; 32], Principal)>) -> Self {
        Self {
            by_hash: Arc::new(keys.into_iter().collect()),
        }
    }

    /// The principal of an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        self.by_hash
            .get(&hash(key))
            .cloned()
            .ok_or(AuthError::Invalid)
    }
}

impl ApiKeys {
    /// The principal of the key whose SHA-256 is `hash`.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<Principal> {
        self.by_hash.get(hash).cloned()
    }
}

/// SHA-256 of a key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random API key (`hk_` + 43 characters).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_recognised_by_its_hash_only() {
        let key = generate_key();
        let keys = ApiKeys::new([(
            hash(&key),
            Principal {
                name: "pos".into(),
                solutions: Some(vec!["contoso".into()]),
                admin: false,
                system: false,
            },
        )]);
        let p = keys.authenticate(Some(&format!("Bearer {key}"))).unwrap();
        assert!(p.may_use("contoso") && !p.may_use("fabrikam"));
        assert_eq!(
            keys.authenticate(Some("Bearer hk_wrong")),
            Err(AuthError::Invalid)
        );
        assert_eq!(keys.authenticate(Some(&key)), Err(AuthError::Missing));
        assert_eq!(keys.authenticate(None), Err(AuthError::Missing));
    }
}
