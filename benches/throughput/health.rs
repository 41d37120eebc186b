//! Endpoint health and flow control under load: end-to-end deliveries to a healthy endpoint
//! while another endpoint is failing with 10,000 deliveries waiting, beside the same run's
//! figure without it; and how close three instances on one PostgreSQL keep one endpoint to
//! its rate limit (mean, and the busiest second).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::Receiver;
use crate::{wrk, Table, CONNECTIONS, EVENT, PATIENCE};

/// Deliveries waiting at the failing endpoint.
const WAITING: usize = 10_000;

/// `n` events of `name` in batches of 1,000; their ids.
async fn send_batches(h: &Herald, name: &str, params: Value, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let size = left.min(1000);
        let items: Vec<Value> = (0..size)
            .map(|_| json!({"event": name, "params": params}))
            .collect();
        let answer = h.post("/v1/events:batch", json!({ "events": items })).await;
        for r in answer.as_array().expect("batch results") {
            ids.push(r["id"].as_str().expect("stored").to_owned());
        }
        left -= size;
    }
    ids
}

/// End to end to a healthy endpoint beside one that fails with [`WAITING`] deliveries
/// waiting; `healthy_e2e` is the same run's end to end without it.
pub async fn beside_failing(
    t: &mut Table,
    store: &StoreAt,
    receiver: &Receiver,
    load_for: Duration,
    healthy_e2e: f64,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Herald::start(dir.path(), store);
    // Nothing listens there: every attempt is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let secret = herald::destinations::webhook::Secret::generate().expose();
    let down = h
        .post(
            "/v1/endpoints",
            json!({"name": "down", "kind": "webhook", "url": format!("http://{closed}/hook"), "secret": secret}),
        )
        .await;
    let down_id = down["endpoint"]["id"].as_str().expect("id").to_owned();
    h.post(
        "/v1/subscriptions",
        json!({"name": "down", "event": "contoso_VendorPaymentPosted", "endpoint": "down"}),
    )
    .await;
    let payment = json!({"VendorId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Amount": 10.0,
                         "PaymentReference": "bench", "PostedOn": "2026-11-22T10:30:00Z"});
    send_batches(&h, "contoso_VendorPaymentPosted", payment, WAITING).await;
    let http = reqwest::Client::new();
    let health_url = h.url(&format!("/v1/endpoints/{down_id}/health"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view: Value = http
            .get(&health_url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("health")
            .json()
            .await
            .unwrap_or_default();
        if matches!(view["state"].as_str(), Some("failing" | "probing")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint never went failing: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.subscribe(receiver.addr, 1).await;
    let before = receiver.received();
    let started = Instant::now();
    let load = wrk::post(&h.url(EVENT), KEY, CONNECTIONS, load_for);
    let expected = load.ok;
    let e2e = match receiver.wait_for(before + expected, PATIENCE).await {
        Some(at) => expected as f64 / (at - started).as_secs_f64(),
        None => (receiver.received() - before) as f64 / started.elapsed().as_secs_f64(),
    };
    let rss = h.memory().0;
    t.rate(
        &format!("SQLite end to end beside a failing endpoint with {WAITING} deliveries waiting / the same without it"),
        e2e,
        "deliveries/s",
        healthy_e2e,
        rss,
    );
    let deliveries: Value = http
        .get(h.url(&format!("/v1/deliveries?endpoint_id={down_id}&limit=1000")))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .unwrap_or_default();
    let spent: u64 = deliveries
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["attempts"].as_u64()).sum())
        .unwrap_or(0);
    t.line(format!(
        "| the failing endpoint meanwhile | {spent} attempts spent by its newest 1,000 waiting deliveries (one probe at a time) | | |"
    ));
    h.stop();
}

/// Three instances on one PostgreSQL database, one endpoint limited to `limit` deliveries a
/// second: the mean rate it received and its busiest second, beside the limit.
pub async fn cluster_rate(t: &mut Table, store: &StoreAt, receiver: &Receiver, limit: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes: Vec<Herald> = (0..3).map(|_| Herald::start(dir.path(), store)).collect();
    let secret = herald::destinations::webhook::Secret::generate().expose();
    nodes[0]
        .post(
            "/v1/endpoints",
            json!({"name": "limited", "kind": "webhook", "url": format!("http://{}/hook/limited", receiver.addr),
                   "secret": secret, "rate_limit": {"per_second": limit}}),
        )
        .await;
    nodes[0]
        .post(
            "/v1/subscriptions",
            json!({"name": "limited", "event": "contoso_CustomerPurchase", "endpoint": "limited"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiver.probe(true);
    let events = limit as usize * 20;
    let purchase: Value = serde_json::from_str(wrk::PURCHASE).expect("purchase");
    let mut ids = Vec::with_capacity(events);
    for (i, node) in nodes.iter().enumerate() {
        let share = events / 3 + usize::from(i < events % 3);
        ids.extend(send_batches(node, "contoso_CustomerPurchase", purchase.clone(), share).await);
    }
    let deadline = Instant::now() + PATIENCE;
    let mut arrivals: Vec<Instant> = Vec::new();
    while Instant::now() < deadline {
        arrivals = ids.iter().filter_map(|id| receiver.arrival(id)).collect();
        if arrivals.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    receiver.probe(false);
    arrivals.sort();
    let span = arrivals
        .last()
        .zip(arrivals.first())
        .map_or(Duration::ZERO, |(l, f)| *l - *f);
    let mean = arrivals.len() as f64 / span.as_secs_f64().max(1e-9);
    let mut busiest = 0;
    let mut end = 0;
    for start in 0..arrivals.len() {
        while end < arrivals.len() && arrivals[end] < arrivals[start] + Duration::from_secs(1) {
            end += 1;
        }
        busiest = busiest.max(end - start);
    }
    let rss = nodes.iter().map(|h| h.memory().0).fold(0.0, f64::max);
    let limit = f64::from(limit);
    t.rate(
        &format!("PostgreSQL ×3 instances, one endpoint limited to {limit:.0}/s: mean rate received ({} deliveries) / the limit", arrivals.len()),
        mean,
        "deliveries/s",
        limit,
        rss,
    );
    t.rate(
        "… its busiest second / the limit (at most 1.1× is allowed)",
        busiest as f64,
        "deliveries",
        limit,
        rss,
    );
    for h in nodes {
        h.stop();
    }
}
