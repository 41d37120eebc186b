//! Herald's performance figures, each beside a baseline measured in the same run:
//!
//! - ingest: `POST /v1/events/{name}` at a fixed concurrency with durable (fsync'd, group
//!   committed) SQLite writes, against a bare axum handler that parses the same JSON and
//!   answers 202 without storing anything;
//! - delivery: events accepted → signed webhooks received, against the same client posting
//!   straight to the bare receiver.
//!
//! - stores: the same for SQLite, PostgreSQL with one instance and with three instances on one
//!   database (in this one process), beside a bare loop of durable single-row INSERTs.
//!
//! Run with `cargo bench --bench throughput` (optionally `-- REQUESTS CONCURRENCY`); the
//! PostgreSQL runs use `HERALD_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "hk_bench_key_0123456789";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let requests: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    println!("herald throughput benchmark: {requests} requests at concurrency {concurrency}\n");

    // Baseline 1: a bare axum handler that parses JSON and answers 202.
    let bare = serve(axum::Router::new().route(
        "/v1/events/{name}",
        axum::routing::post(|axum::Json(_): axum::Json<Value>| async {
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({"id": "x", "deliveries": 1})),
            )
        }),
    ))
    .await;
    let bare_run = load(
        &format!("http://{bare}/v1/events/contoso_CustomerPurchase"),
        requests,
        concurrency,
    )
    .await;
    report("bare axum handler (baseline)", &bare_run);

    // The receiver: counts signed webhooks.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = serve(axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    ))
    .await;
    // Baseline 2: the same client posting straight to the receiver.
    let direct = load(&format!("http://{receiver}/hook"), requests, concurrency).await;
    report("bare HTTP receiver, direct posts (baseline)", &direct);
    received.store(0, Ordering::Relaxed);

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let pg = std::env::var("HERALD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());

    let mut table = Vec::new();
    let bare_sqlite = bare_inserts(
        &format!("sqlite://{}", dir.path().join("bare.db").display()),
        None,
        requests,
        concurrency,
    )
    .await;
    report("bare INSERT loop, SQLite (baseline)", &bare_sqlite);
    let bare_pg = bare_inserts(&pg, Some(&format!("{schema}_bare")), requests, concurrency).await;
    report("bare INSERT loop, PostgreSQL (baseline)", &bare_pg);

    for (label, url, schema, instances, bare) in [
        ("SQLite", sqlite_url.as_str(), None, 1, &bare_sqlite),
        (
            "PostgreSQL x1",
            pg.as_str(),
            Some(format!("{schema}_1")),
            1,
            &bare_pg,
        ),
        (
            "PostgreSQL x3",
            pg.as_str(),
            Some(format!("{schema}_3")),
            3,
            &bare_pg,
        ),
    ] {
        received.store(0, Ordering::Relaxed);
        let (ingest, e2e) = herald_run(
            url,
            schema,
            instances,
            receiver,
            &received,
            requests,
            concurrency,
        )
        .await;
        report(&format!("Herald ingest, {label}"), &ingest);
        println!(
            "{:<48} {e2e:>8.0} deliveries/s (accept → sign → deliver → record)",
            format!("Herald end-to-end, {label}")
        );
        table.push((
            label,
            ingest.rate / bare.rate,
            ingest.rate / bare_run.rate,
            e2e / direct.rate,
        ));
    }

    println!("\nratios (same run)");
    for (label, vs_insert, vs_axum, vs_direct) in table {
        println!("  {label:<14} ingest / bare INSERT loop {vs_insert:>5.2}   ingest / bare axum {vs_axum:>5.2}   delivery / direct posts {vs_direct:>5.2}");
    }
}

