//! Herald's delivery and ingestion figures, each beside its baseline measured in the same run,
//! with the ratio. Load comes from `wrk` (a process of its own, written in C: not the
//! bottleneck), Herald runs as the release `herald serve` in a process of its own, and the
//! receiver is a bare axum handler that counts.
//!
//! One run prints:
//! - the bare axum handler that parses the JSON and answers 202, and the bare signed sender
//!   (Standard Webhooks-signed CloudEvents, 64 in flight) to the same receiver;
//! - on SQLite: ingest with no subscription; ingest with one webhook subscription (p50/p99
//!   while delivering, and how many deliveries completed during the load); end to end
//!   deliveries/s; fan-out to 10 webhook subscriptions; drain rates from backlogs of 100,000
//!   and 1,000,000 due deliveries (and how long building each took); latency at 100 events/s;
//!   the store's size over a million events with a one-minute retention, and ingest while
//!   pruning beside the same run with pruning off; ingest through one synchronous step that
//!   accepts and one that changes a parameter; end to end beside an endpoint that is failing
//!   with 10,000 deliveries waiting, beside the same run's end to end without it;
//! - on PostgreSQL, beside a bare single-row INSERT loop on the same database: ingest with no
//!   subscription and with one; end to end; three instances on one database; a drain of
//!   100,000; what the database spent per delivery; three instances holding one endpoint to a
//!   rate limit of 200/s (mean and busiest second, beside the limit);
//! - the console's pages with a million deliveries in the store, p50 and p99 of each beside
//!   `GET /healthz` of the same Herald, against the 50 ms target;
//! - ingest through a plug-in step (trivial, JavaScript, Python) beside no step and a webhook
//!   step, and the sandbox alone (compile, cached load, fresh and warm calls);
//! - row changes from an application's PostgreSQL (a server of the bench's own): a backlog
//!   read by a bare `pgoutput` reader beside Herald storing it and delivering it to a
//!   webhook, the lag at 1,000 changes/s, and what the slot keeps while Herald is stopped for
//!   a minute (`HERALD_BENCH_SOURCE_ROWS`, default 200,000);
//! - Herald's peak RSS in each phase.
//!
//! Run with `scripts/bench.sh` (installs wrk), or `cargo bench --bench throughput`. Settings:
//! `HERALD_BENCH_SECONDS` (load per phase, default 10), `HERALD_BENCH_BACKLOGS` (default
//! `100000,1000000`), `HERALD_BENCH_PHASES` (some of
//! `ingest,delivery,fanout,health,latency,drain,console,retention,steps,plugins,sources,pg,rate`;
//! default all; `plugins` needs `scripts/build-plugins.sh` first),
//! `HERALD_BENCH_CONSOLE` (deliveries in the store of the console phase, default 1,000,000),
//! `HERALD_BENCH_RETAINED`
//! (events of the retention phase, default 1,000,000), `HERALD_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`).

mod console;
mod health;
mod herald;
mod phases;
mod plugins;
mod receiver;
mod retention;
// The bench's own PostgreSQL (wal_level = logical), as the tests start theirs.
#[allow(dead_code)]
#[path = "../../tests/it/support/postgres.rs"]
mod source_db;
mod sources;
mod steps;
mod store;
mod wrk;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use crate::herald::{Herald, StoreAt, KEY};
use crate::phases::{delivering, drain, low_load};
use crate::receiver::Receiver;

/// Connections wrk keeps open.
pub const CONNECTIONS: u32 = 32;
/// Time allowed for a backlog to drain or a load to be delivered.
pub const PATIENCE: Duration = Duration::from_secs(900);
/// The event every phase sends.
pub const EVENT: &str = "/v1/events/contoso_CustomerPurchase";

/// The printed table: one line per figure.
#[derive(Default)]
pub struct Table(Vec<String>);

impl Table {
    pub fn line(&mut self, text: String) {
        println!("{text}");
        self.0.push(text);
    }

    pub fn load(&mut self, name: &str, run: &wrk::Load, baseline: f64, rss: f64) {
        self.line(format!(
            "| {name} | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms{} | {:.3}× | {rss:.0} MiB |",
            run.rate(),
            ms(run.p50),
            ms(run.p99),
            if run.failed > 0 {
                format!(", {} failed", run.failed)
            } else {
                String::new()
            },
            run.rate() / baseline,
        ));
    }

