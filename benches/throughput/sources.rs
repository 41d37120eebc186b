//! Row changes from an application's PostgreSQL (a server of the bench's own, `wal_level =
//! logical`): a backlog of changes read by a bare `pgoutput` reader (the replication crate
//! Herald uses, doing nothing with the changes but confirming each commit) beside Herald
//! reading and storing them, and beside Herald delivering them to a webhook; the lag from a
//! row's insert to its event stored (and to the bare reader) at 1,000 changes/s; and what
//! the slot keeps on the source's disk while Herald is stopped for a minute, with the time
//! Herald then takes to catch up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwire_replication::{ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use sqlx::Row;

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::{serve, Receiver};
use crate::source_db::SourceDb;
use crate::{Table, PATIENCE};

/// The shop's table, read from source `app`.
const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Orders"

[[tables]]
logical_name = "contoso_order"
solution = "contoso"
category = "Orders"
primary_key = "contoso_orderid"
relation = "public.orders"
source = "app"

[[tables.columns]]
name = "contoso_orderid"
column = "id"
type = "Integer"

[[tables.columns]]
name = "contoso_status"
column = "status"
type = "String"

[[tables.columns]]
name = "contoso_total"
column = "total"
type = "Money"

[[tables.columns]]
name = "contoso_placedon"
column = "placed_on"
type = "DateTime"
"#;

