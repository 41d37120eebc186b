//! Herald's performance figures, each beside a baseline measured in the same run:
//!
//! - ingest: `POST /v1/events/{name}` at a fixed concurrency with durable (fsync'd, group
//!   committed) SQLite writes, against a bare axum handler that parses the same JSON and
//!   answers 202 without storing anything;
//! - delivery: events accepted → signed webhooks received, against the same client posting
//!   straight to the bare receiver.
//!
//! Run with `cargo bench --bench throughput` (optionally `-- REQUESTS CONCURRENCY`).

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

    // Herald: SQLite on disk, synchronous=FULL, one webhook subscription.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = herald::config::Config::from_toml(&[&format!(
        r#"
api_key = "{KEY}"
[store]
url = "sqlite://{}"
[webhooks]
allow_networks = ["127.0.0.0/8"]
[delivery]
max_in_flight = 256
endpoint_concurrency = 64
"#,
        dir.path().join("herald.db").display()
    )])
    .expect("bench configuration");
    let catalog = herald::server::load_catalog(&config).expect("catalog");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let running = herald::server::start(config, catalog, Some(listener))
        .await
        .expect("Herald starts");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let secret = herald::destinations::webhook::Secret::generate().expose();
    let endpoint = json!({"name": "bench", "kind": "webhook", "url": format!("http://{receiver}/hook"), "secret": secret});
    let r = http
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(KEY)
        .json(&endpoint)
        .send()
        .await
        .expect("endpoint");
    assert_eq!(r.status(), 201);
    let sub = json!({"event": "contoso_CustomerPurchase", "endpoint": "bench"});
    let r = http
        .post(format!("{base}/v1/subscriptions"))
        .bearer_auth(KEY)
        .json(&sub)
        .send()
        .await
        .expect("subscription");
    assert_eq!(r.status(), 201);

    let started = Instant::now();
    let herald_run = load(
        &format!("{base}/v1/events/contoso_CustomerPurchase"),
        requests,
        concurrency,
    )
    .await;
    report("Herald ingest (durable SQLite, group commit)", &herald_run);
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::Relaxed) < requests as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    let e2e = started.elapsed();
    let e2e_rate = delivered as f64 / e2e.as_secs_f64();
    println!(
        "{:<48} {delivered} webhooks in {:.2} s = {e2e_rate:.0} deliveries/s (signed, recorded)",
        "Herald end-to-end delivery",
        e2e.as_secs_f64()
    );

    println!("\nratios");
    println!(
        "  ingest throughput / bare axum:            {:.2}",
        herald_run.rate / bare_run.rate
    );
    println!(
        "  ingest p50 latency / bare axum p50:       {:.1}x",
        herald_run.p50.as_secs_f64() / bare_run.p50.as_secs_f64()
    );
    println!(
        "  delivery throughput / direct posts:       {:.2}",
        e2e_rate / direct.rate
    );
    running.stop().await;
}

struct Run {
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
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next) = (http.clone(), url.to_owned(), next.clone());
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
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        errors,
    }
}
