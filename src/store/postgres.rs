//! The PostgreSQL store, for several Herald instances on one database: leases taken with
//! `FOR UPDATE SKIP LOCKED` and expiring so any instance can die, `LISTEN/NOTIFY` to wake
//! idle dispatchers, idempotency enforced by a unique index the whole cluster shares.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::rows::{
    self, attempt_from_row, delivery_from_row, endpoint_from_row, event_from_row, millis,
    subscription_from_row,
};
use super::{conflict_on_unique, Callback, LeaseRequest, Store, StoreError, StoreSettings};
use crate::model::{
    Attempt, AttemptResult, Delivery, DeliveryId, DeliveryQuery, DeliveryStatus, Endpoint,
    EndpointId, Event, EventId, IngestOutcome, LeasedDelivery, NewEvent, NextState, ReplayFilter,
    Subscription, SubscriptionId,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel new work is announced on.
const CHANNEL: &str = "herald_work";
/// The channel changes of endpoints and subscriptions are announced on.
const CHANGES: &str = "herald_changes";

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    owner: String,
    /// Signals the announcer task that new work was committed.
    announce: Arc<tokio::sync::Notify>,
}

impl PgStore {
    /// Connects, creates the schema if needed and applies migrations. Refuses a database whose
    /// schema has migrations this build does not know (a newer Herald migrated it).
    /// `url` is the connection URL; the pool's limits and the schema come from `settings`.
    pub async fn open(url: &str, settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = &settings.schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "")
            ))
            .execute(&admin)
            .await?;
            admin.close().await;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let announce = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(announce_work(pool.clone(), announce.clone()));
        Ok(Self {
            pool,
            options,
            owner,
            announce,
        })
    }
}

fn json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt { what, source })
}

#[async_trait]
impl Store for PgStore {
    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError> {
        // PostgreSQL shares WAL flushes between concurrent commits itself (group commit). One
        // event is one statement in its own implicit transaction (one round trip); a batch
        // is one transaction.
        let mut outcomes = Vec::with_capacity(events.len());
        if let [one] = events.as_slice() {
            let mut conn = self.pool.acquire().await?;
            outcomes.push(insert_event(&mut conn, one).await?);
        } else {
            let mut tx = self.pool.begin().await?;
            for new in &events {
                outcomes.push(insert_event(&mut tx, new).await?);
            }
            tx.commit().await?;
        }
        if events
            .iter()
            .zip(&outcomes)
            .any(|(e, o)| !e.deliveries.is_empty() && matches!(o, IngestOutcome::Created { .. }))
        {
            self.announce.notify_one();
        }
        Ok(outcomes)
    }

