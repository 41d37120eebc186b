//! The embedded SQLite store: WAL mode, `synchronous=FULL` for anything a caller is told is
//! stored, and one group-commit writer so concurrent requests share fsyncs.

mod prune;
mod write;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::messages::{Local, Messages};
use super::sql::Shared;
use super::Records;
use super::{
    Cutoffs, EventScan, HandoffMark, LeaseRequest, Removed, Statements, Store, StoreError,
    StoreSettings, StoreStats, TableStats,
};
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
    /// The database file.
    path: std::path::PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations and seals again
    /// what older keys sealed; the rest of `settings` applies as well (the idempotency window,
    /// the keys).
    pub async fn open(path: &Path, settings: &StoreSettings) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            // Only the owner reads what Herald keeps (events hold business data).
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        create_incremental(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted and overwritten values (sealed settings replaced on a rotation) are
            // zeroed where that costs no extra I/O.
            .pragma("secure_delete", "FAST")
            .busy_timeout(Duration::from_secs(30));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        let failing = writer::Failing::default();
        let tx = writer::start(
            path,
            failing.clone(),
            OWNER.to_owned(),
            settings.idempotency_window,
        )?;
        let sql = Shared {
            pool,
            keys: settings.keys.clone(),
            // One process uses the file: it has nobody to tell.
            messages: std::sync::Arc::new(Local),
        };
        let resealed = sql.reseal().await?;
        if resealed > 0 {
            // Older copies of the rows may linger in the WAL until a checkpoint.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&sql.pool)
                .await?;
            tracing::info!(
                resealed,
                key = settings.keys.current(),
                "sealed endpoint settings again under the current key"
            );
        }
        Ok(Self {
            sql,
            writer: tx,
            failing,
            path: path.to_owned(),
        })
    }
}

/// Makes a database that does not exist yet with incremental auto-vacuum, which must be set
/// before its first table (a database made by an older Herald keeps its mode: its free pages
/// are reused, and `herald store compact` converts it). Pruning then gives pages back to the
/// file system a few at a time, never by a full `VACUUM` that would block writers.
fn create_incremental(path: &Path) -> Result<(), StoreError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    // A new file is the owner's alone; SQLite gives its WAL and shared-memory files the
    // same mode.
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::Database(sqlx::Error::Io(e))),
        }
    }
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;")?;
    if !prune::incremental(&conn)? {
        tracing::warn!(path = %path.display(), "SQLite did not take incremental auto-vacuum; freed pages are reused but not given back");
    }
    Ok(())
}

/// Rewrites the database at `path` with incremental auto-vacuum (a full `VACUUM`: run it while
/// no Herald uses the file). Returns the file's size before and after.
pub fn compact(path: &Path) -> Result<(u64, u64), StoreError> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(path);
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    drop(conn);
    Ok((before, size(path)))
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
    fn statements(&self) -> &dyn Statements {
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

    async fn record(
        &self,
        owner: &str,
        mark: Option<&HandoffMark>,
        results: &[AttemptResult],
    ) -> Result<bool, StoreError> {
        let (owner, results) = (owner.to_owned(), results.to_vec());
        let mark = mark.copied();
        self.ask(|reply| writer::Job::Record {
            owner,
            mark,
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

    async fn prune_deliveries(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed, StoreError> {
        let cutoffs = *cutoffs;
        self.ask(|reply| {
            writer::Job::Prune(prune::PruneStep::Deliveries {
                cutoffs,
                limit,
                reply,
            })
        })
        .await
    }

    async fn prune_events(
        &self,
        cutoffs: &Cutoffs,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventScan, StoreError> {
        let (cutoffs, after) = (*cutoffs, after.map(str::to_owned));
        self.ask(|reply| {
            writer::Job::Prune(prune::PruneStep::Events {
                cutoffs,
                after,
                limit,
                reply,
            })
        })
        .await
    }

    async fn reclaim(&self, max_pages: u32) -> Result<u64, StoreError> {
        self.ask(|reply| writer::Job::Reclaim { max_pages, reply })
            .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        // dbstat reads every page (on a reader connection: WAL readers never block the writer).
        let rows = sqlx::query(
            "SELECT s.tbl_name AS tbl, SUM(d.pgsize) AS bytes,
               SUM(CASE WHEN d.name = s.tbl_name AND d.pagetype = 'leaf' THEN d.ncell ELSE 0 END) AS n
             FROM dbstat d JOIN sqlite_schema s ON s.name = d.name
             WHERE s.tbl_name NOT LIKE 'sqlite_%' AND s.tbl_name NOT LIKE '_sqlx_%'
             GROUP BY s.tbl_name ORDER BY s.tbl_name",
        )
        .fetch_all(&self.sql.pool)
        .await?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            tables.push(TableStats {
                table: sqlx::Row::try_get(&row, "tbl")?,
                rows: sqlx::Row::try_get::<i64, _>(&row, "n")?.max(0) as u64,
                bytes: sqlx::Row::try_get::<i64, _>(&row, "bytes")?.max(0) as u64,
            });
        }
        let pragma = |name: &'static str| {
            let pool = self.sql.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(&format!("PRAGMA {name}"))
                    .fetch_one(&pool)
                    .await
            }
        };
        let page_size = pragma("page_size").await?;
        let free = pragma("freelist_count").await? * page_size;
        let file = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(StoreStats {
            tables,
            total_bytes: file(&self.path) + file(Path::new(&wal)),
            free_bytes: Some(free.max(0) as u64),
        })
    }

    fn lease_owner(&self) -> String {
        OWNER.to_owned()
    }

    fn messages(&self) -> &dyn Messages {
        self.sql.messages.as_ref()
    }
}