/// Rows of the backlog.
fn backlog() -> u64 {
    std::env::var("HERALD_BENCH_SOURCE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Inserts rows `from..to` in transactions of `per`, with `status`.
async fn insert(pool: &sqlx::PgPool, from: u64, to: u64, per: u64, status: &str) {
    let mut n = from;
    while n < to {
        let end = (n + per).min(to);
        sqlx::query(
            "INSERT INTO orders (id, status, total, placed_on)
             SELECT i, $3, i % 1000, clock_timestamp() FROM generate_series($1::int8, $2::int8 - 1) AS i",
        )
        .bind(n as i64)
        .bind(end as i64)
        .bind(status)
        .execute(pool)
        .await
        .expect("insert");
        n = end;
    }
}

/// Inserts `total` rows at `rate` rows per second, ten per transaction.
async fn paced(pool: &sqlx::PgPool, from: u64, total: u64, rate: u64, status: &str) {
    let per = 10;
    let every = Duration::from_secs_f64(per as f64 / rate as f64);
    let mut tick = tokio::time::interval(every);
    let mut n = from;
    while n < from + total {
        tick.tick().await;
        insert(pool, n, n + per, per, status).await;
        n += per;
    }
}

/// A replication session of the bench's own on `slot`.
fn session(db: &SourceDb, slot: &str) -> ReplicationConfig {
    ReplicationConfig::new("127.0.0.1", "postgres", "", "postgres", slot, "bench")
        .with_port(db.port)
        .with_tls(TlsConfig::disabled())
        .with_options("-c datestyle=ISO,YMD -c timezone=UTC")
        .with_status_interval(Duration::from_secs(1))
}

/// The bare reader: reads `want` row changes on `slot`, confirming each commit; with
/// `lags`, also notes the lag of each insert of a `live` row from its `placed_on` (the fourth
/// column) to its arrival. Returns how long it took.
async fn bare(db: &SourceDb, slot: &str, want: u64, mut lags: Option<&mut Vec<f64>>) -> Duration {
    let mut client = ReplicationClient::connect(session(db, slot))
        .await
        .expect("the bare reader connects");
    client.wait_started().await.expect("the bare reader starts");
    let started = Instant::now();
    let mut seen = 0;
    while seen < want {
        match client.recv().await.expect("the stream goes on") {
            Some(ReplicationEvent::XLogData { data, .. }) => {
                if !matches!(data.first(), Some(b'I' | b'U' | b'D')) {
                    continue;
                }
                seen += 1;
                if let Some(lags) = lags.as_deref_mut() {
                    use herald::sources::postgres::pgoutput::{decode, Datum, Message};
                    if let Ok(Message::Insert { new, .. }) = decode(&data) {
                        if let (Some(Datum::Text(status)), Some(Datum::Text(at))) =
                            (new.get(1), new.get(3))
                        {
                            if status == "live" {
                                lags.push(lag_ms(at));
                            }
                        }
                    }
                }
            }
            Some(ReplicationEvent::Commit { end_lsn, .. }) => client.update_applied_lsn(end_lsn),
            Some(_) => {}
            None => panic!("the bare reader's stream ended"),
        }
    }
    let took = started.elapsed();
    client.stop();
    took
}

/// Milliseconds from `placed_on` (PostgreSQL's ISO text, UTC) to now.
fn lag_ms(placed_on: &str) -> f64 {
    lag_ms_rfc3339(&format!(
        "{}Z",
        placed_on.replace(' ', "T").trim_end_matches("+00")
    ))
}

/// Milliseconds from `at` (RFC 3339) to now.
fn lag_ms_rfc3339(at: &str) -> f64 {
    let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 timestamp");
    (time::OffsetDateTime::now_utc() - at).as_seconds_f64() * 1000.0
}

/// Waits until the instance's source `app` says `done`; when it did.
async fn until(h: &Herald, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> Instant {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view: serde_json::Value = http
            .get(h.url("/v1/sources/app"))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("Herald answers")
            .json()
            .await
            .unwrap_or_default();
        if done(&view) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{what}: {view}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// When the source streams (its replication session started, as the bare reader's clock
/// starts once its session did).
async fn streaming(h: &Herald) -> Instant {
    until(h, "the source did not start", |v| v["state"] == "streaming").await
}

/// When the source has stored `n` changes.
async fn stored(h: &Herald, n: u64) -> Instant {
    until(h, "Herald stored too little", |v| {
        v["changes"].as_u64().unwrap_or(0) >= n
    })
    .await
}

/// p50 and p99 of `values`.
fn percentiles(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let at = |q: f64| values[((values.len() as f64 * q) as usize).min(values.len() - 1)];
    (at(0.5), at(0.99))
}

/// Runs the phase.
pub async fn sources(t: &mut Table, load_for: Duration) {
    let db = tokio::task::spawn_blocking(SourceDb::start)
        .await
        .expect("the bench's PostgreSQL starts");
    let pool = db.pool().await;
    for sql in [
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, total numeric(12,2), placed_on timestamptz)",
        "CREATE PUBLICATION bench FOR TABLE orders",
        "SELECT pg_create_logical_replication_slot('bare', 'pgoutput')",
        "SELECT pg_create_logical_replication_slot('herald_stored', 'pgoutput')",
        "SELECT pg_create_logical_replication_slot('herald_delivered', 'pgoutput')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = dir.path().join("catalog");
    std::fs::create_dir_all(&catalog).expect("catalog dir");
    std::fs::write(catalog.join("shop.toml"), CATALOG).expect("catalog");
    let config = |slot: &str| {
        format!(
            r#"
[catalog]
dir = "{}"

[[sources]]
name = "app"
kind = "postgres"
url = "{}"
slot = "{slot}"
publication = "bench"
"#,
            catalog.display(),
            db.url()
        )
    };
    let rows = backlog();
    insert(&pool, 0, rows, 100, "backlog").await;
    // The live phase's bare reader starts after the backlog: its slot holds only live rows.
    sqlx::query("SELECT pg_create_logical_replication_slot('bare_live', 'pgoutput')")
        .execute(&pool)
        .await
        .expect("the live slot");

    // A backlog, read bare and by Herald (storing; then storing and delivering).
    let bare_took = bare(&db, "bare", rows, None).await;
    let bare_rate = rows as f64 / bare_took.as_secs_f64();
    t.line(format!(
        "| sources | bare pgoutput reader (pgwire-replication, confirming each commit): {rows} changes in {:.2} s, {bare_rate:.0} changes/s | 1.000× | – |",
        bare_took.as_secs_f64()
    ));
    let store = StoreAt::Sqlite(dir.path().join("stored.db"));
    let h = Herald::start_with(dir.path(), &store, &config("herald_stored"));
    let started = streaming(&h).await;
    let took = stored(&h, rows).await - started;
    let rate = rows as f64 / took.as_secs_f64();
    t.line(format!(
        "| sources | Herald reading and storing (SQLite, no subscription; from its session's start): {rows} changes in {:.2} s, {rate:.0} changes/s (target ≥ 0.5×) | {:.3}× | {:.0} MiB |",
        took.as_secs_f64(),
        rate / bare_rate,
        h.memory().0
    ));
    // Arrivals at the webhook of the live phase: each row's lag from its insert.
    let arrived: Arc<Mutex<Vec<f64>>> = Arc::default();
    let lag_hook = {
        let arrived = arrived.clone();
        serve(axum::Router::new().route(
            "/hook/{n}",
            axum::routing::post(move |body: axum::body::Bytes| {
                let arrived = arrived.clone();
                async move {
                    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) {
                        if doc["data"]["target"]["contoso_status"] == "live" {
                            if let Some(at) = doc["data"]["target"]["contoso_placedon"].as_str() {
                                arrived.lock().expect("lags").push(lag_ms_rfc3339(at));
                            }
                        }
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        ))
        .await
    };
    let d = {
        let receiver = Receiver::start().await;
        let delivered_store = StoreAt::Sqlite(dir.path().join("delivered.db"));
        let d = Herald::start_with(
            dir.path(),
            &delivered_store,
            &(config("herald_delivered")
                + &format!(
                    r#"
[[endpoints]]
name = "hook"
kind = "webhook"
url = "http://{}/hook/0"
secret = "{}"

[[subscriptions]]
name = "orders"
category = "Orders"
endpoint = "hook"
"#,
                    receiver.addr,
                    herald::destinations::webhook::Secret::generate().expose()
                )),
        );
        let started = streaming(&d).await;
        let done = receiver
            .wait_for(rows, PATIENCE)
            .await
            .expect("every change delivered");
        let took = done - started;
        let rate = rows as f64 / took.as_secs_f64();
        t.line(format!(
            "| sources | Herald end to end to a webhook (SQLite; from its session's start to the last delivery): {rows} changes in {:.2} s, {rate:.0} changes/s | {:.3}× | {:.0} MiB |",
            took.as_secs_f64(),
            rate / bare_rate,
            d.memory().0
        ));
        // The live phase's deliveries go to the lag hook.
        d.post(
            "/v1/endpoints",
            serde_json::json!({"name": "lag", "kind": "webhook", "url": format!("http://{lag_hook}/hook/1"),
                "secret": herald::destinations::webhook::Secret::generate().expose()}),
        )
        .await;
        d.post(
            "/v1/subscriptions",
            serde_json::json!({"name": "lag", "event": "contoso_order_Create", "endpoint": "lag",
                "filter": [{"parameter": "Target.contoso_status", "op": "eq", "value": "live"}]}),
        )
        .await;
        d
    };

    // Lag at 1,000 changes/s: insert → accepted by Herald, and → delivered to a webhook,
    // beside insert → read by the bare reader.
    let live = (load_for.as_secs().max(5) * 1000).min(60_000);
    let from = rows;
    let mut bare_lags = Vec::new();
    let reader = {
        let pool = pool.clone();
        tokio::spawn(async move { paced(&pool, from, live, 1000, "live").await })
    };
    bare(&db, "bare_live", live, Some(&mut bare_lags)).await;
    reader.await.expect("the writer");
    stored(&h, rows + live).await;
    let deadline = Instant::now() + PATIENCE;
    while (arrived.lock().expect("lags").len() as u64) < live && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.stop();
    let mut delivered = std::mem::take(&mut *arrived.lock().expect("lags"));
    let sqlite = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join("stored.db").display()
    ))
    .await
    .expect("the store");
    let mut lags: Vec<f64> = sqlx::query(
        "SELECT received_at, json_extract(params, '$.Target.contoso_placedon') AS placed
         FROM events WHERE json_extract(params, '$.Target.contoso_status') = 'live'",
    )
    .fetch_all(&sqlite)
    .await
    .expect("the live events")
    .iter()
    .map(|r| {
        let placed: String = r.get("placed");
        let at =
            time::OffsetDateTime::parse(&placed, &time::format_description::well_known::Rfc3339)
                .expect("an RFC 3339 time");
        r.get::<i64, _>("received_at") as f64 - (at.unix_timestamp_nanos() / 1_000_000) as f64
    })
    .collect();
    let (p50, p99) = percentiles(&mut lags);
    let (bare50, bare99) = percentiles(&mut bare_lags);
    let (d50, d99) = percentiles(&mut delivered);
    t.line(format!(
        "| sources | lag at 1,000 changes/s, bare reader insert → read ({} changes): p50 {bare50:.2} ms, p99 {bare99:.2} ms | 1.000× | – |",
        bare_lags.len()
    ));
    t.line(format!(
        "| sources | lag at 1,000 changes/s, insert → accepted by Herald (its received_at, ms resolution; {} changes): p50 {p50:.1} ms, p99 {p99:.1} ms | {:.3}× (p99 / bare p99) | {:.0} MiB |",
        lags.len(),
        p99 / bare99.max(0.001),
        h.memory().0
    ));
    t.line(format!(
        "| sources | lag at 1,000 changes/s, insert → delivered to a webhook (stored first; {} changes): p50 {d50:.1} ms, p99 {d99:.1} ms | {:.3}× (p99 / bare p99) | – |",
        delivered.len(),
        d99 / bare99.max(0.001)
    ));

    // Herald stopped for a minute while the application writes 1,000 changes/s: what the
    // slot keeps, beside the WAL the source wrote; then the catch-up.
    h.stop();
    let wal = |pool: sqlx::PgPool| async move {
        sqlx::query("SELECT pg_current_wal_lsn()::text AS at")
            .fetch_one(&pool)
            .await
            .expect("the WAL position")
            .get::<String, _>("at")
    };
    let before = wal(pool.clone()).await;
    // HERALD_BENCH_SOURCE_STOPPED: seconds Herald is stopped (default 60).
    let stopped_seconds: u64 = std::env::var("HERALD_BENCH_SOURCE_STOPPED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let stopped_for = stopped_seconds * 1000;
    paced(&pool, rows + live, stopped_for, 1000, "stopped").await;
    let row = sqlx::query(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 AS kept,
                pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::int8 AS written
         FROM pg_replication_slots WHERE slot_name = 'herald_stored'",
    )
    .bind(&before)
    .fetch_one(&pool)
    .await
    .expect("the slot");
    let (kept, written): (i64, i64) = (row.get("kept"), row.get("written"));
    t.line(format!(
        "| sources | the slot while Herald is stopped {stopped_seconds} s at 1,000 changes/s: keeps {:.1} MiB ({:.0} bytes per change); the source wrote {:.1} MiB of WAL meanwhile | {:.3}× | – |",
        kept as f64 / 1048576.0,
        kept as f64 / stopped_for as f64,
        written as f64 / 1048576.0,
        kept as f64 / written.max(1) as f64
    ));
    let h = Herald::start_with(dir.path(), &store, &config("herald_stored"));
    let started = streaming(&h).await;
    let took = stored(&h, stopped_for).await - started;
    t.line(format!(
        "| sources | catch-up after {stopped_seconds} s stopped: {stopped_for} changes in {:.2} s ({:.0} changes/s) | {:.3}× (to the bare rate) | {:.0} MiB |",
        took.as_secs_f64(),
        stopped_for as f64 / took.as_secs_f64(),
        stopped_for as f64 / took.as_secs_f64() / bare_rate,
        h.memory().0
    ));
    h.stop();
}
