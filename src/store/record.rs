//! Recording attempt results, many per statement: one multi-row `INSERT` of the attempts and
//! one multi-row `UPDATE … FROM` of the deliveries for a whole batch, on any backend (both
//! read `$N` placeholders, a `WITH name(columns) AS (VALUES …)` list and `UPDATE … FROM`).
//! A batch costs two statements however many results it holds, instead of two per result.

use std::collections::HashMap;

use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;

use super::rows::millis;
use super::values::{rows, template};
use super::StoreError;
use crate::model::{AttemptResult, NextState};

/// Results per statement at most: 7 parameters each keeps a statement far below SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters.
const CHUNK: usize = 512;

/// Records `results` on `conn` (inside the caller's transaction): the attempts, and the next
/// state of each delivery still leased by `owner` (a delivery cancelled or taken over
/// meanwhile is left as it is).
pub async fn record_on<DB>(
    conn: &mut DB::Connection,
    owner: &str,
    results: &[AttemptResult],
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let now = millis(OffsetDateTime::now_utc());
    for chunk in latest(results, |r| (r.delivery_id, r.attempt.attempt)).chunks(CHUNK) {
        let sql = attempts_sql(chunk.len());
        let mut attempts = sqlx::query::<DB>(&sql);
        for r in chunk {
            let a = &r.attempt;
            attempts = attempts
                .bind(r.delivery_id.to_string())
                .bind(i64::from(a.attempt))
                .bind(millis(a.started_at))
                .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
                .bind(a.outcome.as_str())
                .bind(a.http_status.map(i64::from))
                .bind(a.error.clone());
        }
        attempts.execute(&mut *conn).await?;
    }
    for chunk in latest(results, |r| r.delivery_id).chunks(CHUNK) {
        let sql = states_sql(chunk.len());
        let mut states = sqlx::query::<DB>(&sql);
        for r in chunk {
            let (status, next_at, error, finished) = match &r.next {
                NextState::Succeeded => ("succeeded", now, None, Some(now)),
                NextState::RetryAt(at) => ("pending", millis(*at), r.attempt.error.clone(), None),
                NextState::DeadLettered(why) => {
                    ("dead_lettered", now, Some(why.clone()), Some(now))
                }
                NextState::Cancelled(why) => ("cancelled", now, Some(why.clone()), Some(now)),
            };
            states = states
                .bind(r.delivery_id.to_string())
                .bind(status)
                .bind(i64::from(r.attempt.attempt))
                .bind(next_at)
                .bind(error)
                .bind(finished);
        }
        states
            .bind(now)
            .bind(owner.to_owned())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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

fn attempts_sql(count: usize) -> String {
    format!(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error)
         VALUES {}
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
           outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error",
        rows(count, 7, &template(7))
    )
}

fn states_sql(count: usize) -> String {
    let now = count * 6 + 1;
    format!(
        "WITH r (id, status, attempts, next_at, error, finished) AS (VALUES {})
         UPDATE deliveries SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
           last_error = r.error, finished_at = r.finished, lease_owner = NULL, lease_until = NULL, updated_at = ${now}
         FROM r WHERE deliveries.id = r.id AND deliveries.status = 'in_flight' AND deliveries.lease_owner = ${}",
        rows(count, 6, &template(6)),
        now + 1
    )
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
    fn placeholders_are_numbered_row_by_row() {
        assert!(states_sql(2).ends_with("lease_owner = $14"));
        assert!(states_sql(2).contains("updated_at = $13"));
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
        assert_eq!(pairs(latest(&batch, |r| r.delivery_id)), [(b, 1), (a, 2)]);
        assert_eq!(
            pairs(latest(&batch, |r| (r.delivery_id, r.attempt.attempt))),
            [(a, 1), (b, 1), (a, 2)]
        );
    }
}