    pub fn rate(&mut self, name: &str, rate: f64, unit: &str, baseline: f64, rss: f64) {
        self.line(format!(
            "| {name} | {rate:.0} {unit} | {:.3}× | {rss:.0} MiB |",
            rate / baseline
        ));
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env("HERALD_BENCH_SECONDS").unwrap_or(10);
    let load_for = Duration::from_secs(seconds);
    let backlogs: Vec<u64> = std::env::var("HERALD_BENCH_BACKLOGS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let pg = std::env::var("HERALD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    assert!(
        wrk::available(),
        "wrk is needed: run scripts/bench.sh, or apt-get install wrk"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let phases = std::env::var("HERALD_BENCH_PHASES").unwrap_or_default();
    let phase = |name: &str| phases.is_empty() || phases.split(',').any(|p| p.trim() == name);
    println!(
        "Herald throughput: wrk -t1 -c{CONNECTIONS}, {seconds} s per load, on {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| phase | figure | ratio to its baseline | Herald peak RSS |");
    println!("| --- | --- | --- | --- |");
    let mut t = Table::default();

    // Baselines.
    let bare = bare_handler().await;
    let bare_run = wrk::post(&format!("http://{bare}{EVENT}"), KEY, CONNECTIONS, load_for);
    t.load(
        "bare axum handler (baseline)",
        &bare_run,
        bare_run.rate(),
        0.0,
    );
    let bare_http = bare_run.rate();
    let receiver = Receiver::start().await;
    let sender = receiver::bare_sender(&receiver, 150_000, 64).await;
    t.rate(
        "bare signed sender, 64 in flight (baseline)",
        sender,
        "req/s",
        sender,
        0.0,
    );

    let sqlite = |name: &str| StoreAt::Sqlite(dir.path().join(format!("{name}.db")));

    // SQLite.
    if phase("ingest") {
        let h = Herald::start(dir.path(), &sqlite("nosub"));
        let ingest = wrk::post(&h.url(EVENT), KEY, CONNECTIONS, load_for);
        let name = "SQLite ingest, no subscription / bare handler";
        t.load(name, &ingest, bare_http, h.memory().0);
        h.stop();
    }
    let mut e2e = sender;
    if phase("delivery") {
        let stores = [sqlite("one")];
        (e2e, _) = delivering(
            &mut t, "SQLite", &stores, &receiver, 1, load_for, bare_http, sender, None, false,
        )
        .await;
    }
    if phase("fanout") {
        let stores = [sqlite("ten")];
        let label = "SQLite fan-out to 10";
        delivering(
            &mut t, label, &stores, &receiver, 10, load_for, bare_http, e2e, None, false,
        )
        .await;
    }
    if phase("health") {
        let at = sqlite("failing");
        health::beside_failing(&mut t, &at, &receiver, load_for, e2e).await;
    }
    if phase("latency") {
        low_load(&mut t, &sqlite("latency"), &receiver).await;
    }
    if phase("drain") {
        let mut first = None;
        for &n in &backlogs {
            let at = sqlite(&format!("backlog{n}"));
            let rate = drain(&mut t, "SQLite", &at, &receiver, n, first).await;
            first.get_or_insert(rate);
        }
    }

    if phase("console") {
        let n = env("HERALD_BENCH_CONSOLE").unwrap_or(1_000_000);
        console::pages(&mut t, dir.path(), &receiver, n).await;
    }

    if phase("retention") {
        let events = env("HERALD_BENCH_RETAINED").unwrap_or(1_000_000);
        retention::retention(&mut t, &receiver, events).await;
    }

    // PostgreSQL.
    if phase("steps") {
        steps::steps(&mut t, load_for, bare_http).await;
    }
    if phase("plugins") {
        plugins::plugins(&mut t, load_for, bare_http).await;
    }
    if phase("sources") {
        sources::sources(&mut t, load_for).await;
    }
    if phase("pg") {
        let pg_at = |name: &str| StoreAt::Postgres {
            url: pg.clone(),
            schema: format!("bench_{run}_{name}"),
        };
        let inserts = store::bare_inserts(&pg_at("bare"), CONNECTIONS as usize, load_for).await;
        let name = "bare single-row INSERT loop, PostgreSQL (baseline)";
        t.rate(name, inserts, "rows/s", inserts, 0.0);
        let h = Herald::start(dir.path(), &pg_at("nosub"));
        let ingest = wrk::post(&h.url(EVENT), KEY, CONNECTIONS, load_for);
        let name = "PostgreSQL ingest, no subscription / bare INSERT loop";
        t.load(name, &ingest, inserts, h.memory().0);
        h.stop();
        let three = pg_at("three");
        let tailed = pg_at("tailed");
        let clusters = [
            ("PostgreSQL", vec![pg_at("one")], false),
            (
                "PostgreSQL ×3 instances",
                vec![three.clone(), three.clone(), three],
                false,
            ),
            (
                "PostgreSQL ×3 instances, a live tail open on one",
                vec![tailed.clone(), tailed.clone(), tailed],
                true,
            ),
        ];
        for (label, stores, tail) in &clusters {
            let (t, r, pg) = (&mut t, &receiver, Some(pg.as_str()));
            delivering(t, label, stores, r, 1, load_for, inserts, sender, pg, *tail).await;
        }
        if let Some(&n) = backlogs.first() {
            drain(&mut t, "PostgreSQL", &pg_at("backlog"), &receiver, n, None).await;
        }
    }
    if phase("rate") {
        let at = StoreAt::Postgres {
            url: pg.clone(),
            schema: format!("bench_{run}_rate"),
        };
        health::cluster_rate(&mut t, &at, &receiver, 200).await;
    }
    drop_schemas(&pg, run).await;

    println!("\nThe table again, for a closing note:\n");
    println!("| phase | figure | ratio to its baseline | Herald peak RSS |");
    println!("| --- | --- | --- | --- |");
    for line in &t.0 {
        println!("{line}");
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// The bare handler: parses the JSON and answers 202, storing nothing.
async fn bare_handler() -> std::net::SocketAddr {
    receiver::serve(axum::Router::new().route(
        "/v1/events/{name}",
        axum::routing::post(|axum::Json(_): axum::Json<Value>| async {
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"id": "x", "deliveries": 1})),
            )
        }),
    ))
    .await
}

/// Drops the PostgreSQL schemas of this run.
async fn drop_schemas(url: &str, run: &str) {
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
    else {
        return;
    };
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'bench_' || $1 || '%'",
    )
    .bind(run)
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    for s in schemas {
        let _ = sqlx::query(&format!("DROP SCHEMA \"{s}\" CASCADE"))
            .execute(&pool)
            .await;
    }
}
