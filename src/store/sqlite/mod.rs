//! The embedded SQLite store: WAL mode, `synchronous=FULL` for anything a caller is told is
//! stored, and one group-commit writer so concurrent requests share fsyncs.

mod write;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::sql::Shared;
use super::{Callback, LeaseRequest, Records, Store, StoreError};
use crate::model::{AttemptResult, IngestOutcome, LeasedDelivery, NewEvent};

/// The lease owner: one process owns an SQLite file, so the leases of a previous run are its own.
const OWNER: &str = "local";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub struct SqliteStore {
    /// The shared statements, over a pool for reads and rare durable writes (administration,
    /// releasing leases at start-up).
    sql: Shared<Sqlite>,
    /// The single writer: ingestion (group commit), recording and leasing.
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
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        let failing = writer::Failing::default();
        let tx = writer::start(path, failing.clone(), OWNER.to_owned())?;
        Ok(Self {
            sql: Shared { pool },
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
        self.ask(|reply| writer::Job::Ingest {
            events,
            probe,
            reply,
        })
        .await
    }

    /// Queues the job `job` makes for the writer and waits for its answer.
    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Job,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(job(reply))
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
        let request = write::Lease::from(&req);
        self.ask(|reply| writer::Job::Lease { request, reply })
            .await
    }

    async fn record(&self, owner: &str, results: &[AttemptResult]) -> Result<(), StoreError> {
        let (owner, results) = (owner.to_owned(), results.to_vec());
        self.ask(|reply| writer::Job::Record {
            owner,
            results,
            reply,
        })
        .await
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
        OWNER.to_owned()
    }

    fn watch(&self, _on_work: Callback, _on_change: Callback) {}
}
