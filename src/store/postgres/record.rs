//! PostgreSQL's statement for attempt results: a whole batch in one (the attempts, and the
//! deliveries' next states) whatever its size. The statement's text is the same for every
//! batch, so it is prepared and planned once per connection: the rows travel as one array per
//! column, read with `unnest` (numbered placeholders per row would make a new statement for
//! every batch size).

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::model::AttemptResult;
use crate::store::record::{attempts, duration_ms, exchange_json, state, states, State};
use crate::store::rows::millis;
use crate::store::StoreError;

/// Records `results` on PostgreSQL: the attempts, and the next state of each delivery still
/// leased by `owner` (a delivery cancelled or taken over meanwhile is left as it is). One
/// statement, the columns as arrays read with `unnest`.
pub async fn record(
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
