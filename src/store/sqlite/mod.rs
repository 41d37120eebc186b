//! The embedded SQLite store: WAL mode, `synchronous=FULL` for anything a caller is told is
//! stored, and one group-commit writer so concurrent requests share fsyncs.

mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::rows::{self, millis};
use super::sql::Shared;
use super::{Callback, LeaseRequest, Records, Store, StoreError};
use crate::model::{IngestOutcome, LeasedDelivery, NewEvent};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub struct SqliteStore {
    /// The shared statements, over a pool for reads and rare durable writes (admin) and one
    /// for dispatcher bookkeeping at `synchronous=NORMAL`, since losing one of those writes in
    /// a power cut only means a delivery is sent again, which at-least-once allows.
    sql: Shared<Sqlite>,
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
            sql: Shared { pool, bookkeeping },
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

#[async_trait]
impl Store for SqliteStore {
    fn records(&self) -> &dyn Records {
        &self.sql
    }

    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError> {
        self.write(events, false).await
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
        .fetch_all(&self.sql.bookkeeping)
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
                .fetch_all(&self.sql.pool)
                .await?;
        rows::leased_deliveries(&rows, &events)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.records().ping().await?;
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
