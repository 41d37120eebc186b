//! The store side of the bench: bare INSERT loops (the baseline of ingestion: one durable
//! single-row INSERT per event, no Herald), backlogs written straight into Herald's tables,
//! and what PostgreSQL spends (transactions, rows, CPU time of its processes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;

use crate::herald::StoreAt;
use crate::wrk::PURCHASE;

/// Durable single-row INSERTs per second from `tasks` tasks for `duration`.
pub async fn bare_inserts(store: &StoreAt, tasks: usize, duration: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = match store {
        StoreAt::Postgres { url, schema } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(tasks as u32)
                .connect(url)
                .await
                .expect("PostgreSQL for the bench");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&pool)
                .await
                .expect("schema");
            sqlx::query(&format!(
                "CREATE TABLE {schema}.events (id TEXT PRIMARY KEY, params TEXT NOT NULL)"
            ))
            .execute(&pool)
            .await
            .expect("table");
            let sql: Arc<str> =
                format!("INSERT INTO {schema}.events (id, params) VALUES ($1, $2)").into();
            workers(tasks, &done, &stop, move || {
                let (pool, sql) = (pool.clone(), sql.clone());
                async move {
                    sqlx::query(&sql)
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(PURCHASE)
                        .execute(&pool)
                        .await
                        .expect("insert");
                }
            })
        }
        StoreAt::Sqlite(path) => {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(tasks as u32)
                .connect_with(options)
                .await
                .expect("sqlite");
            sqlx::query("CREATE TABLE events (id TEXT PRIMARY KEY, params TEXT NOT NULL)")
                .execute(&pool)
                .await
                .expect("table");
            workers(tasks, &done, &stop, move || {
                let pool = pool.clone();
                async move {
                    sqlx::query("INSERT INTO events (id, params) VALUES (?, ?)")
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(PURCHASE)
                        .execute(&pool)
                        .await
                        .expect("insert");
                }
            })
        }
    };
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for h in handles {
        h.await.expect("insert task");
    }
    done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

/// `tasks` tasks running `insert` one after another until `stop`, counting into `done`.
fn workers<F, Fut>(
    tasks: usize,
    done: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    insert: F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    (0..tasks)
        .map(|_| {
            let (done, stop, insert) = (done.clone(), stop.clone(), insert.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    insert().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// Writes `n` due deliveries of `n` purchases to the (only) subscription of the store, as a
/// long outage leaves them; Herald is not running meanwhile. Returns how long it took.
pub async fn build_backlog(store: &StoreAt, n: u64) -> Duration {
    let started = Instant::now();
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let tag = &run[..8];
    match store {
        StoreAt::Sqlite(path) => {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .journal_mode(SqliteJournalMode::Wal);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .expect("sqlite");
            let mut tx = pool.begin().await.expect("begin");
            let sub = sqlx::query("SELECT id, endpoint_id FROM subscriptions")
                .fetch_one(&mut *tx)
                .await
                .expect("a subscription");
            let (sub, ep): (String, String) = (sub.get(0), sub.get(1));
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
                 INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, delivery_count)
                 SELECT printf('evt_%s%024x', ?2, i), 'contoso_CustomerPurchase', 'contoso', ?3, 'backlog', 'bench', ?4, 1 FROM n",
            )
            .bind(n as i64)
            .bind(tag)
            .bind(PURCHASE)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("backlog events");
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
                 INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at)
                 SELECT printf('msg_%s%024x', ?2, i), printf('evt_%s%024x', ?2, i), ?3, ?4, 'pending', 0, ?5, ?5, ?5 FROM n",
            )
            .bind(n as i64)
            .bind(tag)
            .bind(sub)
            .bind(ep)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("backlog deliveries");
            tx.commit().await.expect("commit");
            pool.close().await;
        }
        StoreAt::Postgres { url, schema } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .expect("PostgreSQL");
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query(&format!("SET LOCAL search_path = \"{schema}\""))
                .execute(&mut *tx)
                .await
                .expect("schema");
            let sub = sqlx::query("SELECT id, endpoint_id FROM subscriptions")
                .fetch_one(&mut *tx)
                .await
                .expect("a subscription");
            let (sub, ep): (String, String) = (sub.get(0), sub.get(1));
            sqlx::query(
                "INSERT INTO events (id, name, solution, params, correlation_id, caller, received_at, delivery_count)
                 SELECT 'evt_' || $2 || lpad(to_hex(i), 24, '0'), 'contoso_CustomerPurchase', 'contoso', $3, 'backlog', 'bench', $4, 1
                 FROM generate_series(0, $1 - 1) AS i",
            )
            .bind(n as i64)
            .bind(tag)
            .bind(PURCHASE)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("backlog events");
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, subscription_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at)
                 SELECT 'msg_' || $2 || lpad(to_hex(i), 24, '0'), 'evt_' || $2 || lpad(to_hex(i), 24, '0'), $3, $4, 'pending', 0, $5, $5, $5
                 FROM generate_series(0, $1 - 1) AS i",
            )
            .bind(n as i64)
            .bind(tag)
            .bind(sub)
            .bind(ep)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("backlog deliveries");
            tx.commit().await.expect("commit");
            sqlx::query(&format!("ANALYZE \"{schema}\".deliveries"))
                .execute(&pool)
                .await
                .expect("analyze");
            pool.close().await;
        }
    }
    started.elapsed()
}

/// What PostgreSQL has done so far: committed transactions and rows written in the bench's
/// database, and the CPU time of every PostgreSQL process.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgWork {
    pub transactions: i64,
    pub rows: i64,
    pub cpu: Duration,
}

impl PgWork {
    /// Reads the counters now.
    pub async fn now(url: &str) -> PgWork {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .expect("PostgreSQL");
        // The statistics collector reports with a delay; ask for a fresh snapshot.
        let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&pool)
            .await;
        let row = sqlx::query(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_database");
        pool.close().await;
        PgWork {
            transactions: row.get(0),
            rows: row.get(1),
            cpu: postgres_cpu(),
        }
    }

    /// What was done between `before` and `self`.
    pub fn since(self, before: PgWork) -> PgWork {
        PgWork {
            transactions: self.transactions - before.transactions,
            rows: self.rows - before.rows,
            cpu: self.cpu.saturating_sub(before.cpu),
        }
    }
}

/// CPU time of every process called `postgres` on this machine (the server and its
/// backends; backends that exited meanwhile are not counted, so this is a lower bound).
fn postgres_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            total += crate::herald::process_cpu(pid);
        }
    }
    total
}
