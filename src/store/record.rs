//! Recording attempt results, a whole batch in two statements (the attempts, then the
//! deliveries' next states) whatever its size. Each statement's text is the same for every
//! batch, so it is prepared once per connection: the rows travel as one parameter each (a
//! JSON array that SQLite reads with `json_each`) or one array per column (PostgreSQL's
//! `unnest`). Numbered placeholders per row would make a new statement for every batch size,
//! prepared and planned again each time, and sqlx looks each SQLite placeholder up by name,
//! which costs a scan of all the others.

use std::collections::HashMap;

use serde_json::json;
use sqlx::{PgConnection, SqliteConnection};
use time::OffsetDateTime;

use super::rows::millis;
use super::StoreError;
use crate::model::{AttemptResult, NextState};

/// A delivery's next state as stored: status, next attempt, last error, when finished.
struct State<'a> {
    status: &'static str,
    next_at: i64,
    error: Option<&'a str>,
    finished: Option<i64>,
}

fn state(r: &AttemptResult, now: i64) -> State<'_> {
    let (status, next_at, error, finished) = match &r.next {
        NextState::Succeeded => ("succeeded", now, None, Some(now)),
        NextState::RetryAt(at) => ("pending", millis(*at), r.attempt.error.as_deref(), None),
        NextState::DeadLettered(why) => ("dead_lettered", now, Some(why.as_str()), Some(now)),
        NextState::Cancelled(why) => ("cancelled", now, Some(why.as_str()), Some(now)),
    };
    State {
        status,
        next_at,
        error,
        finished,
    }
}

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

fn attempts(results: &[AttemptResult]) -> Vec<&AttemptResult> {
    latest(results, |r| (r.delivery_id, r.attempt.attempt))
}

fn states(results: &[AttemptResult]) -> Vec<&AttemptResult> {
    latest(results, |r| r.delivery_id)
}

fn duration_ms(r: &AttemptResult) -> i64 {
    i64::try_from(r.attempt.duration_ms).unwrap_or(i64::MAX)
}

/// Records `results` on an SQLite connection, inside the caller's transaction: the attempts,
/// and the next state of each delivery still leased by `owner` (a delivery cancelled or taken
/// over meanwhile is left as it is).
pub async fn record_sqlite(
    conn: &mut SqliteConnection,
    owner: &str,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let now = millis(OffsetDateTime::now_utc());
    let rows: Vec<_> = attempts(results)
        .iter()
        .map(|r| {
            let a = &r.attempt;
            json!([
                r.delivery_id.to_string(),
                a.attempt,
                millis(a.started_at),
                duration_ms(r),
                a.outcome.as_str(),
                a.http_status,
                a.error
            ])
        })
        .collect();
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    sqlx::query(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
         FROM json_each(?1) WHERE true
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
           outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    let rows: Vec<_> = states(results)
        .iter()
        .map(|r| {
            let s = state(r, now);
            json!([
                r.delivery_id.to_string(),
                s.status,
                r.attempt.attempt,
                s.next_at,
                s.error,
                s.finished
            ])
        })
        .collect();
    sqlx::query(
        "WITH r AS (SELECT value ->> 0 AS id, value ->> 1 AS status, value ->> 2 AS attempts, value ->> 3 AS next_at,
                      value ->> 4 AS error, value ->> 5 AS finished FROM json_each(?1))
         UPDATE deliveries SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
           last_error = r.error, finished_at = r.finished, lease_owner = NULL, lease_until = NULL, updated_at = ?2
         FROM r WHERE deliveries.id = r.id AND deliveries.status = 'in_flight' AND deliveries.lease_owner = ?3",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`record_sqlite`] for PostgreSQL: the columns as arrays, read with `unnest`.
pub async fn record_pg(
    conn: &mut PgConnection,
    owner: &str,
    results: &[AttemptResult],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let now = millis(OffsetDateTime::now_utc());
    let a = attempts(results);
    sqlx::query(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[])
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
           outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error",
    )
    .bind(a.iter().map(|r| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(a.iter().map(|r| i64::from(r.attempt.attempt)).collect::<Vec<_>>())
    .bind(a.iter().map(|r| millis(r.attempt.started_at)).collect::<Vec<_>>())
    .bind(a.iter().map(|r| duration_ms(r)).collect::<Vec<_>>())
    .bind(a.iter().map(|r| r.attempt.outcome.as_str()).collect::<Vec<_>>())
    .bind(
        a.iter()
            .map(|r| r.attempt.http_status.map(i64::from))
            .collect::<Vec<_>>(),
    )
    .bind(a.iter().map(|r| r.attempt.error.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    let s = states(results);
    let st: Vec<State> = s.iter().map(|r| state(r, now)).collect();
    sqlx::query(
        "UPDATE deliveries d SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
           last_error = r.error, finished_at = r.finished, lease_owner = NULL, lease_until = NULL, updated_at = $7
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[])
           AS r(id, status, attempts, next_at, error, finished)
         WHERE d.id = r.id AND d.status = 'in_flight' AND d.lease_owner = $8",
    )
    .bind(s.iter().map(|r| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.status).collect::<Vec<_>>())
    .bind(s.iter().map(|r| i64::from(r.attempt.attempt)).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.next_at).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.error).collect::<Vec<_>>())
    .bind(st.iter().map(|x| x.finished).collect::<Vec<_>>())
    .bind(now)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attempt, AttemptOutcome, DeliveryId};

    fn result(id: DeliveryId, attempt: u32) -> AttemptResult {
        AttemptResult {
            delivery_id: id,
            attempt: Attempt {
                attempt,
                started_at: OffsetDateTime::now_utc(),
                duration_ms: 1,
                outcome: AttemptOutcome::Success,
                http_status: Some(200),
                error: None,
            },
            next: NextState::Succeeded,
        }
    }

    #[test]
    fn only_the_last_result_of_a_delivery_is_kept() {
        let (a, b) = (DeliveryId::new(), DeliveryId::new());
        let batch = [result(a, 1), result(b, 1), result(a, 2), result(a, 2)];
        let pairs = |kept: Vec<&AttemptResult>| {
            kept.iter()
                .map(|r| (r.delivery_id, r.attempt.attempt))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(states(&batch)), [(b, 1), (a, 2)]);
        assert_eq!(pairs(attempts(&batch)), [(a, 1), (b, 1), (a, 2)]);
    }
}
