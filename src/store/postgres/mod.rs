//! The PostgreSQL store, for several Herald instances on one database: leases taken with
//! `FOR UPDATE SKIP LOCKED` and expiring so any instance can die, `LISTEN/NOTIFY` to wake
//! idle dispatchers ([`messages`]), idempotency enforced by a unique index the whole cluster
//! shares, group commit ([`writer`]), batched attempt results ([`record`]) and pruning
//! ([`prune`]).

mod messages;
mod prune;
mod record;
mod writer;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row};
use time::OffsetDateTime;

use super::messages::Messages;
use super::rows::{self, millis};
use super::sql::Shared;
use super::Records;
use super::{
    Cutoffs, EventScan, HandoffMark, LeaseRequest, Removed, Statements, Store, StoreError,
    StoreSettings, StoreStats,
};
use crate::model::{AttemptResult, IngestOutcome, LeasedDelivery, NewEvent};
use messages::PgMessages;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store.
pub struct PgStore {
    /// The shared statements (one pool serves reads, writes and bookkeeping).
    sql: Shared<Postgres>,
    pool: PgPool,
    owner: String,
    /// `LISTEN/NOTIFY` between the instances.
    messages: Arc<PgMessages>,
    /// The group-commit writers' queue.
    writer: tokio::sync::mpsc::Sender<writer::Job>,
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
        let messages = Arc::new(PgMessages::start(pool.clone(), options));
        let committed = messages.clone();
        // A writer per four pool connections, up to four: enough to overlap gathering
        // with committing, and leaving the pool to reads and bookkeeping.
        let writers = (settings.max_connections as usize / 4).clamp(1, 4);
        let writer = writer::start(
            pool.clone(),
            owner.clone(),
            writers,
            settings.idempotency_window,
            Arc::new(move || committed.work()),
        );
        let sql = Shared {
            pool: pool.clone(),
            keys: settings.keys.clone(),
            messages: messages.clone(),
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
            owner,
            messages,
        })
    }
}

#[async_trait]
impl Store for PgStore {
    fn statements(&self) -> &dyn Statements {
        &self.sql
    }

    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(writer::Job { events, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn record(
        &self,
        owner: &str,
        mark: Option<&HandoffMark>,
        results: &[AttemptResult],
    ) -> Result<bool, StoreError> {
        if results.is_empty() && mark.is_none() {
            return Ok(false);
        }
        record::record(&self.pool, owner, mark, results).await
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
        prune::deliveries(&self.pool, cutoffs, limit).await
    }

    async fn prune_events(
        &self,
        cutoffs: &Cutoffs,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventScan, StoreError> {
        prune::events(&self.pool, cutoffs, after, limit).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        prune::stats(&self.pool).await
    }

    fn lease_owner(&self) -> String {
        self.owner.clone()
    }

    fn messages(&self) -> &dyn Messages {
        self.messages.as_ref()
    }

    async fn reclaim(&self, _max_pages: u32) -> Result<u64, StoreError> {
        // PostgreSQL keeps freed space for reuse; autovacuum looks after it.
        Ok(0)
    }
}
