//! The embedded SQLite store: WAL mode, `synchronous=FULL` for anything a caller is told is
//! stored, and one group-commit writer so concurrent requests share fsyncs.

mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::rows::{
    self, attempt_from_row, delivery_from_row, endpoint_from_row, event_from_row, millis,
    subscription_from_row,
};
use super::{conflict_on_unique, Callback, LeaseRequest, Store, StoreError};
use crate::model::{
    Attempt, AttemptResult, Delivery, DeliveryId, DeliveryQuery, DeliveryStatus, Endpoint,
    EndpointId, Event, EventId, IngestOutcome, LeasedDelivery, NewEvent, NextState, ReplayFilter,
    Subscription, SubscriptionId,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub struct SqliteStore {
    /// Reads and rare durable writes (admin).
    pool: SqlitePool,
    /// Dispatcher bookkeeping: `synchronous=NORMAL`, since losing one of these writes in a
    /// power cut only means a delivery is sent again, which at-least-once allows.
    bookkeeping: SqlitePool,
    /// The group-commit writer for ingestion.
    writer: mpsc::Sender<writer::Job>,
    /// Whether the writer's last commit failed.
    failing: writer::Failing,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut conn).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        let bookkeeping = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        let (tx, rx) = mpsc::channel(4096);
        let failing = writer::Failing::default();
        tokio::spawn(writer::run(conn, rx, failing.clone()));
        Ok(Self {
            pool,
            bookkeeping,
            writer: tx,
            failing,
        })
    }
}

