//! Watching the slot from an ordinary session while a source streams: how far the source has
//! written, how much WAL the slot has not had confirmed, and how much it keeps on the
//! source's disk (what an operator must watch: a slot nobody reads fills the disk).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

use super::connection::Target;
use super::QUERY_TIMEOUT;
use crate::sources::SourceStatus;

/// How often the slot is read.
const EVERY: Duration = Duration::from_secs(5);

/// Stops the watch when dropped.
pub struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches `slot` until the returned guard is dropped.
pub fn watch(target: Target, slot: String, status: SourceStatus) -> Watch {
    Watch(tokio::spawn(async move {
        let Ok(options) = target.ordinary() else {
            return;
        };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(QUERY_TIMEOUT)
            .connect_lazy_with(options);
        loop {
            match tokio::time::timeout(QUERY_TIMEOUT, read(&pool, &slot)).await {
                Ok(Ok(Some((current, lag, retained)))) => status.update(|v| {
                    v.source_position = Some(current);
                    v.lag_bytes = Some(lag.max(0) as u64);
                    v.retained_bytes = Some(retained.max(0) as u64);
                }),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(%slot, error = %e, "reading the slot's lag failed"),
                Err(_) => tracing::debug!(%slot, "reading the slot's lag timed out"),
            }
            tokio::time::sleep(EVERY).await;
        }
    }))
}

/// The source's write position, the slot's unconfirmed bytes and its retained bytes.
pub async fn read(
    pool: &sqlx::PgPool,
    slot: &str,
) -> Result<Option<(String, i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT pg_current_wal_lsn()::text AS current,
                COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8 AS lag,
                COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8 AS retained
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("current")?,
            r.try_get("lag")?,
            r.try_get("retained")?,
        ))
    })
    .transpose()
}
