//! The PostgreSQL store, for several Herald instances on one database: leases taken with
//! `FOR UPDATE SKIP LOCKED` and expiring so any instance can die, `LISTEN/NOTIFY` to wake
//! idle dispatchers, idempotency enforced by a unique index the whole cluster shares.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row};
use time::OffsetDateTime;

use super::rows::{self, millis};
use super::sql::Shared;
use super::{pg_prune, pg_writer};
use super::{
    Cutoffs, EventScan, LeaseRequest, Records, Removed, Store, StoreError, StoreSettings,
    StoreStats, Watchers,
};
use crate::model::{
    AttemptResult, DeliveryId, Endpoint, EndpointId, IngestOutcome, LeasedDelivery, NewEvent,
    ReplayFilter, Scope, Subscription, SubscriptionId,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel new work is announced on.
const CHANNEL: &str = "herald_work";
/// The channel changes of endpoints and subscriptions are announced on.
const CHANGES: &str = "herald_changes";
/// What happened on one instance, for the live tails open on the others.
const TAIL: &str = "herald_tail";
/// An instance with a live tail open asks the others to tell it what happens.
const TAIL_WANTED: &str = "herald_tail_wanted";

/// The PostgreSQL store.
pub struct PgStore {
    /// The shared statements (one pool serves reads, writes and bookkeeping).
    sql: Shared<Postgres>,
    pool: PgPool,
    options: PgConnectOptions,
    owner: String,
    /// Signals the announcer task that new work was committed.
    announce: Arc<tokio::sync::Notify>,
    /// The group-commit writers' queue.
    writer: tokio::sync::mpsc::Sender<pg_writer::Job>,
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
        let committed = announce.clone();
        // A writer per four pool connections, up to four: enough to overlap gathering
        // with committing, and leaving the pool to reads and bookkeeping.
        let writers = (settings.max_connections as usize / 4).clamp(1, 4);
        let writer = pg_writer::start(
            pool.clone(),
            owner.clone(),
            writers,
            settings.idempotency_window,
            Arc::new(move || committed.notify_one()),
        );
        let sql = Shared {
            pool: pool.clone(),
            keys: settings.keys.clone(),
        };
        let resealed = sql.reseal().await?;
        if resealed > 0 {
            tracing::info!(
                resealed,
                key = settings.keys.current(),
                "sealed endpoint settings again under the current key"
            );
        }
        Ok(Self {
            writer,
            sql,
            pool,
            options,
            owner,
            announce,
        })
    }
}

#[async_trait]
impl Store for PgStore {
    fn records(&self) -> &dyn Records {
        &self.sql
    }

    fn health(&self) -> &dyn super::health::HealthRecords {
        &self.sql
    }

    fn rates(&self) -> &dyn super::rates::RateRecords {
        &self.sql
    }

    fn grants(&self) -> &dyn super::grants::GrantRecords {
        &self.sql
    }

