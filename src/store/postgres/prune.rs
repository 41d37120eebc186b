//! Pruning on PostgreSQL: plain batched deletes, one autocommit statement per batch, that
//! autovacuum keeps up with. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so instances
//! pruning at once take disjoint rows: none waits for another and no row is removed twice.
//!
//! Not time partitions: a delivery's expiry depends on when it finished and how (a dead
//! letter stays 30 days, a retrying delivery stays however old it is), not on when it was
//! made, so no partition of creation times ever becomes wholly expired to be dropped.

use sqlx::{PgPool, Row};

use crate::model::EventId;
use crate::store::{Cutoffs, EventScan, Removed, StoreError, StoreStats, TableStats};

/// When a removed row's id (`msg_` or `evt_` and a UUIDv7 in 32 hex digits) was made, in unix
/// ms: its first 48 bits; 0 for an id of another UUID version. A horizon is the later of that
/// and the row's stored time, because a lookup has only the id to go by, and the id is made a
/// moment apart from the stored time: it may fall in the next millisecond, and a horizon from
/// the stored time alone would call that very row "never existed" (404), not "pruned" (410).
const ID_MILLIS: &str = "CASE WHEN substr(id, strpos(id, '_') + 13, 1) = '7'
    THEN ('x' || substr(id, strpos(id, '_') + 1, 12))::bit(48)::int8 ELSE 0 END";

/// Removes up to `limit` expired finished deliveries with their attempts (succeeded, then
/// dead letters), and moves the horizons past them.
pub async fn deliveries(
    pool: &PgPool,
    cutoffs: &Cutoffs,
    limit: u32,
) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    for (status, cutoff, dead_letter) in cutoffs.finished() {
        let left = u64::from(limit).saturating_sub(removed.deliveries);
        if left == 0 {
            break;
        }
        // A finished delivery's next_attempt_at is its finishing time (never later than
        // finished_at), so deliveries_due (status, next_attempt_at) finds them in order.
        // The attempts and the deliveries go in one statement: the foreign key is checked
        // at its end, when both are gone.
        let row = sqlx::query(&format!(
            "WITH doomed AS (
               SELECT id, created_at FROM deliveries
               WHERE status = $1 AND next_attempt_at < $2 AND finished_at < $2
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM doomed) RETURNING 1),
             d AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed)
                   RETURNING GREATEST(created_at, {ID_MILLIS}) AS made),
             h AS (UPDATE retention SET deliveries_through = GREATEST(deliveries_through, (SELECT max(made) FROM d)),
                     dead_letters_through = CASE WHEN $4 THEN GREATEST(dead_letters_through, (SELECT max(made) FROM d))
                                            ELSE dead_letters_through END
                   WHERE id = 1 AND EXISTS (SELECT 1 FROM d) RETURNING 1)
             SELECT (SELECT count(*) FROM d) AS deliveries, (SELECT count(*) FROM a) AS attempts"
        ))
        .bind(status)
        .bind(cutoff)
        .bind(left as i64)
        .bind(dead_letter)
        .fetch_one(pool)
        .await?;
        removed.deliveries += row.try_get::<i64, _>("deliveries")? as u64;
        removed.attempts += row.try_get::<i64, _>("attempts")? as u64;
    }
    let left = u64::from(limit).saturating_sub(removed.deliveries);
    if left > 0 {
        // Succeeded deliveries kept in their events' rows (settled under their hand-off's
        // mark): they go when their event's routes are cleared, found through events_handoff
        // oldest first, and leave that index with them (`handoff` cleared too). They have no
        // attempts.
        let row = sqlx::query(&format!(
            "WITH doomed AS (
               SELECT e.id, LENGTH(e.routes) - LENGTH(REPLACE(e.routes, ' ', '')) - 1 AS n
               FROM handoffs h JOIN events e ON e.handoff = h.id AND e.handoff_seq <= h.through
               WHERE e.received_at < $1 AND e.routes IS NOT NULL
               ORDER BY e.handoff, e.handoff_seq LIMIT $2 FOR UPDATE OF e SKIP LOCKED),
             d AS (UPDATE events SET routes = NULL, handoff = NULL, handoff_seq = NULL
                   WHERE id IN (SELECT id FROM doomed)
                   RETURNING GREATEST(received_at, {ID_MILLIS}) AS made),
             h AS (UPDATE retention SET deliveries_through = GREATEST(deliveries_through, (SELECT max(made) FROM d))
                   WHERE id = 1 AND EXISTS (SELECT 1 FROM d) RETURNING 1)
             SELECT COALESCE((SELECT sum(n) FROM doomed), 0)::int8 AS deliveries"
        ))
        .bind(cutoffs.finished()[0].1)
        .bind(left as i64)
        .fetch_one(pool)
        .await?;
        removed.deliveries += row.try_get::<i64, _>("deliveries")? as u64;
    }
    Ok(removed)
}

/// Looks at up to `limit` events after `after` accepted before the events cutoff and removes
/// those with no delivery left and no idempotency key still honoured.
pub async fn events(
    pool: &PgPool,
    cutoffs: &Cutoffs,
    after: Option<&str>,
    limit: u32,
) -> Result<EventScan, StoreError> {
    let (events_before, keys_since) = cutoffs.events_millis();
    // Ids are time-ordered: the primary key walks the events oldest first up to the cutoff.
    let bound = EventId::first_at(events_before).to_string();
    let row = sqlx::query(&format!(
        "WITH scan AS (
           SELECT id, received_at, idempotency_key FROM events WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3),
         doomed AS (
           SELECT e.id FROM events e
           WHERE e.id IN (SELECT id FROM scan WHERE received_at < $4 AND (idempotency_key IS NULL OR received_at < $5))
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
             AND e.routes IS NULL
           FOR UPDATE SKIP LOCKED),
         gone AS (DELETE FROM events WHERE id IN (SELECT id FROM doomed)
                  RETURNING GREATEST(received_at, {ID_MILLIS}) AS made),
         h AS (UPDATE retention SET events_through = GREATEST(events_through, (SELECT max(made) FROM gone))
               WHERE id = 1 AND EXISTS (SELECT 1 FROM gone) RETURNING 1)
         SELECT (SELECT count(*) FROM scan) AS seen, (SELECT max(id) FROM scan) AS last,
                (SELECT count(*) FROM gone) AS removed"
    ))
    .bind(after.unwrap_or(""))
    .bind(bound)
    .bind(i64::from(limit))
    .bind(events_before)
    .bind(keys_since)
    .fetch_one(pool)
    .await?;
    let seen: i64 = row.try_get("seen")?;
    Ok(EventScan {
        removed: row.try_get::<i64, _>("removed")? as u64,
        next: if seen == i64::from(limit) {
            row.try_get("last")?
        } else {
            None
        },
    })
}

/// Rows (the statistics collector's live-row counts) and bytes (with indexes and TOAST) of
/// Herald's tables in the current schema, and their sum.
pub async fn stats(pool: &PgPool) -> Result<StoreStats, StoreError> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS tbl, COALESCE(s.n_live_tup, 0)::int8 AS n,
                pg_total_relation_size(c.oid)::int8 AS bytes
         FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
           LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE ns.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE '\\_sqlx%'
         ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        tables.push(TableStats {
            table: row.try_get("tbl")?,
            rows: row.try_get::<i64, _>("n")?.max(0) as u64,
            bytes: row.try_get::<i64, _>("bytes")?.max(0) as u64,
        });
    }
    Ok(StoreStats {
        total_bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        free_bytes: None,
    })
}
