//! Standard Webhooks signatures: `webhook-signature` holds one signature per active secret
//! over `"{webhook-id}.{webhook-timestamp}.{body}"`: `v1,<base64 HMAC-SHA256>` keyed with the
//! bytes after `whsec_`, or `v1a,<base64 ed25519 signature>` with the `whsk_` secret key,
//! which receivers check with its `whpk_` public key. [`verify`] is what a receiver runs; it
//! compares in constant time (HMAC) or verifies strictly (ed25519) and refuses timestamps
//! outside the tolerance (replay protection).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::model::{PublicKey, Scheme, Secret, SecretError};

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` header value for a message signed with every secret.
pub fn sign<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut content = None;
    secrets
        .into_iter()
        .map(|secret| match secret.signing_key() {
            Some(key) => {
                let content = content.get_or_insert_with(|| signed_content(id, timestamp, body));
                format!("v1a,{}", B64.encode(key.sign(content).to_bytes()))
            }
            None => {
                let mac = mac(secret.key(), id, timestamp, body);
                format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver verifies with: a `whsec_` secret (`v1`), or a `whpk_` public key (or the
/// `whsk_` secret key it belongs to) for `v1a`.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    /// A signing secret.
    Secret(Secret),
    /// An ed25519 public key.
    Public(PublicKey),
}

impl VerifyKey {
    /// Parses `whsec_…`, `whsk_…` or `whpk_…`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.starts_with("whpk_") {
            return PublicKey::parse(text).map(VerifyKey::Public);
        }
        Secret::parse(text).map(VerifyKey::Secret)
    }
}

/// Why a request failed verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The timestamp is not a number.
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too far from now.
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    OutsideTolerance(i64),
    /// No signature of the key's scheme in the header matches.
    #[error("no {0} signature matches")]
    NoMatch(&'static str),
}

/// Checks a request as a receiver does: some signature of `signature_header` of the key's
/// scheme must match `key`, and `timestamp` must be within `tolerance` of `now` (unix
/// seconds).
pub fn verify(
    key: &VerifyKey,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let public = match key {
        VerifyKey::Public(p) => Some(*p),
        VerifyKey::Secret(s) => s.public_key(),
    };
    let scheme = if public.is_some() { "v1a" } else { "v1" };
    let signatures = signature_header.split_whitespace().filter_map(|candidate| {
        let (version, b64) = candidate.split_once(',')?;
        (version == scheme).then(|| B64.decode(b64).ok()).flatten()
    });
    match (public, key) {
        (Some(public), _) => {
            let Ok(verifier) = ed25519_dalek::VerifyingKey::from_bytes(&public.0) else {
                return Err(VerifyError::NoMatch(scheme));
            };
            let content = signed_content(id, ts, body);
            for sig in signatures {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
                    continue;
                };
                if verifier.verify_strict(&content, &sig).is_ok() {
                    return Ok(());
                }
            }
        }
        (None, VerifyKey::Secret(secret)) => {
            for sig in signatures {
                // `verify_slice` compares in constant time.
                if mac(secret.key(), id, ts, body).verify_slice(&sig).is_ok() {
                    return Ok(());
                }
            }
        }
        (None, VerifyKey::Public(_)) => unreachable!("a public key is always v1a"),
    }
    Err(VerifyError::NoMatch(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key(s: &Secret) -> VerifyKey {
        VerifyKey::Secret(s.clone())
    }

    #[test]
    fn v1a_signs_with_ed25519_and_verifies_with_the_public_key_alone() {
        // RFC 8032's first test key (section 7.1), as a whsk_ seed.
        let seed = hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let secret = Secret::parse(&format!("whsk_{}", B64.encode(seed))).unwrap();
        let public = secret.public_key().unwrap();
        assert_eq!(
            public.0.to_vec(),
            hex_bytes("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let v1 = Secret::generate();
        let header = sign([&v1, &secret], "msg_1", 100, b"{}");
        let (hmac, ed) = header.split_once(' ').unwrap();
        assert!(
            hmac.starts_with("v1,") && ed.starts_with("v1a,"),
            "{header}"
        );
        assert_eq!(B64.decode(&ed[4..]).unwrap().len(), 64);
        let tol = Duration::from_secs(300);
        let by_public = VerifyKey::parse(&public.to_string()).unwrap();
        assert_eq!(
            verify(&by_public, "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        assert_eq!(
            verify(&key(&v1), "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        assert_eq!(
            verify(&by_public, "msg_1", "100", &header, b"{\"x\":1}", tol, 100),
            Err(VerifyError::NoMatch("v1a"))
        );
        // A v1 signature never passes for a v1a key, nor the other way round.
        let only_v1 = sign([&v1], "msg_1", 100, b"{}");
        assert_eq!(
            verify(&by_public, "msg_1", "100", &only_v1, b"{}", tol, 100),
            Err(VerifyError::NoMatch("v1a"))
        );
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert_eq!(
            Secret::parse(&format!("whsk_{}", B64.encode([1u8; 31]))),
            Err(SecretError::KeyLength("whsk_", 31))
        );
        assert_eq!(
            PublicKey::parse(&format!("whpk_{}", B64.encode([1u8; 33]))),
            Err(SecretError::KeyLength("whpk_", 33))
        );
        let s = Secret::generate_for(Scheme::V1a);
        assert!(s.expose().starts_with("whsk_"));
        assert!(!format!("{s:?}").contains(&s.expose()[5..]));
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn signing_matches_the_specification_test_vector() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        assert_eq!(sign([&secret], SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
    }

    #[test]
    fn verification_accepts_any_matching_signature_of_several() {
        let old = Secret::generate();
        let new = Secret::generate();
        let header = sign([&old, &new], "msg_1", 100, b"{}");
        let tol = Duration::from_secs(300);
        assert_eq!(
            verify(&key(&old), "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        assert_eq!(
            verify(&key(&new), "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        let other = Secret::generate();
        assert_eq!(
            verify(&key(&other), "msg_1", "100", &header, b"{}", tol, 100),
            Err(VerifyError::NoMatch("v1"))
        );
    }

    #[test]
    fn verification_refuses_a_tampered_body_and_an_old_timestamp() {
        let s = Secret::generate();
        let header = sign([&s], "msg_1", 1000, b"{\"a\":1}");
        let tol = Duration::from_secs(300);
        assert_eq!(
            verify(&key(&s), "msg_1", "1000", &header, b"{\"a\":2}", tol, 1000),
            Err(VerifyError::NoMatch("v1"))
        );
        assert_eq!(
            verify(&key(&s), "msg_1", "1000", &header, b"{\"a\":1}", tol, 1301),
            Err(VerifyError::OutsideTolerance(301))
        );
    }

    #[test]
    fn secrets_outside_24_to_64_bytes_are_refused_and_never_debug_printed() {
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Length(3)));
        assert_eq!(Secret::parse("abc"), Err(SecretError::Prefix));
        let s = Secret::generate();
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }
}
