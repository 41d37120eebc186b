//! Standard Webhooks verification: `webhook-signature` holds space-separated `v1,<base64>`
//! HMAC-SHA256 signatures of `{id}.{timestamp}.{body}`, keyed by the base64 after `whsec_`.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// How far a timestamp may be from now (seconds).
pub const TOLERANCE_S: i64 = 300;

/// The sink's judgement of a request's signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "snake_case")]
pub enum Verdict {
    /// A signature matched a configured secret.
    Valid,
    /// Headers present but no signature matched, or the timestamp is out of tolerance.
    Invalid(String),
    /// No signature headers.
    Unsigned,
    /// Signed, but the sink has no secret to check with.
    NoSecret,
}

/// Verifies a request's headers (lower-cased names) and body.
pub fn verify(
    secrets: &[String],
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now_s: i64,
) -> Verdict {
    let (Some(id), Some(ts), Some(sigs)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) else {
        return Verdict::Unsigned;
    };
    if secrets.is_empty() {
        return Verdict::NoSecret;
    }
    let Ok(t) = ts.parse::<i64>() else {
        return Verdict::Invalid("webhook-timestamp is not a number".into());
    };
    if (now_s - t).abs() > TOLERANCE_S {
        return Verdict::Invalid(format!(
            "timestamp {t} is more than {TOLERANCE_S}s from now"
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    for secret in secrets {
        let Ok(key) = b64.decode(secret.trim_start_matches("whsec_")) else {
            continue;
        };
        for sig in sigs.split(' ') {
            let Some(v) = sig.strip_prefix("v1,").and_then(|s| b64.decode(s).ok()) else {
                continue;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
                continue;
            };
            mac.update(&signed);
            // verify_slice compares in constant time.
            if mac.verify_slice(&v).is_ok() {
                return Verdict::Valid;
            }
        }
    }
    Verdict::Invalid("no signature matched a configured secret".into())
}

/// Signs like a Standard Webhooks sender (for tests and examples).
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(sig: &str, ts: i64) -> BTreeMap<String, String> {
        [
            ("webhook-id", "msg_1".to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    #[test]
    fn a_signature_among_several_matches() {
        let sig = format!("v1,AAAA {}", sign(SECRET, "msg_1", 1000, b"{}"));
        assert_eq!(
            verify(&[SECRET.into()], &headers(&sig, 1000), b"{}", 1000),
            Verdict::Valid
        );
    }

    #[test]
    fn tampered_body_old_timestamp_and_missing_headers_are_not_valid() {
        let sig = sign(SECRET, "msg_1", 1000, b"{}");
        assert!(matches!(
            verify(&[SECRET.into()], &headers(&sig, 1000), b"{ }", 1000),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            verify(&[SECRET.into()], &headers(&sig, 1000), b"{}", 5000),
            Verdict::Invalid(_)
        ));
        assert_eq!(
            verify(&[SECRET.into()], &BTreeMap::new(), b"{}", 0),
            Verdict::Unsigned
        );
    }
}
