//! Delivery throughput to Service Bus and Event Hubs on the local emulator, each beside a
//! bare `azure_core_amqp` sender pushing messages of the same size to the same entity in the
//! same run (one at a time, as `AmqpSender::send` waits for each settlement, and in batches
//! of 64 as Herald sends them).
//!
//! Herald's figure is end to end: events posted to its API (32 at a time) until every one is
//! stored in the entity. Run with `cargo bench --bench azure` (optionally `-- MESSAGES`).

use std::time::{Duration, Instant};

use azure_core::credentials::Secret;
use azure_core_amqp::message::AmqpMessageBody;
use azure_core_amqp::{
    AmqpClaimsBasedSecurity, AmqpClaimsBasedSecurityApis, AmqpConnection, AmqpConnectionApis,
    AmqpMessage, AmqpSendOptions, AmqpSender, AmqpSenderApis, AmqpSession, AmqpSessionApis,
};
use local_emulator::{Emulator, RunningEmulator};
use serde_json::json;

const KEY: &str = "hk_bench_key_0123456789";
const QUEUE: &str = "herald-events";
const HUB: &str = "herald-hub";

#[tokio::main]
async fn main() {
    let messages: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3000);
    println!("Service Bus and Event Hubs delivery on the local emulator: {messages} messages\n");
    let mut ratios = Vec::new();
    for (kind, entity) in [("service_bus", QUEUE), ("event_hubs", HUB)] {
        let single = bare(entity, messages.min(1000), 1).await;
        println!(
            "{:<58} {single:>8.0} msg/s",
            format!("bare azure_core_amqp sender to {entity}, one at a time")
        );
        let batched = bare(entity, messages, 64).await;
        println!(
            "{:<58} {batched:>8.0} msg/s",
            format!("bare azure_core_amqp sender to {entity}, batches of 64")
        );
        let herald = herald(kind, entity, messages).await;
        println!(
            "{:<58} {herald:>8.0} msg/s",
            format!("Herald end to end to {entity} (API → store → AMQP)")
        );
        ratios.push((entity, herald / batched, herald / single));
    }
    println!("\nratios (same run)");
    for (entity, vs_batched, vs_single) in ratios {
        println!("  {entity:<14} Herald / bare batched sender {vs_batched:>5.2}   Herald / bare one-at-a-time sender {vs_single:>5.2}");
    }
}

async fn emulator() -> RunningEmulator {
    Emulator::builder()
        .amqp_port(0)
        .http_port(0)
        .start()
        .await
        .expect("emulator starts")
}

/// Messages stored in `entity` so far.
fn stored(emu: &RunningEmulator, entity: &str, limit: usize) -> usize {
    if entity == HUB {
        emu.partition_len(HUB, 0) + emu.partition_len(HUB, 1)
    } else {
        emu.peek(entity, limit + 1).len()
    }
}

/// A message the size of Herald's: the demo purchase as JSON with a few properties.
fn message(i: usize) -> AmqpMessage {
    let body = serde_json::to_vec(&json!({
        "CustomerId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Total": i, "Currency": "EUR",
        "PurchasedOn": "2026-11-22T10:30:00Z", "Items": ["SKU-1", "SKU-2"],
        "padding": "x".repeat(400),
    }))
    .expect("json");
    let mut m = AmqpMessage::builder()
        .with_body(AmqpMessageBody::Binary(vec![body]))
        .add_application_property("cloudEvents:type".into(), "contoso_CustomerPurchase")
        .add_application_property("Total".into(), i as i64)
        .build();
    m.set_message_id(format!("msg_{i}"));
    m
}

/// Sends `count` messages to `entity` with a bare sender, `batch` per transfer; msg/s.
async fn bare(entity: &str, count: usize, batch: usize) -> f64 {
    let emu = emulator().await;
    let url: azure_core::http::Url = format!("amqp://127.0.0.1:{}", emu.amqp_addr().port())
        .parse()
        .expect("url");
    let started = Instant::now();
    let conn = AmqpConnection::new();
    conn.open("bench".into(), url.clone(), None)
        .await
        .expect("open");
    let cbs_session = AmqpSession::new();
    cbs_session.begin(&conn, None).await.expect("begin");
    let cbs = AmqpClaimsBasedSecurity::new(cbs_session).expect("cbs");
    cbs.attach().await.expect("cbs attach");
    let audience = format!("{url}{entity}");
    let token = emu.sas_token(&audience, Duration::from_secs(600));
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    cbs.authorize_path(
        audience,
        Some("servicebus.windows.net:sastoken".into()),
        &Secret::new(token),
        expires,
    )
    .await
    .expect("authorized");
    let session = AmqpSession::new();
    session.begin(&conn, None).await.expect("begin");
    let sender = AmqpSender::new();
    sender
        .attach(&session, "bench".into(), entity.to_owned(), None)
        .await
        .expect("attach");
    let mut i = 0;
    while i < count {
        let n = batch.min(count - i);
        if n == 1 {
            sender.send(message(i), None).await.expect("sent");
        } else {
            let sections = (i..i + n)
                .map(|k| AmqpMessage::serialize(&message(k)).expect("encoded"))
                .collect();
            let envelope = AmqpMessage::builder()
                .with_body(AmqpMessageBody::Binary(sections))
                .build();
            let options = AmqpSendOptions {
                message_format: Some(0x8001_3700),
                settled: None,
            };
            sender.send(envelope, Some(options)).await.expect("sent");
        }
        i += n;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    assert_eq!(stored(&emu, entity, count), count, "every message stored");
    let _ = sender.detach().await;
    let _ = conn.close().await;
    emu.shutdown().await;
    rate
}

/// Posts `count` events to a Herald (SQLite store) subscribed to `entity`; msg/s until all
/// are stored in the entity.
async fn herald(kind: &str, entity: &str, count: usize) -> f64 {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_text = format!(
        r#"
api_key = "{KEY}"
[store]
url = "sqlite://{}"
[delivery]
max_in_flight = 512
endpoint_concurrency = 256
[webhooks]
allow_networks = ["127.0.0.0/8"]
"#,
        dir.path().join("herald.db").display()
    );
    let config = herald::config::Config::from_toml(&[&config_text]).expect("config");
    let catalog = herald::server::load_catalog(&config).expect("catalog");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let running = herald::server::start(config, catalog, Some(listener))
        .await
        .expect("Herald starts");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    let r = post(
        "/v1/endpoints",
        json!({"name": "bench", "kind": kind, "connection_string": emu.connection_string(),
               "entity": entity, "max_concurrency": 256}),
    )
    .await
    .expect("endpoint");
    assert_eq!(r.status(), 201);
    let r = post(
        "/v1/subscriptions",
        json!({"event": "contoso_CustomerPurchase", "endpoint": "bench", "amqp": {"properties": ["Total"]}}),
    )
    .await
    .expect("subscription");
    assert_eq!(r.status(), 201);

    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, next, url) = (
            http.clone(),
            next.clone(),
            format!("{base}/v1/events/contoso_CustomerPurchase"),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let body = json!({"CustomerId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Total": 42.5,
                    "Currency": "EUR", "PurchasedOn": "2026-11-22T10:30:00Z", "Items": ["SKU-1", "SKU-2"]});
                let r = http.post(&url).bearer_auth(KEY).json(&body).send().await.expect("posted");
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    let ingest = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored(&emu, entity, count) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let got = stored(&emu, entity, count);
    println!(
        "  (Herald accepted {count} events in {:.2}s; {got} messages stored after {:.2}s)",
        ingest.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    running.stop().await;
    emu.shutdown().await;
    got as f64 / elapsed.as_secs_f64()
}
