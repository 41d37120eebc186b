//! The SQL both backends share: one body of statements (with `$N` placeholders, which SQLite
//! reads as well as PostgreSQL) and the code around them, generic over the database. What
//! differs — storing events (SQLite's group commit, PostgreSQL's one-statement insert),
//! leasing, pruning — stays in `sqlite/` and `postgres/`. What they change is told to the other
//! instances through the backend's [`super::Messages`].

use std::sync::Arc;

use sqlx::{Database, Pool};
use time::OffsetDateTime;

use super::messages::Messages;
use super::routes::{self, Kept, KEPT_COLUMNS, KEPT_JOIN};
use super::rows::{
    attempt_from_row, delivery_from_row, endpoint_from_row, event_from_row, from_millis, millis,
    subscription_from_row, Columns,
};
use super::sealing::KeyRing;
use super::{
    conflict_on_unique, Horizons, PassReport, Records, RetentionState, StoreError, Takeover,
};
use crate::model::{
    Attempt, Delivery, DeliveryId, DeliveryQuery, DeliveryStatus, Endpoint, EndpointId, Event,
    EventId, ReplayFilter, Scope, Subscription, SubscriptionId,
};

/// What the shared SQL needs to know of a backend beyond what `sqlx` says.
pub trait Backend: Database {
    /// How to begin a transaction that writes: SQLite takes the write lock up front, so the
    /// busy timeout applies instead of a deferred transaction failing at its first write.
    const BEGIN_WRITE: &'static str;

    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends (SQLite
    /// has locked the whole database already).
    const LOCK_ROWS: &'static str;

    /// Rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl Backend for sqlx::Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Backend for sqlx::Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The shared statements over a backend's pools.
pub struct Shared<DB: Database> {
    /// Reads, administrative writes and releasing leases.
    pub pool: Pool<DB>,
    /// What endpoint settings are sealed with.
    pub keys: Arc<KeyRing>,
    /// Who hears of changes: the other instances of a shared store.
    pub messages: Arc<dyn Messages>,
}

fn json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { what, source })
}

/// Cancels the unfinished deliveries whose `column` is `value`.
const CANCEL: &str =
    "UPDATE deliveries SET status = 'cancelled', last_error = $1, finished_at = $2, next_attempt_at = $2, updated_at = $2
     WHERE status IN ('pending', 'in_flight') AND ";

