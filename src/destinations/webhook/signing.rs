//! Standard Webhooks signatures: `webhook-signature` holds one `v1,<base64 HMAC-SHA256>` per
//! active secret over `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the bytes of
//! the secret after `whsec_`. [`verify`] is what a receiver runs; it compares in constant
//! time and refuses timestamps outside the tolerance (replay protection).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::model::{Secret, SecretError};

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &Secret) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.key()).expect("HMAC accepts keys of any length")
}

/// The `webhook-signature` header value for a message signed with every secret.
pub fn sign<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|secret| {
            let mut mac = mac(secret);
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    /// No `v1` signature in the header matches.
    #[error("no signature matches")]
    NoMatch,
}

/// Checks a request as a receiver does: some `v1` signature of `signature_header` must
/// match `secret`, and `timestamp` must be within `tolerance` of `now` (unix seconds).
pub fn verify(
    secret: &Secret,
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
    for candidate in signature_header.split_whitespace() {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = B64.decode(b64) else { continue };
        let mut mac = mac(secret);
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
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
            verify(&old, "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        assert_eq!(
            verify(&new, "msg_1", "100", &header, b"{}", tol, 100),
            Ok(())
        );
        let other = Secret::generate();
        assert_eq!(
            verify(&other, "msg_1", "100", &header, b"{}", tol, 100),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn verification_refuses_a_tampered_body_and_an_old_timestamp() {
        let s = Secret::generate();
        let header = sign([&s], "msg_1", 1000, b"{\"a\":1}");
        let tol = Duration::from_secs(300);
        assert_eq!(
            verify(&s, "msg_1", "1000", &header, b"{\"a\":2}", tol, 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&s, "msg_1", "1000", &header, b"{\"a\":1}", tol, 1301),
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
