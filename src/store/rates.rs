//! Per-endpoint rate limits shared by every instance: each send reserves its time with one
//! conditional `UPDATE` (the generic cell rate algorithm: the row keeps the theoretical
//! arrival time of the next send, `tat`, and a send may start `tolerance` ahead of it), so
//! instances on one database space their sends together. A `429` pauses the endpoint until
//! its `Retry-After` and halves its rate (at most four times) until `slowed_until`. Times are
//! unix microseconds: a 5 ms spacing needs more than milliseconds.
//!
//! Why not `governor`: it keeps its state in the process, and the limit must hold for the
//! whole cluster; the same statements serve SQLite's single instance.

use async_trait::async_trait;

use super::rows::Columns;
use super::sql::on_every_backend;
use super::StoreError;
use crate::model::EndpointId;

/// When a send may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Reserved: send at this time (unix microseconds; now or soon).
    At(i64),
    /// Not reserved: the endpoint's next free time is further away than the caller would
    /// wait; try again then (unix microseconds).
    After(i64),
}

/// What a reservation asks for (microseconds).
#[derive(Debug, Clone, Copy)]
pub struct Reserve {
    /// Now.
    pub now: i64,
    /// The spacing of sends at the full rate.
    pub interval: i64,
    /// How far ahead of its spacing a send may start (the burst).
    pub tolerance: i64,
    /// The longest wait worth reserving for.
    pub max_wait: i64,
}

/// Rate limits in the store.
#[async_trait]
pub trait RateRecords: Send + Sync {
    /// Reserves a send to endpoint `id`.
    async fn reserve(&self, id: EndpointId, r: Reserve) -> Result<Slot, StoreError>;
    /// A `429`: no send to `id` before `pause_until`, and its rate halved (once per pause,
    /// four times at most) until `slowed_until`.
    async fn slow_down(
        &self,
        id: EndpointId,
        now: i64,
        pause_until: i64,
        slowed_until: i64,
    ) -> Result<(), StoreError>;
    /// The endpoints slowed down at `now`, with until when.
    async fn slowed(&self, now: i64) -> Result<Vec<(EndpointId, i64)>, StoreError>;
}

on_every_backend!(RateRecords {
    async fn reserve(&self, id: EndpointId, r: Reserve) -> Result<Slot, StoreError> {
        for _ in 0..2 {
            // The rate halves while the endpoint is slowed down: the spacing doubles.
            let row = sqlx::query::<DB>(
                "UPDATE endpoint_rates
                 SET tat = (CASE WHEN tat > $1 THEN tat ELSE $1 END)
                   + ($2 << CAST(CASE WHEN slowed_until > $1 THEN halvings ELSE 0 END AS INTEGER))
                 WHERE endpoint_id = $3 AND (CASE WHEN tat > $1 THEN tat ELSE $1 END) - $4 <= $1 + $5
                 RETURNING tat, CASE WHEN slowed_until > $1 THEN halvings ELSE 0 END AS h",
            )
            .bind(r.now)
            .bind(r.interval)
            .bind(id.to_string())
            .bind(r.tolerance)
            .bind(r.max_wait)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                let spacing = r.interval << row.int("h")?.clamp(0, 4);
                let start = row.int("tat")? - spacing - r.tolerance;
                return Ok(Slot::At(start.max(r.now)));
            }
            let current =
                sqlx::query::<DB>("SELECT tat FROM endpoint_rates WHERE endpoint_id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = current {
                return Ok(Slot::After(row.int("tat")? - r.tolerance));
            }
            sqlx::query::<DB>(
                "INSERT INTO endpoint_rates (endpoint_id, tat, halvings, slowed_until, paused_until) VALUES ($1, 0, 0, 0, 0)
                 ON CONFLICT (endpoint_id) DO NOTHING",
            )
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        }
        Ok(Slot::After(r.now + r.interval))
    }

    async fn slow_down(
        &self,
        id: EndpointId,
        now: i64,
        pause_until: i64,
        slowed_until: i64,
    ) -> Result<(), StoreError> {
        // A 429 during the pause another 429 started does not halve the rate again: the
        // sends in flight when the receiver began refusing all answer 429 together.
        sqlx::query::<DB>(
            "INSERT INTO endpoint_rates (endpoint_id, tat, halvings, slowed_until, paused_until) VALUES ($1, $2, 1, $3, $2)
             ON CONFLICT (endpoint_id) DO UPDATE SET
               halvings = CASE WHEN endpoint_rates.paused_until > $4 THEN endpoint_rates.halvings
                               WHEN endpoint_rates.slowed_until <= $4 THEN 1
                               WHEN endpoint_rates.halvings >= 4 THEN 4
                               ELSE endpoint_rates.halvings + 1 END,
               tat = CASE WHEN endpoint_rates.tat > excluded.tat THEN endpoint_rates.tat ELSE excluded.tat END,
               slowed_until = CASE WHEN endpoint_rates.slowed_until > excluded.slowed_until
                                   THEN endpoint_rates.slowed_until ELSE excluded.slowed_until END,
               paused_until = CASE WHEN endpoint_rates.paused_until > excluded.paused_until
                                   THEN endpoint_rates.paused_until ELSE excluded.paused_until END",
        )
        .bind(id.to_string())
        .bind(pause_until)
        .bind(slowed_until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn slowed(&self, now: i64) -> Result<Vec<(EndpointId, i64)>, StoreError> {
        let rows = sqlx::query::<DB>(
            "SELECT endpoint_id, slowed_until FROM endpoint_rates WHERE slowed_until > $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.text("endpoint_id")?;
            let id = id.parse().map_err(|e: crate::model::IdParseError| {
                super::rows::corrupt("endpoint id", e.to_string())
            })?;
            out.push((id, row.int("slowed_until")?));
        }
        Ok(out)
    }
});
