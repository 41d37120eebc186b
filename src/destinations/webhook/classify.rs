//! What a webhook receiver's answer means for the delivery, as pure functions: 2xx success;
//! 400, 401, 403, 413 and other 4xx permanent; 408, 429 and 5xx retried (honouring
//! `Retry-After`); 410 Gone disables the subscription. Redirects are not followed, so they
//! are permanent. Of the failures without an answer, a blocked address or a bad URL is
//! permanent and the rest (timeouts, refused connections) are retried.

use std::time::Duration;

use super::WebhookError;
use crate::destinations::Outcome;

/// Longest `Retry-After` honoured; a receiver cannot park a delivery for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Classifies an HTTP answer; `retry_after` is the raw `Retry-After` header, if any.
pub fn classify(status: u16, retry_after: Option<&str>, now: time::OffsetDateTime) -> Outcome {
    let status_some = Some(status);
    match status {
        200..=299 => Outcome::Delivered {
            status: status_some,
        },
        410 => Outcome::Gone {
            status: status_some,
        },
        408 | 429 | 500..=599 => Outcome::Retry {
            error: WebhookError::Status { status }.into(),
            status: status_some,
            retry_after: retry_after
                .and_then(|v| parse_retry_after(v, now))
                .map(|d| d.min(MAX_RETRY_AFTER)),
        },
        300..=399 => Outcome::Permanent {
            error: WebhookError::Redirect { status }.into(),
            status: status_some,
        },
        _ => Outcome::Permanent {
            error: WebhookError::Status { status }.into(),
            status: status_some,
        },
    }
}

/// Classifies a send that got no answer.
pub fn failure(error: WebhookError) -> Outcome {
    match error {
        WebhookError::Blocked(_) | WebhookError::Url(_) | WebhookError::AnswerTooLarge(_) => {
            Outcome::Permanent {
                error: error.into(),
                status: None,
            }
        }
        WebhookError::Timeout(_)
        | WebhookError::Connect(_)
        | WebhookError::Request(_)
        | WebhookError::Status { .. }
        | WebhookError::Redirect { .. } => Outcome::Retry {
            error: error.into(),
            status: None,
            retry_after: None,
        },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2026-11-22 10:00:00 UTC)
    }

    #[test]
    fn success_permanent_retry_and_gone_follow_the_status() {
        assert!(matches!(
            classify(204, None, now()),
            Outcome::Delivered { .. }
        ));
        for s in [400, 401, 403, 404, 413, 301] {
            assert!(
                matches!(classify(s, None, now()), Outcome::Permanent { .. }),
                "{s}"
            );
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, None, now()), Outcome::Retry { .. }),
                "{s}"
            );
        }
        assert!(matches!(classify(410, None, now()), Outcome::Gone { .. }));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_http_date_and_capped() {
        let delay = |h| match classify(503, Some(h), now()) {
            Outcome::Retry { retry_after, .. } => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(delay("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            delay("Sun, 22 Nov 2026 10:01:00 +0000"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(delay("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(delay("soon"), None);
    }

    #[test]
    fn a_blocked_address_or_a_bad_url_is_permanent() {
        let blocked = crate::destinations::network::BlockedAddress {
            host: "metadata".into(),
            addr: "169.254.169.254".parse().unwrap(),
        };
        assert!(matches!(
            failure(WebhookError::Blocked(blocked)),
            Outcome::Permanent { .. }
        ));
        let bad = url::Url::parse("not a url").unwrap_err();
        assert!(matches!(
            failure(WebhookError::Url(bad)),
            Outcome::Permanent { .. }
        ));
    }
}
