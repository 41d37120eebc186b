//! Recording attempt results: what a result makes of its delivery, the same on every backend.
//! Each backend writes them its own way (`postgres/record.rs`, `sqlite/write.rs`).

use std::collections::HashMap;

use super::rows::millis;
use crate::model::{Attempt, AttemptResult, DeliveryId, NextState};

/// A delivery's next state as stored: status, next attempt, last error, when finished.
pub struct State<'a> {
    pub status: &'static str,
    pub next_at: i64,
    pub error: Option<&'a str>,
    pub finished: Option<i64>,
}

/// What `r` makes of its delivery, `now` being the time it is recorded.
pub fn state(r: &AttemptResult, now: i64) -> State<'_> {
    let error = r.attempt.as_ref().and_then(|a| a.error.as_deref());
    let (status, next_at, error, finished) = match &r.next {
        NextState::Succeeded => ("succeeded", now, None, Some(now)),
        NextState::RetryAt(at) => ("pending", millis(*at), error, None),
        NextState::DeadLettered(why) => ("dead_lettered", now, Some(why.as_str()), Some(now)),
        NextState::Cancelled(why) => ("cancelled", now, Some(why.as_str()), Some(now)),
        NextState::Wait(at, why) => ("pending", millis(*at), Some(why.as_str()), None),
        NextState::Held => ("held", now, Some(HELD), None),
    };
    State {
        status,
        next_at,
        error,
        finished,
    }
}

/// The last error of a held delivery.
pub const HELD: &str = "held: the endpoint is disabled";

/// The last result of each `key`, in order. A batch can hold two results of one delivery
/// (its lease expired while its first result waited, and it was sent again); one statement
/// may change a row only once, and the later result is the one that counts.
fn latest<K: std::hash::Hash + Eq>(
    results: &[AttemptResult],
    key: impl Fn(&AttemptResult) -> K,
) -> Vec<&AttemptResult> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(results.len());
    for (i, r) in results.iter().enumerate() {
        last.insert(key(r), i);
    }
    results
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(&key(r)) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// The attempts to record (the last result of each attempt), with their result.
pub fn attempts(results: &[AttemptResult]) -> Vec<(&AttemptResult, &Attempt)> {
    let made: Vec<(&AttemptResult, &Attempt)> = results
        .iter()
        .filter_map(|r| r.attempt.as_ref().map(|a| (r, a)))
        .collect();
    let mut last: HashMap<(DeliveryId, u32), usize> = HashMap::with_capacity(made.len());
    for (i, (r, a)) in made.iter().enumerate() {
        last.insert((r.delivery_id, a.attempt), i);
    }
    made.iter()
        .enumerate()
        .filter(|(i, (r, a))| last.get(&(r.delivery_id, a.attempt)) == Some(i))
        .map(|(_, x)| *x)
        .collect()
}

pub fn states(results: &[AttemptResult]) -> Vec<&AttemptResult> {
    latest(results, |r| r.delivery_id)
}

/// The attempt's exchange, as stored (JSON).
pub fn exchange_json(a: &Attempt) -> Option<String> {
    a.exchange
        .as_ref()
        .map(|x| serde_json::to_string(x).expect("an exchange always serializes"))
}

/// How long the attempt took, as stored.
pub fn duration_ms(a: &Attempt) -> i64 {
    i64::try_from(a.duration_ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptOutcome;
    use time::OffsetDateTime;

    fn result(id: DeliveryId, attempt: u32) -> AttemptResult {
        AttemptResult {
            delivery_id: id,
            attempts: attempt,
            attempt: Some(Attempt {
                attempt,
                started_at: OffsetDateTime::now_utc(),
                duration_ms: 1,
                outcome: AttemptOutcome::Success,
                http_status: Some(200),
                error: None,
                exchange: None,
            }),
            next: NextState::Succeeded,
            routed: None,
        }
    }

    #[test]
    fn only_the_last_result_of_a_delivery_is_kept() {
        let (a, b) = (DeliveryId::new(), DeliveryId::new());
        let batch = [result(a, 1), result(b, 1), result(a, 2), result(a, 2)];
        let pairs = |kept: Vec<&AttemptResult>| {
            kept.iter()
                .map(|r| (r.delivery_id, r.attempts))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(states(&batch)), [(b, 1), (a, 2)]);
        let made: Vec<_> = attempts(&batch)
            .iter()
            .map(|(r, a)| (r.delivery_id, a.attempt))
            .collect();
        assert_eq!(made, [(a, 1), (b, 1), (a, 2)]);
    }

    #[test]
    fn a_result_without_an_attempt_records_only_the_next_state() {
        let id = DeliveryId::new();
        let waited = AttemptResult {
            delivery_id: id,
            attempts: 2,
            attempt: None,
            next: NextState::Wait(OffsetDateTime::UNIX_EPOCH, "endpoint failing".into()),
            routed: None,
        };
        assert!(attempts(std::slice::from_ref(&waited)).is_empty());
        let s = state(&waited, 5);
        assert_eq!(
            (s.status, s.next_at, s.error),
            ("pending", 0, Some("endpoint failing"))
        );
    }
}
