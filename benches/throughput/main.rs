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
//! - on PostgreSQL, beside a bare single-row INSERT loop on the same database: ingest with no
//!   subscription and with one; end to end; three instances on one database; a drain of
//!   100,000; what the database spent per delivery;
//! - Herald's peak RSS in each phase.
//!
//! Run with `scripts/bench.sh` (installs wrk), or `cargo bench --bench throughput`. Settings:
//! `HERALD_BENCH_SECONDS` (load per phase, default 10), `HERALD_BENCH_BACKLOGS` (default
//! `100000,1000000`), `HERALD_BENCH_PHASES` (some of `ingest,delivery,fanout,latency,drain,pg`;
//! default all), `HERALD_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`).

mod herald;
mod receiver;
mod store;
mod wrk;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::Receiver;
use crate::store::PgWork;
use crate::wrk::Load;

/// Connections wrk keeps open.
const CONNECTIONS: u32 = 32;
/// Time allowed for a backlog to drain or a load to be delivered.
const PATIENCE: Duration = Duration::from_secs(900);
/// The event every phase sends.
const EVENT: &str = "/v1/events/contoso_CustomerPurchase";

/// The printed table: one line per figure.
#[derive(Default)]
struct Table(Vec<String>);

impl Table {
    fn line(&mut self, text: String) {
        println!("{text}");
        self.0.push(text);
    }

    fn load(&mut self, name: &str, run: &Load, baseline: f64, rss: f64) {
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

    fn rate(&mut self, name: &str, rate: f64, unit: &str, baseline: f64, rss: f64) {
        self.line(format!(
            "| {name} | {rate:.0} {unit} | {:.3}× | {rss:.0} MiB |",
            rate / baseline
        ));
    }
}

fn ms(d: Duration) -> f64 {
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
            &mut t, "SQLite", &stores, &receiver, 1, load_for, bare_http, sender, None,
        )
        .await;
    }
    if phase("fanout") {
        let stores = [sqlite("ten")];
        let label = "SQLite fan-out to 10";
        delivering(
            &mut t, label, &stores, &receiver, 10, load_for, bare_http, e2e, None,
        )
        .await;
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

    // PostgreSQL.
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
        let one = [pg_at("one")];
        delivering(
            &mut t,
            "PostgreSQL",
            &one,
            &receiver,
            1,
            load_for,
            inserts,
            sender,
            Some(&pg),
        )
        .await;
        let three = pg_at("three");
        let three = [three.clone(), three.clone(), three];
        let label = "PostgreSQL ×3 instances";
        delivering(
            &mut t,
            label,
            &three,
            &receiver,
            1,
            load_for,
            inserts,
            sender,
            Some(&pg),
        )
        .await;
        if let Some(&n) = backlogs.first() {
            drain(&mut t, "PostgreSQL", &pg_at("backlog"), &receiver, n, None).await;
        }
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

/// Load on instances over `stores` (one per instance, sharing a database when the same),
/// each with `subscriptions` webhook subscriptions: ingest while delivering (beside
/// `ingest_baseline`), deliveries completed during the load, and end to end (beside
/// `delivery_baseline`). Returns the end-to-end deliveries/s and the accepted events.
#[allow(clippy::too_many_arguments)]
async fn delivering(
    t: &mut Table,
    label: &str,
    stores: &[StoreAt],
    receiver: &Receiver,
    subscriptions: usize,
    load_for: Duration,
    ingest_baseline: f64,
    delivery_baseline: f64,
    pg: Option<&str>,
) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let instances: Vec<Herald> = stores
        .iter()
        .map(|s| Herald::start(dir.path(), s))
        .collect();
    instances[0].subscribe(receiver.addr, subscriptions).await;
    // Let the other instances hear of the subscriptions (LISTEN/NOTIFY).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db_before = match pg {
        Some(url) => Some(PgWork::now(url).await),
        None => None,
    };
    let cpu_before: Vec<Duration> = instances.iter().map(Herald::cpu).collect();
    let before = receiver.received();
    let started = Instant::now();
    // One wrk per instance, the connections shared out.
    let per = (CONNECTIONS / instances.len() as u32).max(1);
    let loads: Vec<Load> = std::thread::scope(|s| {
        let runs: Vec<_> = instances
            .iter()
            .map(|h| {
                let url = h.url(EVENT);
                s.spawn(move || wrk::post(&url, KEY, per, load_for))
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("wrk")).collect()
    });
    let during = receiver.received() - before;
    let load = combine(&loads);
    let expected = load.ok * subscriptions as u64;
    let rss = instances.iter().map(|h| h.memory().0).fold(0.0, f64::max);
    t.load(
        &format!(
            "{label}: ingest while delivering / {}",
            if pg.is_some() {
                "bare INSERT loop"
            } else {
                "bare handler"
            }
        ),
        &load,
        ingest_baseline,
        rss,
    );
    t.line(format!(
        "| {label}: deliveries completed during the load / deliveries accepted | {during} of {expected} | {:.3}× | |",
        during as f64 / expected.max(1) as f64
    ));
    let last = receiver.wait_for(before + expected, PATIENCE).await;
    let e2e = match last {
        Some(at) => expected as f64 / (at - started).as_secs_f64(),
        None => {
            println!("  (not every delivery arrived within {PATIENCE:?})");
            (receiver.received() - before) as f64 / started.elapsed().as_secs_f64()
        }
    };
    let rss = instances.iter().map(|h| h.memory().0).fold(0.0, f64::max);
    t.rate(
        &format!(
            "{label}: end to end, accepted → received / {}",
            if subscriptions > 1 {
                "one subscription's end to end"
            } else {
                "bare sender"
            }
        ),
        e2e,
        "deliveries/s",
        delivery_baseline,
        rss,
    );
    if let (Some(url), Some(before)) = (pg, db_before) {
        // Backends report their statistics when idle for a while.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let spent = PgWork::now(url).await.since(before);
        let herald_cpu: Duration = instances
            .iter()
            .zip(&cpu_before)
            .map(|(h, b)| h.cpu().saturating_sub(*b))
            .sum();
        let per = |v: f64| v / expected.max(1) as f64;
        t.line(format!(
            "| {label}: the database per delivery | {:.3} transactions, {:.2} rows written, {:.1} µs PostgreSQL CPU (Herald: {:.1} µs) | | |",
            per(spent.transactions as f64),
            per(spent.rows as f64),
            per(spent.cpu.as_secs_f64() * 1e6),
            per(herald_cpu.as_secs_f64() * 1e6),
        ));
    }
    for h in instances {
        h.stop();
    }
    (e2e, load.ok)
}