/// Implements a trait of shared statements for [`Shared`] on every backend, with the bounds
/// `sqlx` needs for generic queries written once (`Records` here; endpoint health, rates and
/// handshakes in their own files).
macro_rules! on_every_backend {
    ($trait:path { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl<DB> $trait for $crate::store::sql::Shared<DB>
        where
            DB: $crate::store::sql::Backend,
            DB::Row: $crate::store::rows::Columns,
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
            for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        {
            $($body)*
        }
    };
}
pub(super) use on_every_backend;

on_every_backend!(Records {
    /// An event and its deliveries.
    async fn event(
        &self,
        scope: &Scope,
        id: EventId,
    ) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let Some(row) = sqlx::query::<DB>(
            "SELECT e.*, h.through AS handoff_through FROM events e
             LEFT JOIN handoffs h ON h.id = e.handoff WHERE e.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let event = event_from_row(&row)?;
        if !scope.covers(&event.solution) {
            return Ok(None);
        }
        let mut deliveries: Vec<Delivery> =
            sqlx::query::<DB>("SELECT * FROM deliveries WHERE event_id = $1 ORDER BY id")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(delivery_from_row)
                .collect::<Result<_, _>>()?;
        // And those kept in the event's row.
        if let Some(kept) = Kept::from_row(&row)? {
            deliveries.extend(kept.deliveries());
            deliveries.sort_by_key(|d| d.id);
        }
        Ok(Some((event, deliveries)))
    }

    /// Creates or replaces an endpoint.
    async fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        sqlx::query::<DB>(
            "INSERT INTO endpoints (id, name, kind, settings, max_concurrency, created_at, updated_at, rate_per_second, rate_burst, owners)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, settings = excluded.settings,
               max_concurrency = excluded.max_concurrency, updated_at = excluded.updated_at,
               rate_per_second = excluded.rate_per_second, rate_burst = excluded.rate_burst, owners = excluded.owners",
        )
        .bind(e.id.to_string())
        .bind(e.name.clone())
        .bind(e.settings.kind().as_str())
        .bind(self.keys.seal(
            json(&e.settings, "endpoint settings")?.as_bytes(),
            e.id.to_string().as_bytes(),
        ))
        .bind(e.max_concurrency.map(i64::from))
        .bind(millis(e.created_at))
        .bind(millis(e.updated_at))
        .bind(e.rate_limit.map(|r| r.per_second))
        .bind(e.rate_limit.map(|r| i64::from(r.burst)))
        .bind(e.owners.join(","))
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("endpoint name \"{}\"", e.name)))?;
        self.messages.changed().await
    }

    /// One endpoint.
    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query::<DB>("SELECT * FROM endpoints WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| endpoint_from_row(r, &self.keys))
            .transpose()
    }

    /// One endpoint by name.
    async fn endpoint_by_name(&self, name: &str) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query::<DB>("SELECT * FROM endpoints WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| endpoint_from_row(r, &self.keys))
            .transpose()
    }

    /// Every endpoint, by name.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query::<DB>("SELECT * FROM endpoints ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| endpoint_from_row(r, &self.keys))
            .collect()
    }

    /// Deletes an endpoint and its subscriptions, cancelling their unfinished deliveries.
    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        let now = millis(OffsetDateTime::now_utc());
        let id = id.to_string();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query::<DB>(&format!("{CANCEL}endpoint_id = $3"))
            .bind("the endpoint was deleted")
            .bind(now)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>("DELETE FROM subscriptions WHERE endpoint_id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        for table in ["endpoint_health", "endpoint_rates", "endpoint_grants"] {
            sqlx::query::<DB>(&format!("DELETE FROM {table} WHERE endpoint_id = $1"))
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query::<DB>("DELETE FROM endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.messages.changed().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Creates or replaces a subscription.
    async fn put_subscription(&self, s: &Subscription) -> Result<(), StoreError> {
        sqlx::query::<DB>(
            "INSERT INTO subscriptions (id, name, solution, event_name, category, endpoint_id, format, filter, enabled, rank,
                disabled_reason, created_at, updated_at, mode, stage, amqp, transform, row_options) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, solution = excluded.solution, event_name = excluded.event_name,
               category = excluded.category, endpoint_id = excluded.endpoint_id, format = excluded.format, filter = excluded.filter,
               enabled = excluded.enabled, rank = excluded.rank, disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at,
               mode = excluded.mode, stage = excluded.stage, amqp = excluded.amqp, transform = excluded.transform,
               row_options = excluded.row_options",
        )
        .bind(s.id.to_string())
        .bind(s.name.clone())
        .bind(s.solution.clone())
        .bind(s.event.clone())
        .bind(s.category.clone())
        .bind(s.endpoint_id.to_string())
        .bind(s.format.as_str())
        .bind(json(&s.filter, "subscription filter")?)
        .bind(s.enabled)
        .bind(i64::from(s.rank))
        .bind(s.disabled_reason.clone())
        .bind(millis(s.created_at))
        .bind(millis(s.updated_at))
        .bind(s.mode.as_str())
        .bind(s.stage.map(|st| st.as_str()))
        .bind(json(&s.amqp, "subscription AMQP options")?)
        .bind(
            s.transform
                .as_ref()
                .map(|t| json(t, "subscription transformation"))
                .transpose()?,
        )
        .bind(
            (!s.row.is_empty())
                .then(|| json(&s.row, "subscription row options"))
                .transpose()?,
        )
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("subscription name \"{}\"", s.name)))?;
        self.messages.changed().await
    }

    /// One subscription.
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query::<DB>("SELECT * FROM subscriptions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    /// Every subscription, by name.
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query::<DB>("SELECT * FROM subscriptions ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    /// Deletes a subscription, cancelling its unfinished deliveries.
    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError> {
        let now = millis(OffsetDateTime::now_utc());
        let id = id.to_string();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query::<DB>(&format!("{CANCEL}subscription_id = $3"))
            .bind("the subscription was deleted")
            .bind(now)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query::<DB>("DELETE FROM subscriptions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.messages.changed().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Disables a subscription and cancels its pending deliveries.
    async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = millis(OffsetDateTime::now_utc());
        let id = id.to_string();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query::<DB>(
            "UPDATE subscriptions SET enabled = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(false)
        .bind(reason.to_owned())
        .bind(now)
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query::<DB>(&format!(
            "{CANCEL}subscription_id = $3 AND status = 'pending'"
        ))
        .bind(reason.to_owned())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.messages.changed().await
    }

    /// Gives back every lease held by `owner`.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query::<DB>(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL
             WHERE status = 'in_flight' AND lease_owner = $1",
        )
        .bind(owner.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done))
    }

    /// Opens a hand-off for `owner`.
    async fn open_handoff(&self, owner: &str, until: OffsetDateTime) -> Result<i64, StoreError> {
        let now = millis(OffsetDateTime::now_utc());
        let row = sqlx::query::<DB>(
            "INSERT INTO handoffs (owner, through, lease_until, closed, created_at, updated_at)
             VALUES ($1, 0, $2, $3, $4, $4) RETURNING id",
        )
        .bind(owner.to_owned())
        .bind(millis(until))
        .bind(false)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.int("id")?)
    }

    /// Closes the hand-offs `which` names and writes their unsettled deliveries as pending
    /// rows. One transaction per hand-off, which locks its row first: an ingestion routing
    /// under it holds `FOR KEY SHARE` until it commits, and a mark's write comes before or
    /// after as a whole (see `postgres/record.rs`), so every event routed under it and every
    /// mark written is seen here.
    async fn take_over(&self, which: Takeover<'_>, now: OffsetDateTime) -> Result<u64, StoreError> {
        // The table has a row per dispatcher run: a cheap look, outside any transaction.
        let open = sqlx::query::<DB>("SELECT id, owner, lease_until FROM handoffs WHERE NOT closed")
            .fetch_all(&self.pool)
            .await?;
        let named = |id: i64, owner: &str, until: i64| match which {
            Takeover::Expired(t) => until < millis(t),
            Takeover::Owner(o) => owner == o,
            Takeover::One(one) => id == one,
        };
        let mut candidates = Vec::new();
        for row in &open {
            let (id, owner, until) = (row.int("id")?, row.text("owner")?, row.int("lease_until")?);
            if named(id, &owner, until) {
                candidates.push(id);
            }
        }
        let now = millis(now);
        let mut taken = 0;
        for id in candidates {
            let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
            let Some(row) = sqlx::query::<DB>(&format!(
                "SELECT owner, through, lease_until FROM handoffs WHERE id = $1 AND NOT closed{}",
                DB::LOCK_ROWS
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            // Renewed meanwhile: not for taking.
            if !named(id, &row.text("owner")?, row.int("lease_until")?) {
                continue;
            }
            let through = row.int("through")?;
            sqlx::query::<DB>("UPDATE handoffs SET closed = $1, updated_at = $2 WHERE id = $3")
                .bind(true)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let events = sqlx::query::<DB>(
                "SELECT id, routes, received_at FROM events
                 WHERE handoff = $1 AND handoff_seq > $2 AND routes IS NOT NULL",
            )
            .bind(id)
            .bind(through)
            .fetch_all(&mut *tx)
            .await?;
            for event in &events {
                let event_id: EventId = super::rows::parse_id(event, "id")?;
                for route in routes::parse(&event.text("routes")?)? {
                    // Pending, or cancelled when its endpoint was deleted meanwhile.
                    let done = sqlx::query::<DB>(
                        "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts,
                           next_attempt_at, last_error, created_at, updated_at, finished_at)
                         SELECT $1, $2, $3, $4,
                           CASE WHEN EXISTS (SELECT 1 FROM endpoints WHERE id = $4) THEN 'pending' ELSE 'cancelled' END,
                           0, $5, CASE WHEN EXISTS (SELECT 1 FROM endpoints WHERE id = $4) THEN NULL ELSE 'the endpoint was deleted' END,
                           $6, $5, CASE WHEN EXISTS (SELECT 1 FROM endpoints WHERE id = $4) THEN NULL ELSE $5 END
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(route.id(event_id).to_string())
                    .bind(event_id.to_string())
                    .bind(route.subscription_id.to_string())
                    .bind(route.endpoint_id.to_string())
                    .bind(now)
                    .bind(event.int("received_at")?)
                    .execute(&mut *tx)
                    .await?;
                    taken += DB::rows_affected(&done);
                }
            }
            sqlx::query::<DB>(
                "UPDATE events SET routes = NULL WHERE handoff = $1 AND handoff_seq > $2 AND routes IS NOT NULL",
            )
            .bind(id)
            .bind(through)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        if taken > 0 {
            self.messages.work();
        }
        Ok(taken)
    }

    /// The earliest time a pending delivery of an endpoint not in `skip` is due, or a lease ends.
    async fn next_due(&self, skip: &[EndpointId]) -> Result<Option<OffsetDateTime>, StoreError> {
        // Endpoint by endpoint, through (endpoint_id, status, next_attempt_at): an endpoint
        // that is skipped (full) or deleted does not make the dispatcher look again at once.
        // A failing endpoint's work waits for its probe; a disabled endpoint's, for an operator.
        let rows = sqlx::query::<DB>(
            "SELECT id, CASE WHEN state = 'disabled' THEN NULL
                             WHEN m IS NULL THEN NULL
                             WHEN state = 'failing' AND p > m AND (g IS NULL OR p >= g) THEN p
                             WHEN g > m THEN g
                             ELSE m END AS t
             FROM (SELECT e.id AS id, h.state AS state,
                     CASE WHEN h.probe_until > h.probe_at THEN h.probe_until ELSE h.probe_at END AS p,
                     (SELECT MAX(w) FROM (SELECT busy_until AS w FROM endpoint_grants WHERE endpoint_id = e.id AND state <> 'granted'
                        UNION ALL SELECT callback_until FROM endpoint_grants WHERE endpoint_id = e.id AND state <> 'granted'
                        UNION ALL SELECT next_try_at FROM endpoint_grants WHERE endpoint_id = e.id AND state <> 'granted') v) AS g,
                     (SELECT MIN(t) FROM (
                        SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE endpoint_id = e.id AND status = 'pending'
                        UNION ALL
                        SELECT MIN(lease_until) AS t FROM deliveries WHERE endpoint_id = e.id AND status = 'in_flight') u) AS m
                   FROM endpoints e LEFT JOIN endpoint_health h ON h.endpoint_id = e.id) x",
        )
        .fetch_all(&self.pool)
        .await?;
        let skip: Vec<String> = skip.iter().map(|e| e.to_string()).collect();
        // A hand-off's lease ending is due work too: its unsettled deliveries are taken over.
        let mut next = sqlx::query::<DB>("SELECT MIN(lease_until) AS t FROM handoffs WHERE NOT closed")
            .fetch_one(&self.pool)
            .await?
            .opt_int("t")?;
        for row in rows {
            if row.opt_text("id")?.is_some_and(|id| skip.contains(&id)) {
                continue;
            }
            if let Some(t) = row.opt_int("t")? {
                next = Some(next.map_or(t, |n: i64| n.min(t)));
            }
        }
        Ok(next.map(from_millis))
    }

    /// Deliveries matching `q`, newest first.
    async fn deliveries(
        &self,
        scope: &Scope,
        q: &DeliveryQuery,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = q.limit.unwrap_or(100).min(1000);
        // One statement per solution of the scope (a key has few), each newest first; their
        // newest `limit` together are the answer.
        let mut found = Vec::new();
        for solution in solutions_of(scope) {
            let rows = sqlx::query::<DB>(
                "SELECT * FROM deliveries d WHERE (CAST($1 AS TEXT) IS NULL OR status = $1)
                   AND (CAST($2 AS TEXT) IS NULL OR endpoint_id = $2)
                   AND (CAST($3 AS TEXT) IS NULL OR event_id = $3)
                   AND (CAST($5 AS TEXT) IS NULL OR EXISTS
                     (SELECT 1 FROM events e WHERE e.id = d.event_id AND e.solution = $5))
                 ORDER BY id DESC LIMIT $4",
            )
            .bind(q.status.map(|s| s.as_str()))
            .bind(q.endpoint_id.map(|e| e.to_string()))
            .bind(q.event_id.map(|e| e.to_string()))
            .bind(i64::from(limit))
            .bind(solution.clone())
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                found.push(delivery_from_row(row)?);
            }
            found.extend(self.kept_deliveries(q, limit, solution).await?);
        }
        found.sort_by_key(|d: &Delivery| std::cmp::Reverse(d.id));
        found.truncate(limit as usize);
        Ok(found)
    }

    /// One delivery with its attempts.
    async fn delivery(
        &self,
        scope: &Scope,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let Some(row) = sqlx::query::<DB>(
            "SELECT d.*, e.solution AS event_solution FROM deliveries d
             LEFT JOIN events e ON e.id = d.event_id WHERE d.id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return self.kept_delivery(scope, id).await;
        };
        // A delivery whose event is gone is of no solution any more: only a scope of every
        // solution reaches it.
        let covered = match row.opt_text("event_solution")? {
            Some(solution) => scope.covers(&solution),
            None => *scope == Scope::All,
        };
        if !covered {
            return Ok(None);
        }
        let delivery = delivery_from_row(&row)?;
        let attempts =
            sqlx::query::<DB>("SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY attempt")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(attempt_from_row)
                .collect::<Result<_, _>>()?;
        Ok(Some((delivery, attempts)))
    }

    /// Makes a dead-lettered or pending delivery due now: `None` if it does not exist,
    /// `Some(false)` if it cannot be retried.
    async fn retry(
        &self,
        scope: &Scope,
        id: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        if Records::delivery(self, scope, id).await?.is_none() {
            return Ok(None);
        }
        let done = sqlx::query::<DB>(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, finished_at = NULL, updated_at = $1
             WHERE id = $2 AND status IN ('pending', 'dead_lettered') AND endpoint_id IN (SELECT id FROM endpoints)",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        let retried = DB::rows_affected(&done) > 0;
        if retried {
            // Work made due again wakes the other instances' dispatchers.
            self.messages.work();
        }
        Ok(Some(retried))
    }

    /// Makes the dead letters of `scope` matching `f` due now; returns how many.
    async fn replay(
        &self,
        scope: &Scope,
        f: &ReplayFilter,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut replayed = 0;
        for solution in solutions_of(scope) {
            let done = sqlx::query::<DB>(
                // Held deliveries are due as of their creation, so they go out in that order.
                "UPDATE deliveries SET next_attempt_at = CASE WHEN status = 'held' THEN created_at ELSE $1 END,
                   status = 'pending', finished_at = NULL, updated_at = $1
                 WHERE status = $6 AND (CAST($2 AS TEXT) IS NULL OR endpoint_id = $2)
                   AND endpoint_id IN (SELECT id FROM endpoints)
                   AND EXISTS (SELECT 1 FROM events e WHERE e.id = deliveries.event_id
                     AND (CAST($3 AS TEXT) IS NULL OR e.name = $3)
                     AND (CAST($4 AS BIGINT) IS NULL OR e.received_at >= $4)
                     AND (CAST($5 AS BIGINT) IS NULL OR e.received_at < $5)
                     AND (CAST($7 AS TEXT) IS NULL OR e.solution = $7))",
            )
            .bind(millis(now))
            .bind(f.endpoint_id.map(|e| e.to_string()))
            .bind(f.event.clone())
            .bind(f.from.map(millis))
            .bind(f.to.map(millis))
            .bind(if f.held { "held" } else { "dead_lettered" })
            .bind(solution)
            .execute(&self.pool)
            .await?;
            replayed += DB::rows_affected(&done);
        }
        if replayed > 0 {
            self.messages.work();
        }
        Ok(replayed)
    }

    /// Deliveries per status.
    async fn counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        let mut rows =
            sqlx::query::<DB>("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        // And those kept in their events' rows: as many as spaces less one in `routes`.
        rows.extend(
            sqlx::query::<DB>(
                "SELECT CASE WHEN e.handoff_seq <= h.through THEN 'succeeded' ELSE 'in_flight' END AS status,
                   SUM(LENGTH(e.routes) - LENGTH(REPLACE(e.routes, ' ', '')) - 1) AS n
                 FROM events e JOIN handoffs h ON h.id = e.handoff
                 WHERE e.handoff IS NOT NULL AND e.routes IS NOT NULL
                 GROUP BY CASE WHEN e.handoff_seq <= h.through THEN 'succeeded' ELSE 'in_flight' END",
            )
            .fetch_all(&self.pool)
            .await?,
        );
        let mut counts: Vec<(DeliveryStatus, u64)> = Vec::new();
        for row in rows {
            if let Some(s) = DeliveryStatus::parse(&row.text("status")?) {
                let n = u64::try_from(row.int("n")?).unwrap_or(0);
                match counts.iter_mut().find(|(c, _)| *c == s) {
                    Some((_, total)) => *total += n,
                    None => counts.push((s, n)),
                }
            }
        }
        Ok(counts)
    }

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query::<DB>("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Seals again, under the current key, every endpoint's settings that are plain (written
    /// before sealing) or sealed under an older key; returns how many. Fails, naming the key,
    /// if some row was sealed with a key that is not configured: nothing is lost or rewritten
    /// then. A row changed meanwhile (by another instance) is left to its writer.
    async fn reseal(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query::<DB>("SELECT id, name, settings FROM endpoints")
            .fetch_all(&self.pool)
            .await?;
        let mut stale = Vec::new();
        // Values in the clear are sealed only in a database from before sealing (no row in
        // `sealing` yet); once it is sealed, one in the clear was not written by Herald.
        let migrating = sqlx::query::<DB>("SELECT 1 AS sealed FROM sealing WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .is_none();
        for row in &rows {
            let (id, name, stored) = (row.text("id")?, row.text("name")?, row.text("settings")?);
            let opened = if migrating {
                self.keys.open_or_plain(&stored, id.as_bytes())
            } else {
                self.keys.open(&stored, id.as_bytes())
            };
            let plain = opened.map_err(|source| StoreError::Sealing {
                endpoint: name.clone(),
                source,
            })?;
            if self.keys.is_stale(&stored) {
                stale.push((id, stored, plain));
            }
        }
        let mut resealed = 0;
        for (id, stored, plain) in stale {
            let done = sqlx::query::<DB>(
                "UPDATE endpoints SET settings = $1 WHERE id = $2 AND settings = $3",
            )
            .bind(self.keys.seal(&plain, id.as_bytes()))
            .bind(id)
            .bind(stored)
            .execute(&self.pool)
            .await?;
            resealed += DB::rows_affected(&done);
        }
        if migrating {
            tracing::warn!(resealed, "sealed endpoint settings written in the clear by a Herald from before sealing; settings in the clear are refused from now on");
            sqlx::query::<DB>(
                "INSERT INTO sealing (id, sealed_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&self.pool)
            .await?;
        }
        Ok(resealed)
    }

    /// The horizons and the last pass.
    async fn retention_state(&self) -> Result<RetentionState, StoreError> {
        let row = sqlx::query::<DB>(
            "SELECT deliveries_through, dead_letters_through, events_through, last_pass FROM retention WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(RetentionState::default());
        };
        let at = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
            Ok(Some(row.int(column)?).filter(|t| *t > 0).map(from_millis))
        };
        let last_pass = row
            .opt_text("last_pass")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|source| StoreError::Corrupt {
                what: "retention last pass",
                source,
            })?;
        Ok(RetentionState {
            horizons: Horizons {
                deliveries: at("deliveries_through")?,
                dead_letters: at("dead_letters_through")?,
                events: at("events_through")?,
            },
            last_pass,
        })
    }

    /// Keeps `report` as the last pass.
    async fn save_pass(&self, report: &PassReport) -> Result<(), StoreError> {
        sqlx::query::<DB>("UPDATE retention SET last_pass = $1 WHERE id = 1")
            .bind(json(report, "retention last pass")?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
});

/// The solutions a statement is run for, one at a time: `None` (no condition) for a scope of
/// every solution; none at all for a scope of no solution.
/// Reads of the deliveries kept in their events' rows ([`routes`]), beside the rows'.
#[async_trait::async_trait]
trait KeptReads {
    /// One, by id (made of its event's id and its number), if its event is of `scope`.
    async fn kept_delivery(
        &self,
        scope: &Scope,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError>;
    /// The newest `limit` matching `q` of events of `solution` (any when `None`).
    async fn kept_deliveries(
        &self,
        q: &DeliveryQuery,
        limit: u32,
        solution: Option<String>,
    ) -> Result<Vec<Delivery>, StoreError>;
}

on_every_backend!(KeptReads {
    async fn kept_delivery(
        &self,
        scope: &Scope,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let Some((event, n)) = id.route() else {
            return Ok(None);
        };
        let Some(row) = sqlx::query::<DB>(&format!(
            "SELECT {KEPT_COLUMNS}, e.solution FROM {KEPT_JOIN} WHERE e.id = $1"
        ))
        .bind(event.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        if !scope.covers(&row.text("solution")?) {
            return Ok(None);
        }
        let Some(kept) = Kept::from_row(&row)? else {
            return Ok(None);
        };
        // A success writes no attempt of its own: the delivery says it succeeded, no more.
        let found = kept.deliveries().find(|d| d.id == id);
        debug_assert!(found.as_ref().is_none_or(|d| d.id.route() == Some((event, n))));
        Ok(found.map(|d| (d, Vec::new())))
    }

    async fn kept_deliveries(
        &self,
        q: &DeliveryQuery,
        limit: u32,
        solution: Option<String>,
    ) -> Result<Vec<Delivery>, StoreError> {
        // Kept deliveries are succeeded or in flight, nothing else.
        if q
            .status
            .is_some_and(|s| !matches!(s, DeliveryStatus::Succeeded | DeliveryStatus::InFlight))
        {
            return Ok(Vec::new());
        }
        if sqlx::query::<DB>(routes::ANY_KEPT)
            .fetch_one(&self.pool)
            .await?
            .int("n")?
            == 0
        {
            return Ok(Vec::new());
        }
        let endpoint = q.endpoint_id.map(|e| e.to_string());
        let mut found = Vec::new();
        // Newest events first, a page at a time: an event matched by its text may keep no
        // delivery that matches exactly, so pages follow until `limit` are found.
        let mut before: Option<String> = None;
        loop {
            let rows = sqlx::query::<DB>(&format!(
                "SELECT {KEPT_COLUMNS} FROM {KEPT_JOIN}
                 WHERE e.routes IS NOT NULL
                   AND (CAST($1 AS TEXT) IS NULL OR e.routes LIKE $1)
                   AND (CAST($2 AS TEXT) IS NULL OR e.id = $2)
                   AND (CAST($3 AS TEXT) IS NULL OR e.solution = $3)
                   AND (CAST($4 AS TEXT) IS NULL OR e.id < $4)
                   AND (CAST($5 AS TEXT) IS NULL
                        OR ($5 = 'succeeded' AND e.handoff_seq <= h.through)
                        OR ($5 = 'in_flight' AND e.handoff_seq > h.through))
                 ORDER BY e.id DESC LIMIT $6"
            ))
            .bind(endpoint.as_ref().map(|e| format!("%:{e} %")))
            .bind(q.event_id.map(|e| e.to_string()))
            .bind(solution.clone())
            .bind(before.clone())
            .bind(q.status.map(|s| s.as_str()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let page = rows.len();
            for row in &rows {
                if let Some(kept) = Kept::from_row(row)? {
                    found.extend(
                        kept.deliveries()
                            .filter(|d| q.endpoint_id.is_none_or(|e| d.endpoint_id == e)),
                    );
                }
                before = Some(row.text("id")?);
            }
            if page < limit as usize || found.len() >= limit as usize {
                return Ok(found);
            }
        }
    }
});

fn solutions_of(scope: &Scope) -> Vec<Option<String>> {
    match scope.solutions() {
        None => vec![None],
        Some(solutions) => solutions.iter().cloned().map(Some).collect(),
    }
}
