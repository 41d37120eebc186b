//! Endpoint health records, shared by every instance: read, changed in a transaction that
//! locks the endpoint's row (so two instances' changes apply one after the other), the one
//! probe at a time claimed with a conditional update, and the deliveries of a disabled
//! endpoint held and resumed. No row means healthy with nothing counted; a change back to
//! that deletes the row, so the table holds only endpoints worth looking at.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::{corrupt, from_millis, millis, Columns};
use super::sql::on_every_backend;
use super::StoreError;
use crate::model::{EndpointHealth, EndpointId, HealthState};

/// A change of an endpoint's health, as a pure function of the record (`dispatch/health.rs`).
pub type HealthChange<'a> = &'a (dyn Fn(EndpointHealth) -> EndpointHealth + Send + Sync);

/// What becomes of the deliveries an endpoint held while it was disabled, when it is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Send them, in the order they were created.
    Deliver,
    /// Keep them held, to replay by time range.
    Keep,
}

/// Endpoint health in the store.
#[async_trait]
pub trait HealthRecords: Send + Sync {
    /// Every endpoint that is not healthy with nothing counted.
    async fn health_records(&self) -> Result<Vec<EndpointHealth>, StoreError>;
    /// One endpoint's record (healthy and empty when it has none).
    async fn health(&self, id: EndpointId) -> Result<EndpointHealth, StoreError>;
    /// Applies `change` to the endpoint's record in one transaction; returns it before and
    /// after. A change into `disabled` holds the endpoint's waiting deliveries in the same
    /// transaction.
    async fn change_health(
        &self,
        id: EndpointId,
        now: OffsetDateTime,
        change: HealthChange<'_>,
    ) -> Result<(EndpointHealth, EndpointHealth), StoreError>;
    /// Claims the failing endpoint's one probe until `until`: `true` for the caller that gets
    /// it, `false` while a probe is out or not yet due (or the endpoint is not failing).
    async fn claim_probe(
        &self,
        id: EndpointId,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Holds the disabled endpoint's deliveries that wait (pending, or leased by an instance
    /// that died); returns how many.
    async fn hold_deliveries(&self, id: EndpointId, now: OffsetDateTime)
        -> Result<u64, StoreError>;
    /// Makes the endpoint's held deliveries due, oldest first; returns how many.
    async fn resume_held(&self, id: EndpointId, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// Dead-letters, for `reason`, the endpoint's waiting deliveries created before `cutoff`
    /// (their time to live ran out while the endpoint failed); returns how many.
    async fn expire_waiting(
        &self,
        id: EndpointId,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
        reason: &str,
    ) -> Result<u64, StoreError>;
}

/// Holds the waiting deliveries of endpoint `$2` (`$1` is the time).
const HOLD: &str = "UPDATE deliveries SET status = 'held', lease_owner = NULL, lease_until = NULL, updated_at = $1,
       last_error = 'held: the endpoint is disabled'
     WHERE endpoint_id = $2 AND (status = 'pending' OR (status = 'in_flight' AND lease_until <= $1))";

on_every_backend!(HealthRecords {
    async fn health_records(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        sqlx::query::<DB>("SELECT * FROM endpoint_health")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(health_from_row)
            .collect()
    }

    async fn health(&self, id: EndpointId) -> Result<EndpointHealth, StoreError> {
        let row = sqlx::query::<DB>("SELECT * FROM endpoint_health WHERE endpoint_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => health_from_row(&row),
            None => Ok(EndpointHealth::new(id, OffsetDateTime::UNIX_EPOCH)),
        }
    }

    async fn change_health(
        &self,
        id: EndpointId,
        now: OffsetDateTime,
        change: HealthChange<'_>,
    ) -> Result<(EndpointHealth, EndpointHealth), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // The row exists before it is locked, so two instances wait for each other on it.
        let pristine = EndpointHealth::new(id, now);
        sqlx::query::<DB>(&format!("{INSERT} ON CONFLICT (endpoint_id) DO NOTHING"))
            .bind(id.to_string())
            .bind(pristine.state.as_str().to_owned())
            .bind(0i64)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(0i64)
            .bind(0i64)
            .bind(0i64)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(0i64)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query::<DB>(&format!(
            "SELECT * FROM endpoint_health WHERE endpoint_id = $1{}",
            DB::LOCK_ROWS
        ))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let before = health_from_row(&row)?;
        let after = as_stored(change(before.clone()));
        if after.is_pristine() {
            sqlx::query::<DB>("DELETE FROM endpoint_health WHERE endpoint_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        } else if after != before {
            let h = &after;
            sqlx::query::<DB>(&format!(
                "{INSERT} ON CONFLICT (endpoint_id) DO UPDATE SET state = excluded.state,
                   consecutive_failures = excluded.consecutive_failures, failing_since = excluded.failing_since,
                   window_start = excluded.window_start, window_attempts = excluded.window_attempts,
                   window_failures = excluded.window_failures, probes = excluded.probes,
                   probe_at = excluded.probe_at, probe_until = excluded.probe_until,
                   notified_percent = excluded.notified_percent, last_error = excluded.last_error,
                   disabled_reason = excluded.disabled_reason, changed_at = excluded.changed_at"
            ))
            .bind(id.to_string())
            .bind(h.state.as_str().to_owned())
            .bind(i64::from(h.consecutive_failures))
            .bind(h.failing_since.map(millis))
            .bind(h.window_start.map(millis))
            .bind(i64::from(h.window_attempts))
            .bind(i64::from(h.window_failures))
            .bind(i64::from(h.probes))
            .bind(h.probe_at.map(millis))
            .bind(h.probe_until.map(millis))
            .bind(i64::from(h.notified_percent))
            .bind(h.last_error.clone())
            .bind(h.disabled_reason.clone())
            .bind(millis(h.changed_at))
            .execute(&mut *tx)
            .await?;
        }
        if after.state == HealthState::Disabled && before.state != HealthState::Disabled {
            sqlx::query::<DB>(HOLD)
                .bind(millis(now))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if after.state != before.state {
            // The other instances' dispatchers hold or release the endpoint's deliveries.
            self.messages.changed().await?;
        }
        Ok((before, after))
    }

    async fn claim_probe(
        &self,
        id: EndpointId,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query::<DB>(
            "UPDATE endpoint_health SET probe_until = $1
             WHERE endpoint_id = $2 AND state = 'failing' AND (probe_at IS NULL OR probe_at <= $3)
               AND (probe_until IS NULL OR probe_until <= $3)",
        )
        .bind(millis(until))
        .bind(id.to_string())
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn hold_deliveries(
        &self,
        id: EndpointId,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query::<DB>(HOLD)
            .bind(millis(now))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn expire_waiting(
        &self,
        id: EndpointId,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query::<DB>(
            "UPDATE deliveries SET status = 'dead_lettered', last_error = $1, finished_at = $2, next_attempt_at = $2, updated_at = $2
             WHERE endpoint_id = $3 AND status = 'pending' AND created_at < $4",
        )
        .bind(reason.to_owned())
        .bind(millis(now))
        .bind(id.to_string())
        .bind(millis(cutoff))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn resume_held(&self, id: EndpointId, now: OffsetDateTime) -> Result<u64, StoreError> {
        // Due at their creation: the lease query takes due work in order of its due time, so
        // they go out in the order they were created, before anything that came later.
        let done = sqlx::query::<DB>(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = created_at, last_error = NULL, updated_at = $1
             WHERE endpoint_id = $2 AND status = 'held'",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done))
    }
});

/// Inserts a health row (14 values, `$1` the endpoint id).
const INSERT: &str = "INSERT INTO endpoint_health (endpoint_id, state, consecutive_failures, failing_since,
     window_start, window_attempts, window_failures, probes, probe_at, probe_until, notified_percent,
     last_error, disabled_reason, changed_at)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// `h` with its times cut to the milliseconds the store keeps, so what is returned (and
/// compared with what was read) is what a later read gives.
fn as_stored(mut h: EndpointHealth) -> EndpointHealth {
    let cut = |t: OffsetDateTime| from_millis(millis(t));
    for t in [
        &mut h.failing_since,
        &mut h.window_start,
        &mut h.probe_at,
        &mut h.probe_until,
    ] {
        *t = t.map(cut);
    }
    h.changed_at = cut(h.changed_at);
    h
}

fn health_from_row(row: &impl Columns) -> Result<EndpointHealth, StoreError> {
    let count = |col: &str| -> Result<u32, StoreError> {
        Ok(u32::try_from(row.int(col)?).unwrap_or(u32::MAX))
    };
    let time = |col: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(row.opt_int(col)?.map(from_millis))
    };
    let id = row.text("endpoint_id")?;
    let state = row.text("state")?;
    Ok(EndpointHealth {
        endpoint_id: id
            .parse()
            .map_err(|e: crate::model::IdParseError| corrupt("endpoint id", e.to_string()))?,
        state: HealthState::parse(&state).ok_or_else(|| corrupt("endpoint health", state))?,
        consecutive_failures: count("consecutive_failures")?,
        failing_since: time("failing_since")?,
        window_start: time("window_start")?,
        window_attempts: count("window_attempts")?,
        window_failures: count("window_failures")?,
        probes: count("probes")?,
        probe_at: time("probe_at")?,
        probe_until: time("probe_until")?,
        notified_percent: count("notified_percent")?,
        last_error: row.opt_text("last_error")?,
        disabled_reason: row.opt_text("disabled_reason")?,
        changed_at: from_millis(row.int("changed_at")?),
    })
}