/// The sum of several wrk runs at once (latency: the worst of their percentiles).
fn combine(loads: &[Load]) -> Load {
    Load {
        ok: loads.iter().map(|l| l.ok).sum(),
        failed: loads.iter().map(|l| l.failed).sum(),
        elapsed: loads.iter().map(|l| l.elapsed).max().unwrap_or_default(),
        p50: loads.iter().map(|l| l.p50).max().unwrap_or_default(),
        p99: loads.iter().map(|l| l.p99).max().unwrap_or_default(),
    }
}

/// A backlog of `n` due deliveries written while Herald is stopped, then drained: deliveries/s
/// from Herald's start to the last one received (beside `baseline`, the first drain's rate).
async fn drain(
    t: &mut Table,
    label: &str,
    at: &StoreAt,
    receiver: &Receiver,
    n: u64,
    baseline: Option<f64>,
) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Herald::start(dir.path(), at);
    h.subscribe(receiver.addr, 1).await;
    h.stop();
    let built = store::build_backlog(at, n).await;
    let before = receiver.received();
    let started = Instant::now();
    let h = Herald::start(dir.path(), at);
    let last = receiver.wait_for(before + n, PATIENCE).await;
    let rate = match last {
        Some(at) => n as f64 / (at - started).as_secs_f64(),
        None => (receiver.received() - before) as f64 / started.elapsed().as_secs_f64(),
    };
    t.rate(
        &format!(
            "{label}: drain of {n} due deliveries (built in {:.1} s) / the first drain",
            built.as_secs_f64()
        ),
        rate,
        "deliveries/s",
        baseline.unwrap_or(rate),
        h.memory().0,
    );
    h.stop();
    rate
}

/// Latency at 100 events/s: from the request's start and from its 202 to the receiver having
/// the event, p50 and p99 over 500 events.
async fn low_load(t: &mut Table, at: &StoreAt, receiver: &Receiver) {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Herald::start(dir.path(), at);
    h.subscribe(receiver.addr, 1).await;
    receiver.probe(true);
    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..500 {
        tick.tick().await;
        let start = Instant::now();
        let r = http
            .post(h.url(EVENT))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(wrk::PURCHASE)
            .send()
            .await
            .expect("Herald answers");
        let accepted = Instant::now();
        let body: Value = r.json().await.expect("JSON answer");
        sent.push((
            body["id"].as_str().unwrap_or_default().to_owned(),
            start,
            accepted,
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after_202 = Vec::new();
    let mut after_start = Vec::new();
    for (id, start, accepted) in &sent {
        if let Some(arrived) = receiver.arrival(id) {
            after_202.push(arrived.saturating_duration_since(*accepted));
            after_start.push(arrived - *start);
        }
    }
    receiver.probe(false);
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    t.line(format!(
        "| SQLite at 100 events/s: receiver has the event ({} of 500) | after the 202: p50 {:.2} ms, p99 {:.2} ms; after the request started: p50 {:.2} ms, p99 {:.2} ms | | {:.0} MiB |",
        after_202.len(),
        ms(pct(&mut after_202, 0.5)),
        ms(pct(&mut after_202, 0.99)),
        ms(pct(&mut after_start, 0.5)),
        ms(pct(&mut after_start, 0.99)),
        h.memory().0
    ));
    h.stop();
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