    fn console(&self) -> &dyn super::console::ConsoleRecords {
        &self.sql
    }

    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(pg_writer::Job { events, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn record(&self, owner: &str, results: &[AttemptResult]) -> Result<(), StoreError> {
        super::record::record_pg(&self.pool, owner, results).await
    }

    // Changes to endpoints and subscriptions are announced to the other instances.
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.sql.put_endpoint(endpoint).await?;
        self.announce_change().await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        let deleted = self.sql.delete_endpoint(id).await?;
        self.announce_change().await?;
        Ok(deleted)
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.sql.put_subscription(subscription).await?;
        self.announce_change().await
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError> {
        let deleted = self.sql.delete_subscription(id).await?;
        self.announce_change().await?;
        Ok(deleted)
    }

    async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.sql.disable_subscription(id, reason).await?;
        self.announce_change().await
    }

    // Work made due again wakes the other instances' dispatchers.
    async fn retry(
        &self,
        scope: &Scope,
        id: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        let retried = self.sql.retry(scope, id, now).await?;
        if retried == Some(true) {
            self.announce.notify_one();
        }
        Ok(retried)
    }

    async fn replay(
        &self,
        scope: &Scope,
        filter: &ReplayFilter,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let replayed = self.sql.replay(scope, filter, now).await?;
        if replayed > 0 {
            self.announce.notify_one();
        }
        Ok(replayed)
    }

    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Vec<LeasedDelivery>, StoreError> {
        let skip: Vec<String> = req.skip_endpoints.iter().map(|e| e.to_string()).collect();
        let rows = sqlx::query(
            // The earliest due deliveries of each endpoint not skipped, at most $6 each
            // (through the index (endpoint_id, status, next_attempt_at): a backlog of one
            // endpoint costs the others nothing), then locked. The locking SELECT repeats the
            // due condition: PostgreSQL re-checks it on rows another instance leased
            // meanwhile, so a delivery is never leased twice.
            "WITH candidates AS (
               SELECT c.id, c.due FROM endpoints e CROSS JOIN LATERAL (
                 (SELECT id, next_attempt_at AS due FROM deliveries
                  WHERE endpoint_id = e.id AND status = 'pending' AND next_attempt_at <= $3
                  ORDER BY next_attempt_at LIMIT $6)
                 UNION ALL
                 (SELECT id, lease_until AS due FROM deliveries
                  WHERE endpoint_id = e.id AND status = 'in_flight' AND lease_until <= $3
                  LIMIT $6)) c
               WHERE NOT (e.id = ANY($4)) AND NOT EXISTS (
                 -- A disabled endpoint, or a failing one whose probe is out or not yet due.
                 SELECT 1 FROM endpoint_health h WHERE h.endpoint_id = e.id
                   AND (h.state = 'disabled' OR (h.state = 'failing' AND (h.probe_at > $3 OR h.probe_until > $3))))
               -- A webhook whose receiver has not granted delivery, while it is being asked.
               AND NOT EXISTS (SELECT 1 FROM endpoint_grants g WHERE g.endpoint_id = e.id AND g.state <> 'granted'
                   AND (g.busy_until > $3 OR g.callback_until > $3 OR g.next_try_at > $3))
               ORDER BY c.due LIMIT $7),
             due AS (
               SELECT id FROM deliveries
               WHERE id IN (SELECT id FROM candidates)
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

    async fn ready(&self) -> Result<(), StoreError> {
        // A write, so a database that answers but refuses writes (a full disk, a read-only
        // standby after a failover) is not ready.
        sqlx::query("INSERT INTO store_probe (id, written_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at")
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_deliveries(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed, StoreError> {
        pg_prune::deliveries(&self.pool, cutoffs, limit).await
    }

    async fn prune_events(
        &self,
        cutoffs: &Cutoffs,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventScan, StoreError> {
        pg_prune::events(&self.pool, cutoffs, after, limit).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        pg_prune::stats(&self.pool).await
    }

    fn lease_owner(&self) -> String {
        self.owner.clone()
    }

    fn watch(&self, watchers: Watchers) {
        let options = self.options.clone();
        tokio::spawn(async move {
            // Reconnects after the database goes away; polling covers the gaps.
            loop {
                if let Err(e) = listen(&options, &watchers).await {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting (polling meanwhile)");
                }
                // Anything may have happened while nobody listened.
                (watchers.on_work)();
                (watchers.on_change)();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn shared(&self) -> bool {
        true
    }

    async fn tell_tails(&self, text: &str) -> Result<(), StoreError> {
        self.notify(TAIL, text).await
    }

    async fn want_tail(&self, asker: &str) -> Result<(), StoreError> {
        self.notify(TAIL_WANTED, asker).await
    }
}

impl PgStore {
    /// Tells every instance that endpoints or subscriptions changed.
    async fn announce_change(&self) -> Result<(), StoreError> {
        self.notify(CHANGES, "").await
    }

    /// `NOTIFY channel, payload`: every instance listening hears it.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
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

async fn listen(options: &PgConnectOptions, watchers: &Watchers) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener
        .listen_all([CHANNEL, CHANGES, TAIL, TAIL_WANTED])
        .await?;
    loop {
        let notification = listener.recv().await?;
        match notification.channel() {
            CHANGES => (watchers.on_change)(),
            TAIL => (watchers.on_tail)(notification.payload()),
            TAIL_WANTED => (watchers.on_tail_wanted)(notification.payload()),
            _ => (watchers.on_work)(),
        }
    }
}