impl SqliteStore {
    /// Hands `events` (and a probe row, if `probe`) to the group-commit writer.
    async fn write(
        &self,
        events: Vec<NewEvent>,
        probe: bool,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Job {
                events,
                probe,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs `body` inside `BEGIN IMMEDIATE … COMMIT` on `conn`, rolling back on error.
/// `BEGIN IMMEDIATE` takes the write lock up front, so the busy timeout applies instead of
/// a deferred transaction failing at its first write.
macro_rules! immediate {
    ($conn:ident, $body:expr) => {{
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *$conn).await?;
        let result: Result<_, StoreError> = async { $body }.await;
        match result {
            Ok(v) => {
                sqlx::query("COMMIT").execute(&mut *$conn).await?;
                Ok(v)
            }
            Err(e) => {
                // The transaction is abandoned; the original error is what matters.
                let _ = sqlx::query("ROLLBACK").execute(&mut *$conn).await;
                Err(e)
            }
        }
    }};
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError> {
        self.write(events, false).await
    }

    async fn event(&self, id: EventId) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM events WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let event = event_from_row(&row)?;
        let deliveries = sqlx::query("SELECT * FROM deliveries WHERE event_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((event, deliveries)))
    }

    async fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        let settings =
            serde_json::to_string(&e.settings).map_err(|source| StoreError::Corrupt {
                what: "endpoint settings",
                source,
            })?;
        sqlx::query(
            "INSERT INTO endpoints (id, name, kind, settings, max_concurrency, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, settings = excluded.settings,
               max_concurrency = excluded.max_concurrency, updated_at = excluded.updated_at",
        )
        .bind(e.id.to_string())
        .bind(&e.name)
        .bind(e.settings.kind().as_str())
        .bind(settings)
        .bind(e.max_concurrency)
        .bind(millis(e.created_at))
        .bind(millis(e.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("endpoint name \"{}\"", e.name)))?;
        Ok(())
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn endpoint_by_name(&self, name: &str) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query("SELECT * FROM endpoints ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = millis(OffsetDateTime::now_utc());
        immediate!(conn, {
            let id = id.to_string();
            cancel_where(
                &mut conn,
                "endpoint_id = ?",
                &id,
                now,
                "the endpoint was deleted",
            )
            .await?;
            sqlx::query("DELETE FROM subscriptions WHERE endpoint_id = ?")
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            let done = sqlx::query("DELETE FROM endpoints WHERE id = ?")
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn put_subscription(&self, s: &Subscription) -> Result<(), StoreError> {
        let filter = serde_json::to_string(&s.filter).map_err(|source| StoreError::Corrupt {
            what: "subscription filter",
            source,
        })?;
        let amqp = serde_json::to_string(&s.amqp).map_err(|source| StoreError::Corrupt {
            what: "subscription AMQP options",
            source,
        })?;
        sqlx::query(
            "INSERT INTO subscriptions (id, name, solution, event_name, category, endpoint_id, format, filter, enabled, rank,
                disabled_reason, created_at, updated_at, mode, stage, amqp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, solution = excluded.solution, event_name = excluded.event_name,
               category = excluded.category, endpoint_id = excluded.endpoint_id, format = excluded.format, filter = excluded.filter,
               enabled = excluded.enabled, rank = excluded.rank, disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at,
               mode = excluded.mode, stage = excluded.stage, amqp = excluded.amqp",
        )
        .bind(s.id.to_string())
        .bind(&s.name)
        .bind(&s.solution)
        .bind(&s.event)
        .bind(&s.category)
        .bind(s.endpoint_id.to_string())
        .bind(s.format.as_str())
        .bind(filter)
        .bind(s.enabled)
        .bind(s.rank)
        .bind(&s.disabled_reason)
        .bind(millis(s.created_at))
        .bind(millis(s.updated_at))
        .bind(s.mode.as_str())
        .bind(s.stage.map(|st| st.as_str()))
        .bind(amqp)
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("subscription name \"{}\"", s.name)))?;
        Ok(())
    }

    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = millis(OffsetDateTime::now_utc());
        immediate!(conn, {
            let id = id.to_string();
            cancel_where(
                &mut conn,
                "subscription_id = ?",
                &id,
                now,
                "the subscription was deleted",
            )
            .await?;
            let done = sqlx::query("DELETE FROM subscriptions WHERE id = ?")
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let now = millis(OffsetDateTime::now_utc());
        immediate!(conn, {
            let id = id.to_string();
            sqlx::query("UPDATE subscriptions SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?")
                .bind(reason)
                .bind(now)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            cancel_where(
                &mut conn,
                "subscription_id = ? AND status = 'pending'",
                &id,
                now,
                reason,
            )
            .await?;
            Ok(())
        })
    }

    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Vec<LeasedDelivery>, StoreError> {
        let skip = serde_json::to_string(
            &req.skip_endpoints
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(|source| StoreError::Corrupt {
            what: "lease request",
            source,
        })?;
        let rows = sqlx::query(
            "UPDATE deliveries SET status = 'in_flight', lease_owner = ?1, lease_until = ?2, updated_at = ?3
             WHERE id IN (
               SELECT id FROM (
                 SELECT id, next_attempt_at,
                   ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS rank_in_endpoint
                 FROM (
                   SELECT * FROM (SELECT id, endpoint_id, next_attempt_at FROM deliveries
                     WHERE status = 'pending' AND next_attempt_at <= ?3
                       AND endpoint_id NOT IN (SELECT value FROM json_each(?4))
                     ORDER BY next_attempt_at LIMIT ?7)
                   UNION ALL
                   SELECT * FROM (SELECT id, endpoint_id, next_attempt_at FROM deliveries
                     WHERE status = 'in_flight' AND lease_until <= ?3
                       AND endpoint_id NOT IN (SELECT value FROM json_each(?4))
                     ORDER BY lease_until LIMIT ?7)))
               WHERE rank_in_endpoint <= ?6
               ORDER BY next_attempt_at LIMIT ?5)
             RETURNING id, attempts, created_at, subscription_id, endpoint_id, event_id",
        )
        .bind(req.owner)
        .bind(millis(req.until))
        .bind(millis(req.now))
        .bind(skip)
        .bind(req.limit)
        .bind(req.per_endpoint)
        // Only the earliest due candidates are ranked, so a large backlog is not scanned whole.
        .bind(i64::from(req.limit) * 4)
        .fetch_all(&self.bookkeeping)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // The leased deliveries' events, in one query.
        let event_ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("event_id"))
            .collect::<Result<_, _>>()?;
        let events =
            sqlx::query("SELECT * FROM events WHERE id IN (SELECT value FROM json_each(?))")
                .bind(
                    serde_json::to_string(&event_ids).map_err(|source| StoreError::Corrupt {
                        what: "lease request",
                        source,
                    })?,
                )
                .fetch_all(&self.pool)
                .await?;
        rows::leased_deliveries(&rows, &events)
    }

    async fn record(&self, owner: &str, results: &[AttemptResult]) -> Result<(), StoreError> {
        let mut conn = self.bookkeeping.acquire().await?;
        let now = millis(OffsetDateTime::now_utc());
        immediate!(conn, {
            for r in results {
                let id = r.delivery_id.to_string();
                sqlx::query(
                    "INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(r.attempt.attempt)
                .bind(millis(r.attempt.started_at))
                .bind(r.attempt.duration_ms as i64)
                .bind(r.attempt.outcome.as_str())
                .bind(r.attempt.http_status)
                .bind(&r.attempt.error)
                .execute(&mut *conn)
                .await?;
                let (status, next_at, error, finished) = match &r.next {
                    NextState::Succeeded => ("succeeded", now, None, Some(now)),
                    NextState::RetryAt(at) => {
                        ("pending", millis(*at), r.attempt.error.clone(), None)
                    }
                    NextState::DeadLettered(why) => {
                        ("dead_lettered", now, Some(why.clone()), Some(now))
                    }
                    NextState::Cancelled(why) => ("cancelled", now, Some(why.clone()), Some(now)),
                };
                // Only the lease holder's result counts: a delivery cancelled meanwhile stays cancelled.
                sqlx::query(
                    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, finished_at = ?,
                       lease_owner = NULL, lease_until = NULL, updated_at = ?
                     WHERE id = ? AND status = 'in_flight' AND lease_owner = ?",
                )
                .bind(status)
                .bind(r.attempt.attempt)
                .bind(next_at)
                .bind(error)
                .bind(finished)
                .bind(now)
                .bind(&id)
                .bind(owner)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL WHERE status = 'in_flight' AND lease_owner = ?",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(t) AS t FROM (SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status = 'pending'
               UNION ALL SELECT MIN(lease_until) FROM deliveries WHERE status = 'in_flight')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?.map(rows::from_millis))
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM deliveries WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR endpoint_id = ?2)
               AND (?3 IS NULL OR event_id = ?3) ORDER BY id DESC LIMIT ?4",
        )
        .bind(q.status.map(|s| s.as_str()))
        .bind(q.endpoint_id.map(|e| e.to_string()))
        .bind(q.event_id.map(|e| e.to_string()))
        .bind(q.limit.unwrap_or(100).min(1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delivery(
        &self,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM deliveries WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let attempts = sqlx::query("SELECT * FROM attempts WHERE delivery_id = ? ORDER BY attempt")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((delivery_from_row(&row)?, attempts)))
    }

    async fn retry(&self, id: DeliveryId, now: OffsetDateTime) -> Result<Option<bool>, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, finished_at = NULL, updated_at = ?
             WHERE id = ? AND status IN ('pending', 'dead_lettered')",
        )
        .bind(millis(now))
        .bind(millis(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(Some(true));
        }
        let exists = sqlx::query("SELECT 1 FROM deliveries WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(exists.map(|_| false))
    }

    async fn replay(&self, f: &ReplayFilter, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?1, finished_at = NULL, updated_at = ?1
             WHERE status = 'dead_lettered' AND (?2 IS NULL OR endpoint_id = ?2)
               AND event_id IN (SELECT id FROM events WHERE (?3 IS NULL OR name = ?3)
                 AND (?4 IS NULL OR received_at >= ?4) AND (?5 IS NULL OR received_at < ?5))",
        )
        .bind(millis(now))
        .bind(f.endpoint_id.map(|e| e.to_string()))
        .bind(&f.event)
        .bind(f.from.map(millis))
        .bind(f.to.map(millis))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = Vec::new();
        for row in rows {
            let status: String = row.try_get("status")?;
            if let Some(s) = DeliveryStatus::parse(&status) {
                counts.push((s, row.try_get::<i64, _>("n")? as u64));
            }
        }
        Ok(counts)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await?;
        // After a failed group commit (a full disk, say), ready again only once a durable
        // write succeeds; otherwise every readiness check would cost an fsync.
        if self.failing.probe_bytes().is_some() {
            self.write(Vec::new(), true).await?;
        }
        Ok(())
    }

    fn lease_owner(&self) -> String {
        // One process owns an SQLite file, so the leases of a previous run are its own.
        "local".to_owned()
    }

    fn watch(&self, _on_work: Callback, _on_change: Callback) {}
}

/// Cancels the unfinished deliveries matching `condition` (one `?` bound to `value`).
async fn cancel_where(
    conn: &mut SqliteConnection,
    condition: &str,
    value: &str,
    now: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE deliveries SET status = 'cancelled', last_error = ?, finished_at = ?, updated_at = ?
         WHERE status IN ('pending', 'in_flight') AND {condition}"
    );
    sqlx::query(&sql)
        .bind(reason)
        .bind(now)
        .bind(now)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}