/// Starts `instances` Herald instances on one store, subscribes a webhook to `receiver`,
/// sends the load round-robin over them, and waits for every delivery. Returns the ingest
/// figures and the end-to-end delivery rate.
async fn herald_run(
    url: &str,
    schema: Option<String>,
    instances: usize,
    receiver: std::net::SocketAddr,
    received: &AtomicU64,
    requests: usize,
    concurrency: usize,
) -> (Run, f64) {
    let schema_line = schema
        .map(|s| format!("schema = \"{s}\""))
        .unwrap_or_default();
    let config_text = format!(
        r#"
api_key = "{KEY}"
[store]
url = "{url}"
{schema_line}
max_connections = 16
[webhooks]
allow_networks = ["127.0.0.0/8"]
[delivery]
max_in_flight = 256
endpoint_concurrency = 64
"#
    );
    let mut running = Vec::new();
    for _ in 0..instances {
        let config =
            herald::config::Config::from_toml(&[&config_text]).expect("bench configuration");
        let catalog = herald::server::load_catalog(&config).expect("catalog");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        running.push(
            herald::server::start(config, catalog, Some(listener))
                .await
                .expect("Herald starts"),
        );
    }
    let bases: Vec<String> = running
        .iter()
        .map(|r| format!("http://{}", r.addr))
        .collect();
    let http = reqwest::Client::new();
    let secret = herald::destinations::webhook::Secret::generate().expose();
    let endpoint = json!({"name": "bench", "kind": "webhook", "url": format!("http://{receiver}/hook"), "secret": secret});
    let r = http
        .post(format!("{}/v1/endpoints", bases[0]))
        .bearer_auth(KEY)
        .json(&endpoint)
        .send()
        .await
        .expect("endpoint");
    assert_eq!(r.status(), 201);
    let sub = json!({"event": "contoso_CustomerPurchase", "endpoint": "bench"});
    let r = http
        .post(format!("{}/v1/subscriptions", bases[0]))
        .bearer_auth(KEY)
        .json(&sub)
        .send()
        .await
        .expect("subscription");
    assert_eq!(r.status(), 201);
    // Let the other instances hear of the subscription (LISTEN/NOTIFY).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let urls: Vec<String> = bases
        .iter()
        .map(|b| format!("{b}/v1/events/contoso_CustomerPurchase"))
        .collect();
    let ingest = load_many(&urls, requests, concurrency).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::Relaxed) < ingest.ok as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e2e = received.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    for r in running {
        r.stop().await;
    }
    (ingest, e2e)
}

/// One durable single-row INSERT per event, from `concurrency` tasks: what storing events
/// costs without Herald (and without group commit).
async fn bare_inserts(url: &str, schema: Option<&str>, requests: usize, concurrency: usize) -> Run {
    let body = serde_json::to_string(
        &json!({"CustomerId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Total": 42.5}),
    )
    .expect("json");
    let next = Arc::new(AtomicU64::new(0));
    let started;
    let mut latencies = Vec::new();
    if let Some(schema) = schema {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(concurrency as u32)
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
        let sql = format!("INSERT INTO {schema}.events (id, params) VALUES ($1, $2)");
        started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (pool, next, sql, body) =
                    (pool.clone(), next.clone(), sql.clone(), body.clone());
                tokio::spawn(async move {
                    let mut l = Vec::new();
                    while (next.fetch_add(1, Ordering::Relaxed) as usize) < requests {
                        let t = Instant::now();
                        sqlx::query(&sql)
                            .bind(uuid::Uuid::now_v7().to_string())
                            .bind(&body)
                            .execute(&pool)
                            .await
                            .expect("insert");
                        l.push(t.elapsed());
                    }
                    l
                })
            })
            .collect();
        for t in tasks {
            latencies.extend(t.await.expect("task"));
        }
    } else {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = url
            .parse::<SqliteConnectOptions>()
            .expect("sqlite url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(concurrency as u32)
            .connect_with(options)
            .await
            .expect("sqlite");
        sqlx::query("CREATE TABLE events (id TEXT PRIMARY KEY, params TEXT NOT NULL)")
            .execute(&pool)
            .await
            .expect("table");
        started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (pool, next, body) = (pool.clone(), next.clone(), body.clone());
                tokio::spawn(async move {
                    let mut l = Vec::new();
                    while (next.fetch_add(1, Ordering::Relaxed) as usize) < requests {
                        let t = Instant::now();
                        sqlx::query("INSERT INTO events (id, params) VALUES (?, ?)")
                            .bind(uuid::Uuid::now_v7().to_string())
                            .bind(&body)
                            .execute(&pool)
                            .await
                            .expect("insert");
                        l.push(t.elapsed());
                    }
                    l
                })
            })
            .collect();
        for t in tasks {
            latencies.extend(t.await.expect("task"));
        }
    }
    summarize(latencies, started.elapsed(), 0)
}

struct Run {
    ok: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn report(name: &str, run: &Run) {
    println!(
        "{name:<48} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
        run.rate,
        run.p50.as_secs_f64() * 1e3,
        run.p99.as_secs_f64() * 1e3,
        run.errors
    );
}

async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// Posts `requests` valid purchases to `url` from `concurrency` workers; latency per request.
async fn load(url: &str, requests: usize, concurrency: usize) -> Run {
    load_many(&[url.to_owned()], requests, concurrency).await
}

/// As [`load`], worker `w` posting to `urls[w % urls.len()]`.
async fn load_many(urls: &[String], requests: usize, concurrency: usize) -> Run {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (http, url, next) = (http.clone(), urls[w % urls.len()].clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < requests {
                let body = json!({
                    "CustomerId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Total": 42.5, "Currency": "EUR",
                    "PurchasedOn": "2026-11-22T10:30:00Z", "Items": ["SKU-1", "SKU-2"],
                });
                let t = Instant::now();
                match http.post(&url).bearer_auth(KEY).json(&body).send().await {
                    Ok(r) if r.status().is_success() => latencies.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    summarize(latencies, started.elapsed(), errors)
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration, errors: usize) -> Run {
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        ok: latencies.len(),
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        errors,
    }
}
