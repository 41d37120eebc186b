//! PostgreSQL's statement for attempt results: a whole batch in one (the hand-off's mark, the
//! attempts, the deliveries' next states, the routed deliveries written as rows), whatever its
//! size. The statement's text is the same for every batch, so it is prepared and planned once
//! per connection: the rows travel as one array per column, read with `unnest` (numbered
//! placeholders per row would make a new statement for every batch size).

use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use crate::model::AttemptResult;
use crate::store::record::{attempts, duration_ms, exchange_json, state, states, State};
use crate::store::routes::Route;
use crate::store::rows::millis;
use crate::store::{HandoffMark, StoreError};

/// Records `results` on PostgreSQL: the attempts, and the next state of each delivery still
/// leased by `owner` (a delivery cancelled or taken over meanwhile is left as it is); with
/// `mark`, the hand-off's mark and lease, and its routed results as rows of their own. One
/// statement, the columns as arrays read with `unnest`. Answers whether the hand-off is open.
///
/// Fencing against a takeover: the mark's `UPDATE` comes first and locks the hand-off's row;
/// a takeover locks it `FOR UPDATE` before it reads the events to take over. Whichever comes
/// second waits for the first to commit: a takeover after this statement sees its mark and
/// the routes it took out; this statement after a takeover finds the hand-off closed and
/// writes nothing routed.
pub async fn record(
    pool: &PgPool,
    owner: &str,
    mark: Option<&HandoffMark>,
    results: &[AttemptResult],
) -> Result<bool, StoreError> {
    let now = millis(OffsetDateTime::now_utc());
    let (routed, rows): (Vec<AttemptResult>, Vec<AttemptResult>) =
        results.iter().cloned().partition(|r| r.routed.is_some());
    // Routed results of another hand-off than the mark's were fenced by the caller already.
    let routed: Vec<&AttemptResult> = states(&routed)
        .into_iter()
        .filter(|r| mark.map(|m| m.handoff) == r.routed.as_ref().map(|x| x.routed.handoff))
        .collect();
    let a = attempts(&rows);
    let s = states(&rows);
    let st: Vec<State> = s.iter().map(|r| state(r, now)).collect();
    let rt: Vec<State> = routed.iter().map(|r| state(r, now)).collect();
    let ra: Vec<_> = routed
        .iter()
        .filter_map(|r| r.attempt.as_ref().map(|a| (*r, a)))
        .collect();
    let x = |r: &AttemptResult| r.routed.clone().expect("routed results only");
    let entries: Vec<String> = routed
        .iter()
        .map(|r| Ok(Route::of_result(r, &x(r))?.entry()))
        .collect::<Result<_, StoreError>>()?;
    // Data-modifying CTEs always run: one statement, atomic by itself, so one round trip
    // with no transaction around it.
    let row = sqlx::query(
        "WITH h AS (
           UPDATE handoffs SET through = GREATEST(through, $17), lease_until = $18, updated_at = $14
           WHERE id = $19 AND NOT closed RETURNING id),
         a AS (
           INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           SELECT u.* FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[], $16::text[])
             AS u(delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           -- A late result of a delivery finished elsewhere and pruned meanwhile is dropped.
           WHERE EXISTS (SELECT 1 FROM deliveries x WHERE x.id = u.delivery_id)
           ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
             outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error,
             exchange = excluded.exchange
           RETURNING 1),
         u AS (
           UPDATE deliveries d SET status = r.status, attempts = r.attempts, next_attempt_at = r.next_at,
             last_error = r.error, finished_at = r.finished, lease_owner = NULL, lease_until = NULL, updated_at = $14
           FROM unnest($8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[], $13::int8[])
             AS r(id, status, attempts, next_at, error, finished)
           WHERE d.id = r.id AND d.status = 'in_flight' AND d.lease_owner = $15
           RETURNING 1),
         m AS (
           INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at,
             last_error, created_at, updated_at, finished_at)
           SELECT r.id, r.event_id, r.sub, r.ep, r.status, r.attempts, r.next_at, r.error, r.created, $14, r.finished
           FROM unnest($20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::int8[], $26::int8[],
                       $27::text[], $28::int8[], $29::int8[])
             AS r(id, event_id, sub, ep, status, attempts, next_at, error, created, finished)
           WHERE EXISTS (SELECT 1 FROM h)
           ON CONFLICT (id) DO NOTHING
           RETURNING id),
         ma AS (
           INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           SELECT u.* FROM unnest($30::text[], $31::int8[], $32::int8[], $33::int8[], $34::text[], $35::int8[], $36::text[], $37::text[])
             AS u(delivery_id, attempt, started_at, duration_ms, outcome, http_status, error, exchange)
           WHERE u.delivery_id IN (SELECT id FROM m)
           RETURNING 1),
         x AS (
           UPDATE events e SET routes = NULLIF(' ' || array_to_string(ARRAY(
               SELECT t FROM regexp_split_to_table(btrim(e.routes), ' ') AS t WHERE t <> ALL(r.entries)), ' ') || ' ', '  ')
           FROM (SELECT event_id, array_agg(entry) AS entries
                 FROM unnest($21::text[], $38::text[]) AS g(event_id, entry) GROUP BY event_id) r
           WHERE e.id = r.event_id AND EXISTS (SELECT 1 FROM h)
           RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM h) AS held",
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
    .bind(mark.map(|m| m.through))
    .bind(mark.map(|m| millis(m.until)))
    .bind(mark.map(|m| m.handoff))
    .bind(routed.iter().map(|r| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(routed.iter().map(|r| x(r).event_id.to_string()).collect::<Vec<_>>())
    .bind(routed.iter().map(|r| x(r).subscription_id.to_string()).collect::<Vec<_>>())
    .bind(routed.iter().map(|r| x(r).endpoint_id.to_string()).collect::<Vec<_>>())
    .bind(rt.iter().map(|x| x.status).collect::<Vec<_>>())
    .bind(routed.iter().map(|r| i64::from(r.attempts)).collect::<Vec<_>>())
    .bind(rt.iter().map(|x| x.next_at).collect::<Vec<_>>())
    .bind(rt.iter().map(|x| x.error).collect::<Vec<_>>())
    .bind(routed.iter().map(|r| millis(x(r).created_at)).collect::<Vec<_>>())
    .bind(rt.iter().map(|x| x.finished).collect::<Vec<_>>())
    .bind(ra.iter().map(|(r, _)| r.delivery_id.to_string()).collect::<Vec<_>>())
    .bind(ra.iter().map(|(_, a)| i64::from(a.attempt)).collect::<Vec<_>>())
    .bind(ra.iter().map(|(_, a)| millis(a.started_at)).collect::<Vec<_>>())
    .bind(ra.iter().map(|(_, a)| duration_ms(a)).collect::<Vec<_>>())
    .bind(ra.iter().map(|(_, a)| a.outcome.as_str()).collect::<Vec<_>>())
    .bind(
        ra.iter()
            .map(|(_, a)| a.http_status.map(i64::from))
            .collect::<Vec<_>>(),
    )
    .bind(ra.iter().map(|(_, a)| a.error.clone()).collect::<Vec<_>>())
    .bind(ra.iter().map(|(_, a)| exchange_json(a)).collect::<Vec<_>>())
    .bind(&entries)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get::<bool, _>("held")?)
}
