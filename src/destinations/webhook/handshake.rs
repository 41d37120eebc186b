//! The CloudEvents abuse-protection handshake ("HTTP 1.1 Web Hooks for Event Delivery",
//! section 4): an `OPTIONS` request to the endpoint's URL with `WebHook-Request-Origin`,
//! `WebHook-Request-Rate` (when the endpoint has a rate limit) and `WebHook-Request-Callback`.
//! The receiver grants by answering with `WebHook-Allowed-Origin` (Herald's origin or `*`)
//! and optionally `WebHook-Allowed-Rate`, or later through the callback. An answer without
//! `WebHook-Allowed-Origin` is never taken as consent: a 2xx one means "wait for the
//! callback", anything else a refusal.

use std::time::Duration;

use reqwest::header::{HeaderMap, USER_AGENT};

use super::{request_builder, WebhookClient, WebhookError};
use crate::model::{HandshakeAnswer, WebhookSettings};

/// What Herald asks for.
#[derive(Debug, Clone)]
pub struct HandshakeRequest<'a> {
    /// `WebHook-Request-Origin`: the DNS name that identifies Herald.
    pub origin: &'a str,
    /// `WebHook-Request-Rate`, requests per minute.
    pub rate_per_minute: Option<u32>,
    /// `WebHook-Request-Callback`: where the receiver may grant later (GET or POST).
    pub callback: &'a str,
}

impl WebhookClient {
    /// Makes the handshake with the receiver of `settings`.
    pub async fn handshake(
        &self,
        settings: &WebhookSettings,
        ask: &HandshakeRequest<'_>,
        timeout: Duration,
    ) -> HandshakeAnswer {
        let refused =
            |e: WebhookError| HandshakeAnswer::Refused(crate::destinations::error_chain(&e));
        let request_builder::Target { url, headers, .. } = match request_builder::target(settings) {
            Ok(t) => t,
            Err(e) => return refused(WebhookError::from(e)),
        };
        if let Err(e) = self.policy.check_literal(&url) {
            return refused(WebhookError::from(e));
        }
        let mut request = self
            .http
            .request(reqwest::Method::OPTIONS, url)
            .timeout(timeout)
            .header(USER_AGENT, super::USER_AGENT)
            .header("WebHook-Request-Origin", ask.origin)
            .header("WebHook-Request-Callback", ask.callback);
        if let Some(rate) = ask.rate_per_minute {
            request = request.header("WebHook-Request-Rate", rate.to_string());
        }
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(answer) => judge(answer.status().as_u16(), answer.headers(), ask.origin),
            Err(e) => refused(WebhookError::from_transport(e)),
        }
    }
}

/// What an answer to the handshake means.
pub fn judge(status: u16, headers: &HeaderMap, origin: &str) -> HandshakeAnswer {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    match header("webhook-allowed-origin") {
        Some(allowed) if allowed == "*" || allowed.eq_ignore_ascii_case(origin) => {
            match header("webhook-allowed-rate") {
                None | Some("*") => HandshakeAnswer::Granted(None),
                Some(rate) => match rate.parse::<u32>() {
                    Ok(n) if n > 0 => HandshakeAnswer::Granted(Some(n)),
                    _ => HandshakeAnswer::Refused(format!(
                        "WebHook-Allowed-Rate \"{rate}\" is neither a positive number of requests per minute nor *"
                    )),
                },
            }
        }
        Some(other) => HandshakeAnswer::Refused(format!(
            "the receiver allowed the origin \"{other}\", not \"{origin}\""
        )),
        None if (200..300).contains(&status) => HandshakeAnswer::Callback,
        None => HandshakeAnswer::Refused(format!(
            "the receiver answered {status} without WebHook-Allowed-Origin"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_allowed_origin_grants_with_the_allowed_rate() {
        let h = headers(&[
            ("WebHook-Allowed-Origin", "herald.example"),
            ("WebHook-Allowed-Rate", "120"),
        ]);
        assert_eq!(
            judge(200, &h, "herald.example"),
            HandshakeAnswer::Granted(Some(120))
        );
        let any = headers(&[
            ("WebHook-Allowed-Origin", "*"),
            ("WebHook-Allowed-Rate", "*"),
        ]);
        assert_eq!(
            judge(204, &any, "herald.example"),
            HandshakeAnswer::Granted(None)
        );
    }

    #[test]
    fn no_allowed_origin_is_never_consent() {
        assert_eq!(judge(200, &headers(&[]), "h"), HandshakeAnswer::Callback);
        assert!(
            matches!(judge(405, &headers(&[]), "h"), HandshakeAnswer::Refused(r) if r.contains("405"))
        );
        let other = headers(&[("WebHook-Allowed-Origin", "someone.else")]);
        assert!(
            matches!(judge(200, &other, "h"), HandshakeAnswer::Refused(r) if r.contains("someone.else"))
        );
        let bad_rate = headers(&[
            ("WebHook-Allowed-Origin", "h"),
            ("WebHook-Allowed-Rate", "fast"),
        ]);
        assert!(matches!(
            judge(200, &bad_rate, "h"),
            HandshakeAnswer::Refused(_)
        ));
    }
}