    async fn event(&self, id: EventId) -> Result<Option<(Event, Vec<Delivery>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM events WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let deliveries = sqlx::query("SELECT * FROM deliveries WHERE event_id = $1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((event_from_row(&row)?, deliveries)))
    }

    async fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO endpoints (id, name, kind, settings, max_concurrency, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, settings = excluded.settings,
               max_concurrency = excluded.max_concurrency, updated_at = excluded.updated_at",
        )
        .bind(e.id.to_string())
        .bind(&e.name)
        .bind(e.settings.kind().as_str())
        .bind(json(&e.settings, "endpoint settings")?)
        .bind(e.max_concurrency.map(i64::from))
        .bind(millis(e.created_at))
        .bind(millis(e.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("endpoint name \"{}\"", e.name)))?;
        self.announce_change().await
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn endpoint_by_name(&self, name: &str) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE name = $1")
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
        let mut tx = self.pool.begin().await?;
        let now = millis(OffsetDateTime::now_utc());
        cancel_where(
            &mut tx,
            "endpoint_id = $4",
            &id.to_string(),
            now,
            "the endpoint was deleted",
        )
        .await?;
        sqlx::query("DELETE FROM subscriptions WHERE endpoint_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM endpoints WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.announce_change().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_subscription(&self, s: &Subscription) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subscriptions (id, name, solution, event_name, category, endpoint_id, format, filter, enabled, rank,
                disabled_reason, created_at, updated_at, mode, stage, amqp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
        .bind(json(&s.filter, "subscription filter")?)
        .bind(s.enabled)
        .bind(i64::from(s.rank))
        .bind(&s.disabled_reason)
        .bind(millis(s.created_at))
        .bind(millis(s.updated_at))
        .bind(s.mode.as_str())
        .bind(s.stage.map(|st| st.as_str()))
        .bind(json(&s.amqp, "subscription AMQP options")?)
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_on_unique(err, format!("subscription name \"{}\"", s.name)))?;
        self.announce_change().await
    }

    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
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
        let mut tx = self.pool.begin().await?;
        let now = millis(OffsetDateTime::now_utc());
        cancel_where(
            &mut tx,
            "subscription_id = $4",
            &id.to_string(),
            now,
            "the subscription was deleted",
        )
        .await?;
        let done = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.announce_change().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = millis(OffsetDateTime::now_utc());
        sqlx::query("UPDATE subscriptions SET enabled = FALSE, disabled_reason = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        cancel_where(
            &mut tx,
            "subscription_id = $4 AND status = 'pending'",
            &id.to_string(),
            now,
            reason,
        )
        .await?;
        tx.commit().await?;
        self.announce_change().await
    }

    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Vec<LeasedDelivery>, StoreError> {
        let skip: Vec<String> = req.skip_endpoints.iter().map(|e| e.to_string()).collect();
        let rows = sqlx::query(
            // The earliest due candidates (bounded, so a large backlog does not make every
            // lease scan it all), at most $6 per endpoint, then locked. The locking SELECT
            // repeats the due condition: PostgreSQL re-checks it on rows another instance
            // leased meanwhile, so a delivery is never leased twice.
            "WITH candidates AS (
               (SELECT id, endpoint_id, next_attempt_at FROM deliveries
                WHERE status = 'pending' AND next_attempt_at <= $3 AND NOT (endpoint_id = ANY($4))
                ORDER BY next_attempt_at LIMIT $7)
               UNION ALL
               (SELECT id, endpoint_id, next_attempt_at FROM deliveries
                WHERE status = 'in_flight' AND lease_until <= $3 AND NOT (endpoint_id = ANY($4))
                ORDER BY lease_until LIMIT $7)),
             due AS (
               SELECT id FROM deliveries
               WHERE id IN (
                 SELECT id FROM (
                   SELECT id, ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS rank_in_endpoint
                   FROM candidates) ranked
                 WHERE rank_in_endpoint <= $6)
                 AND ((status = 'pending' AND next_attempt_at <= $3) OR (status = 'in_flight' AND lease_until <= $3))
               ORDER BY next_attempt_at LIMIT $5
               FOR UPDATE SKIP LOCKED)
             UPDATE deliveries d SET status = 'in_flight', lease_owner = $1, lease_until = $2, updated_at = $3
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.attempts, d.created_at, d.subscription_id, d.endpoint_id, d.event_id",
        )
        .bind(req.owner)
        .bind(millis(req.until))
        .bind(millis(req.now))
        .bind(&skip)
        .bind(i64::from(req.limit))
        .bind(i64::from(req.per_endpoint))
        .bind(i64::from(req.limit) * 4)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let event_ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("event_id"))
            .collect::<Result<_, _>>()?;
        let events = sqlx::query("SELECT * FROM events WHERE id = ANY($1)")
            .bind(&event_ids)
            .fetch_all(&self.pool)
            .await?;
        rows::leased_deliveries(&rows, &events)
    }

    async fn record(&self, owner: &str, results: &[AttemptResult]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = millis(OffsetDateTime::now_utc());
        for r in results {
            let id = r.delivery_id.to_string();
            sqlx::query(
                "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, outcome, http_status, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, duration_ms = excluded.duration_ms,
                   outcome = excluded.outcome, http_status = excluded.http_status, error = excluded.error",
            )
            .bind(&id)
            .bind(i64::from(r.attempt.attempt))
            .bind(millis(r.attempt.started_at))
            .bind(r.attempt.duration_ms as i64)
            .bind(r.attempt.outcome.as_str())
            .bind(r.attempt.http_status.map(i64::from))
            .bind(&r.attempt.error)
            .execute(&mut *tx)
            .await?;
            let (status, next_at, error, finished) = match &r.next {
                NextState::Succeeded => ("succeeded", now, None, Some(now)),
                NextState::RetryAt(at) => ("pending", millis(*at), r.attempt.error.clone(), None),
                NextState::DeadLettered(why) => {
                    ("dead_lettered", now, Some(why.clone()), Some(now))
                }
                NextState::Cancelled(why) => ("cancelled", now, Some(why.clone()), Some(now)),
            };
            sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4, finished_at = $5,
                   lease_owner = NULL, lease_until = NULL, updated_at = $6
                 WHERE id = $7 AND status = 'in_flight' AND lease_owner = $8",
            )
            .bind(status)
            .bind(i64::from(r.attempt.attempt))
            .bind(next_at)
            .bind(error)
            .bind(finished)
            .bind(now)
            .bind(&id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL WHERE status = 'in_flight' AND lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT LEAST((SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'),
                          (SELECT MIN(lease_until) FROM deliveries WHERE status = 'in_flight')) AS t",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?.map(rows::from_millis))
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM deliveries WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR endpoint_id = $2)
               AND ($3::text IS NULL OR event_id = $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(q.status.map(|s| s.as_str()))
        .bind(q.endpoint_id.map(|e| e.to_string()))
        .bind(q.event_id.map(|e| e.to_string()))
        .bind(i64::from(q.limit.unwrap_or(100).min(1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delivery(
        &self,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let attempts =
            sqlx::query("SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY attempt")
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
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, finished_at = NULL, updated_at = $1
             WHERE id = $2 AND status IN ('pending', 'dead_lettered')",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            self.notify().await?;
            return Ok(Some(true));
        }
        let exists = sqlx::query("SELECT 1 FROM deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(exists.map(|_| false))
    }

    async fn replay(&self, f: &ReplayFilter, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, finished_at = NULL, updated_at = $1
             WHERE status = 'dead_lettered' AND ($2::text IS NULL OR endpoint_id = $2)
               AND event_id IN (SELECT id FROM events WHERE ($3::text IS NULL OR name = $3)
                 AND ($4::bigint IS NULL OR received_at >= $4) AND ($5::bigint IS NULL OR received_at < $5))",
        )
        .bind(millis(now))
        .bind(f.endpoint_id.map(|e| e.to_string()))
        .bind(&f.event)
        .bind(f.from.map(millis))
        .bind(f.to.map(millis))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            self.notify().await?;
        }
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
        // A write, so a database that answers but refuses writes (a full disk, a read-only
        // standby after a failover) is not ready.
        sqlx::query("INSERT INTO store_probe (id, written_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at")
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn lease_owner(&self) -> String {
        self.owner.clone()
    }

    fn watch(&self, on_work: Callback, on_change: Callback) {
        let options = self.options.clone();
        tokio::spawn(async move {
            // Reconnects after the database goes away; polling covers the gaps.
            loop {
                if let Err(e) = listen(&options, &on_work, &on_change).await {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting (polling meanwhile)");
                }
                // Anything may have happened while nobody listened.
                on_work();
                on_change();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

impl PgStore {
    async fn notify(&self) -> Result<(), StoreError> {
        self.announce.notify_one();
        Ok(())
    }

    /// Tells every instance that endpoints or subscriptions changed.
    async fn announce_change(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGES)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Inserts one event with its deliveries in one statement, or reports the earlier event of
/// its idempotency key.
async fn insert_event(
    conn: &mut sqlx::PgConnection,
    new: &NewEvent,
) -> Result<IngestOutcome, StoreError> {
    let e = &new.event;
    let ids: Vec<String> = new.deliveries.iter().map(|d| d.id.to_string()).collect();
    let subs: Vec<String> = new
        .deliveries
        .iter()
        .map(|d| d.subscription_id.to_string())
        .collect();
    let eps: Vec<String> = new
        .deliveries
        .iter()
        .map(|d| d.endpoint_id.to_string())
        .collect();
    let row = sqlx::query(
        "WITH ev AS (
           INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, idempotency_key, fingerprint, delivery_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (solution, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
           RETURNING id),
         d AS (
           INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at)
           SELECT u.id, ev.id, u.sub, u.ep, 'pending', 0, $7, $7, $7
           FROM ev, unnest($11::text[], $12::text[], $13::text[]) AS u(id, sub, ep))
         SELECT COUNT(*) AS inserted FROM ev",
    )
    .bind(e.id.to_string())
    .bind(&e.name)
    .bind(&e.solution)
    .bind(json(&e.params, "event params")?)
    .bind(&e.correlation_id)
    .bind(&e.caller)
    .bind(millis(e.received_at))
    .bind(new.idempotency.as_ref().map(|(k, _)| k.as_str()))
    .bind(new.idempotency.as_ref().map(|(_, f)| f.to_vec()))
    .bind(new.deliveries.len() as i64)
    .bind(&ids)
    .bind(&subs)
    .bind(&eps)
    .fetch_one(&mut *conn)
    .await?;
    if row.try_get::<i64, _>("inserted")? == 1 {
        return Ok(IngestOutcome::Created {
            id: e.id,
            deliveries: new.deliveries.len() as u32,
        });
    }
    // The key was used before (on any instance): answer as the first time did.
    let (key, fingerprint) = new
        .idempotency
        .as_ref()
        .expect("only keyed inserts can conflict");
    let row = sqlx::query("SELECT id, fingerprint, delivery_count FROM events WHERE solution = $1 AND idempotency_key = $2")
        .bind(&e.solution)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    let id = rows::parse_id(&row, "id")?;
    let same: Vec<u8> = row.try_get("fingerprint")?;
    Ok(if same == fingerprint.as_slice() {
        IngestOutcome::Replayed {
            id,
            deliveries: row.try_get::<i64, _>("delivery_count")? as u32,
        }
    } else {
        IngestOutcome::KeyReused { id }
    })
}

/// Announces new work to the other instances, one `NOTIFY` for however many commits happened
/// while the previous one was sent. A `NOTIFY` inside each ingest transaction would take
/// PostgreSQL's global notification lock at every commit and serialize them.
async fn announce_work(pool: PgPool, signal: Arc<tokio::sync::Notify>) {
    loop {
        signal.notified().await;
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            // The other instances' polling picks the work up.
            tracing::debug!(error = %e, "could not announce new work");
        }
    }
}

async fn listen(
    options: &PgConnectOptions,
    on_work: &Callback,
    on_change: &Callback,
) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen_all([CHANNEL, CHANGES]).await?;
    loop {
        let notification = listener.recv().await?;
        if notification.channel() == CHANGES {
            on_change();
        } else {
            on_work();
        }
    }
}

/// Cancels the unfinished deliveries matching `condition` (which uses `$4` for `value`).
async fn cancel_where(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    condition: &str,
    value: &str,
    now: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE deliveries SET status = 'cancelled', last_error = $1, finished_at = $2, updated_at = $3
         WHERE status IN ('pending', 'in_flight') AND {condition}"
    );
    sqlx::query(&sql)
        .bind(reason)
        .bind(now)
        .bind(now)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
