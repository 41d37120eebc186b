//! Recording attempt results: what a result makes of its delivery (shared by the backends),
//! and PostgreSQL's statement, a whole batch in one (the attempts, and the deliveries' next
//! states) whatever its size. The statements' text is the same for every batch, so each is
//! prepared and planned once per connection: the rows travel as one array per column, read
//! with `unnest` (numbered placeholders per row would make a new statement for every batch
//! size). SQLite's writer runs its own (`sqlite/write.rs`).

use std::collections::HashMap;

use sqlx::PgPool;
use time::OffsetDateTime;

use super::rows::millis;
use super::StoreError;
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
fn attempts(results: &[AttemptResult]) -> Vec<(&AttemptResult, &Attempt)> {
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

fn states(results: &[AttemptResult]) -> Vec<&AttemptResult> {
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

/// Records `results` on PostgreSQL: the attempts, and the next state of each delivery still
/// leased by `owner` (a delivery cancelled or taken over meanwhile is left as it is). One
/// statement, the columns as arrays read with `unnest`.
pub async fn record_pg(
    pool: &PgPool,
    owner: &str,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let now = millis(OffsetDateTime::now_utc());
    let a = attempts(results);
    let s = states(results);
    let st: Vec<State> = s.iter().map(|r| state(r, now)).collect();
    // A data-modifying CTE always runs: the attempts and the states are one statement, atomic
    // by itself, so one round trip with no transaction around it.
    sqlx::query(
        "WITH a AS (
           INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           SELECT u.* FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[], $16::text[])
             AS u(delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           -- A late result of a delivery finished elsewhere and pruned meanwhile is dropped.
           WHERE EXISTS (SELECT 1 FROM deliveries x WHERE x.id = u.delivery_id)
           ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
             outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error,
             exchange = excluded.exchange
           RETURNING 1)
         UPDATE deliveries d SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
           last_error = r.error, finished_at = r.finished, lease_owner = NULL, lease_until = NULL, updated_at = $14
         FROM unnest($8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[], $13::int8[])
           AS r(id, status, attempts, next_at, error, finished)
         WHERE d.id = r.id AND d.status = 'in_flight' AND d.lease_owner = $15",
    )
    .bind(a.iter().map(|(r, _)| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(a.iter().map(|(_, a)| i64::from(a.attempt)).collect::<Vec<_>>())
    .bind(a.iter().map(|(_, a)| millis(a.started_at)).collect::<Vec<_>>())
    .bind(a.iter().map(|(_, a)| duration_ms(a)).collect::<Vec<_>>())
    .bind(a.iter().map(|(_, a)| a.outcome.as_str()).collect::<Vec<_>>())
    .bind(
        a.iter()
            .map(|(_, a)| a.http_status.map(i64::from))
            .collect::<Vec<_>>(),
    )
    .bind(a.iter().map(|(_, a)| a.error.clone()).collect::<Vec<_>>())
    .bind(s.iter().map(|r| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.status).collect::<Vec<_>>())
    .bind(s.iter().map(|r| i64::from(r.attempts)).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.next_at).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.error).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.finished).collect::<Vec<_>>())
    .bind(now)
    .bind(owner)
    .bind(a.iter().map(|(_, a)| exchange_json(a)).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptOutcome;

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
        };
        assert!(attempts(std::slice::from_ref(&waited)).is_empty());
        let s = state(&waited, 5);
        assert_eq!(
            (s.status, s.next_at, s.error),
            ("pending", 0, Some("endpoint failing"))
        );
    }
}
