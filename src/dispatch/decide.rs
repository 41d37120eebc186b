//! The dispatcher's decision, a pure function: from how an attempt went (and the delivery's
//! attempts and age), what to record and what happens to the delivery next — done, a retry
//! at a time, a dead letter, or cancellation (with the subscription disabled when its
//! receiver is gone).

use time::OffsetDateTime;

use super::retry::{Decision, RetryPolicy};
use crate::destinations::{error_chain, Outcome};
use crate::model::{AttemptOutcome, NextState};
use crate::store::StoreError;

/// How an attempt went, before any decision.
#[derive(Debug)]
pub enum Attempted {
    /// The destination was called and answered (or failed) this way.
    Sent(Outcome),
    /// Nothing was sent: the endpoint or the subscription no longer exists.
    Orphaned(&'static str),
    /// Nothing was sent: reading the endpoint or subscription failed (it may pass).
    LookupFailed(StoreError),
}

/// What the dispatcher records and does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How the attempt is recorded.
    pub outcome: AttemptOutcome,
    /// The HTTP status, for webhooks.
    pub http_status: Option<u16>,
    /// The error recorded on the attempt.
    pub error: Option<String>,
    /// The delivery's next state.
    pub next: NextState,
    /// Disable the delivery's subscription, with this reason (its receiver is gone).
    pub disable_subscription: Option<String>,
}

/// Why a subscription whose receiver answered 410 is disabled.
pub const GONE: &str = "the receiver answered 410 Gone; the subscription was disabled";

/// Decides after attempt number `attempt` (1-based) of a delivery created at `created_at`
/// ended at `now`; `jitter` in [0, 1) spreads retries (see [`RetryPolicy::after_failure`]).
pub fn decide(
    attempted: Attempted,
    attempt: u32,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    policy: &RetryPolicy,
    jitter: f64,
) -> Verdict {
    let verdict = |outcome, http_status, error: Option<String>, next| Verdict {
        outcome,
        http_status,
        error,
        next,
        disable_subscription: None,
    };
    let retry = |status: Option<u16>, error: String, retry_after| match policy.after_failure(
        attempt,
        created_at,
        now,
        retry_after,
        jitter,
    ) {
        Decision::RetryAt(at) => verdict(
            AttemptOutcome::Retry,
            status,
            Some(error),
            NextState::RetryAt(at),
        ),
        Decision::GiveUp(why) => {
            let reason = format!("{why}; last error: {error}");
            verdict(
                AttemptOutcome::Retry,
                status,
                Some(error),
                NextState::DeadLettered(reason),
            )
        }
    };
    match attempted {
        Attempted::Sent(Outcome::Delivered { status }) => {
            verdict(AttemptOutcome::Success, status, None, NextState::Succeeded)
        }
        Attempted::Sent(Outcome::Permanent { error, status }) => {
            let error = error_chain(&error);
            verdict(
                AttemptOutcome::Permanent,
                status,
                Some(error.clone()),
                NextState::DeadLettered(error),
            )
        }
        Attempted::Sent(Outcome::Gone { status }) => Verdict {
            disable_subscription: Some(GONE.to_owned()),
            ..verdict(
                AttemptOutcome::Permanent,
                status,
                Some(GONE.to_owned()),
                NextState::Cancelled(GONE.to_owned()),
            )
        },
        Attempted::Sent(Outcome::Retry {
            error,
            status,
            retry_after,
        }) => retry(status, error_chain(&error), retry_after),
        Attempted::Orphaned(what) => {
            let reason = format!("the {what} no longer exists");
            verdict(
                AttemptOutcome::Permanent,
                None,
                Some(reason.clone()),
                NextState::Cancelled(reason),
            )
        }
        // Like any transient failure: the store hiccupped, try again later.
        Attempted::LookupFailed(error) => {
            retry(None, format!("store: {}", error_chain(&error)), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::webhook::WebhookError;
    use std::time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    fn after(attempted: Attempted, attempt: u32) -> Verdict {
        decide(attempted, attempt, T0, T0, &RetryPolicy::default(), 0.5)
    }

    fn retry_outcome(status: Option<u16>, retry_after: Option<Duration>) -> Attempted {
        Attempted::Sent(Outcome::Retry {
            error: WebhookError::Status { status: 503 }.into(),
            status,
            retry_after,
        })
    }

    #[test]
    fn a_delivered_message_succeeds_with_its_status() {
        let v = after(Attempted::Sent(Outcome::Delivered { status: Some(204) }), 1);
        assert_eq!(v.outcome, AttemptOutcome::Success);
        assert_eq!(v.http_status, Some(204));
        assert_eq!(v.next, NextState::Succeeded);
        assert_eq!((v.error, v.disable_subscription), (None, None));
    }

    #[test]
    fn a_permanent_failure_is_dead_lettered_without_retry() {
        let v = after(
            Attempted::Sent(Outcome::Permanent {
                error: WebhookError::Status { status: 400 }.into(),
                status: Some(400),
            }),
            1,
        );
        assert_eq!(v.outcome, AttemptOutcome::Permanent);
        assert_eq!(
            v.next,
            NextState::DeadLettered("receiver answered 400".into())
        );
        assert_eq!(v.disable_subscription, None);
    }

    #[test]
    fn a_retryable_failure_is_retried_on_the_schedule() {
        let v = after(retry_outcome(Some(503), None), 1);
        assert_eq!(v.outcome, AttemptOutcome::Retry);
        assert_eq!(v.error.as_deref(), Some("receiver answered 503"));
        assert_eq!(v.next, NextState::RetryAt(T0 + Duration::from_secs(10)));
    }

    #[test]
    fn retry_after_from_the_destination_lengthens_the_wait() {
        let v = after(retry_outcome(Some(429), Some(Duration::from_secs(600))), 1);
        assert_eq!(v.next, NextState::RetryAt(T0 + Duration::from_secs(600)));
    }

    #[test]
    fn the_last_allowed_attempt_dead_letters_with_the_last_error() {
        let v = after(retry_outcome(Some(503), None), 30);
        assert_eq!(v.outcome, AttemptOutcome::Retry);
        assert_eq!(
            v.next,
            NextState::DeadLettered(
                "gave up after 30 attempts; last error: receiver answered 503".into()
            )
        );
    }

    #[test]
    fn a_gone_receiver_cancels_the_delivery_and_disables_the_subscription() {
        let v = after(Attempted::Sent(Outcome::Gone { status: Some(410) }), 3);
        assert_eq!(v.outcome, AttemptOutcome::Permanent);
        assert_eq!(v.http_status, Some(410));
        assert_eq!(v.next, NextState::Cancelled(GONE.into()));
        assert_eq!(v.disable_subscription.as_deref(), Some(GONE));
    }

    #[test]
    fn a_removed_endpoint_cancels_the_delivery_without_sending() {
        let v = after(Attempted::Orphaned("endpoint"), 1);
        assert_eq!(v.outcome, AttemptOutcome::Permanent);
        assert_eq!(
            v.next,
            NextState::Cancelled("the endpoint no longer exists".into())
        );
        assert_eq!(v.disable_subscription, None);
    }

    #[test]
    fn a_failed_lookup_is_retried_like_a_transient_failure() {
        let v = after(Attempted::LookupFailed(StoreError::Closed), 1);
        assert_eq!(v.outcome, AttemptOutcome::Retry);
        assert_eq!(
            v.error.as_deref(),
            Some("store: the store is shutting down")
        );
        assert!(matches!(v.next, NextState::RetryAt(_)));
    }
}
