//! Claims-based security: verifies `put-token` requests (SAS tokens against the shared access
//! policies; JWTs only in development mode) and decides which paths a connection may use.

use super::quirks;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A shared access policy: key name and key.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Key name, e.g. `RootManageSharedAccessKey`.
    pub name: String,
    /// The key, used as UTF-8 bytes for HMAC-SHA256 as Service Bus does.
    pub key: String,
}

/// A path a connection may use until a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Lower-cased path; empty for the whole namespace.
    pub path: String,
    /// Expiry (unix seconds).
    pub expires_s: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    /// Not a SAS token and JWTs are not accepted.
    #[error("unsupported token type; only SharedAccessSignature tokens are accepted")]
    Unsupported,
    /// A SAS token missing a field.
    #[error("malformed SharedAccessSignature token: missing {0}")]
    Malformed(&'static str),
    /// No policy with that key name.
    #[error("unknown shared access key name '{0}'")]
    UnknownKey(String),
    /// Signature does not match.
    #[error("invalid signature")]
    BadSignature,
    /// Expired.
    #[error("the token has expired")]
    Expired,
}

/// Normalizes an audience or address to the path grants compare against. The JavaScript
/// administration client signs the whole request URL, query (`?api-version=…`) included; a
/// query does not narrow what a token covers.
pub fn normalize(audience: &str) -> String {
    let path = quirks::strip_scheme_and_host(audience);
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.trim_matches('/').to_ascii_lowercase()
}

/// Verifies a token; returns the grant it gives.
pub fn verify(
    token: &str,
    audience: &str,
    policies: &[Policy],
    allow_jwt: bool,
    now_s: i64,
) -> Result<Grant, TokenError> {
    if !quirks::is_sas_token(token) {
        return if allow_jwt {
            Ok(Grant {
                path: normalize(audience),
                expires_s: now_s + 3600,
            })
        } else {
            Err(TokenError::Unsupported)
        };
    }
    let fields = token.trim_start_matches("SharedAccessSignature ");
    let get = |name: &str| {
        fields
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let sr = get("sr").ok_or(TokenError::Malformed("sr"))?;
    let sig = get("sig").ok_or(TokenError::Malformed("sig"))?;
    let se = get("se").ok_or(TokenError::Malformed("se"))?;
    let skn = get("skn").ok_or(TokenError::Malformed("skn"))?;
    let policy = policies
        .iter()
        .find(|p| p.name == skn)
        .ok_or_else(|| TokenError::UnknownKey(skn.to_owned()))?;
    let sig = percent_encoding::percent_decode_str(sig)
        .decode_utf8_lossy()
        .replace(' ', "+");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.as_bytes())
        .map_err(|_| TokenError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(policy.key.as_bytes())
        .map_err(|_| TokenError::BadSignature)?;
    mac.update(format!("{sr}\n{se}").as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let expires_s: i64 = se.parse().map_err(|_| TokenError::Malformed("se"))?;
    if expires_s <= now_s {
        return Err(TokenError::Expired);
    }
    let resource = percent_encoding::percent_decode_str(&sr.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    Ok(Grant {
        path: normalize(&resource),
        expires_s,
    })
}

/// Whether any live grant covers `path` (a grant covers itself and everything under it).
pub fn covers(grants: &[Grant], path: &str, now_s: i64) -> bool {
    let path = path.to_ascii_lowercase();
    grants.iter().any(|g| {
        g.expires_s > now_s
            && (g.path.is_empty() || path == g.path || path.starts_with(&format!("{}/", g.path)))
    })
}

/// Makes a SAS token (used by tests and by the library's helpers).
pub fn sas_token(resource: &str, key_name: &str, key: &str, expires_s: i64) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let sr = utf8_percent_encode(resource, NON_ALPHANUMERIC).to_string();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{sr}\n{expires_s}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = utf8_percent_encode(&sig, NON_ALPHANUMERIC);
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expires_s}&skn={key_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> Vec<Policy> {
        vec![Policy {
            name: "RootManageSharedAccessKey".into(),
            key: "SAS_KEY_VALUE".into(),
        }]
    }

    #[test]
    fn valid_sas_token_grants_its_resource_path() {
        let t = sas_token(
            "sb://127.0.0.1:5672/Queue1",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2000,
        );
        let g = verify(&t, "ignored", &policies(), false, 1000).expect("valid");
        assert_eq!(g.path, "queue1");
        let url = sas_token(
            "https://localhost:5672/queue1?api-version=2021-05",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2000,
        );
        let u = verify(&url, "", &policies(), false, 1000).expect("valid");
        assert_eq!(u.path, "queue1", "a query does not narrow a token");
        assert!(covers(
            std::slice::from_ref(&g),
            "queue1/$deadletterqueue",
            1000
        ));
        assert!(!covers(&[g], "queue2", 1000));
    }

    #[test]
    fn wrong_key_expired_token_and_jwt_are_refused() {
        let wrong = sas_token("sb://h/q", "RootManageSharedAccessKey", "nope", 2000);
        assert_eq!(
            verify(&wrong, "", &policies(), false, 1000),
            Err(TokenError::BadSignature)
        );
        let old = sas_token(
            "sb://h/q",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            999,
        );
        assert_eq!(
            verify(&old, "", &policies(), false, 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify("eyJ", "sb://h/q", &policies(), false, 0),
            Err(TokenError::Unsupported)
        );
        assert!(verify("eyJ", "sb://h/q", &policies(), true, 0).is_ok());
    }
}
