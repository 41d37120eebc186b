//! PostgreSQL in earnest: migrations refuse a newer schema, the database going away answers
//! 503 (never a false 202) and Herald recovers, idempotency holds across instances, and a
//! cluster of three Herald processes loses nothing while two of them are SIGKILLed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::store::{open, StoreError, StoreSettings};
use rand::Rng;
use serde_json::json;

use crate::support::process::{post, HeraldProcess};
use crate::support::{pg_url, purchase, wait_for, Receiver, TestApp, ADMIN_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn an_instance_refuses_a_schema_newer_than_it_knows() {
    let future =
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                  VALUES (99990101000000, 'from a newer Herald', TRUE, x'00', 0)";
    // PostgreSQL
    let s = schema();
    let settings = StoreSettings {
        url: pg_url().parse().expect("a postgres:// URL"),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        schema: Some(s.clone()),
        idempotency_window: Duration::from_secs(86_400),
        keys: crate::support::test_keys(),
    };
    drop(open(&settings).await.expect("first start migrates"));
    let pool = sqlx::PgPool::connect(&pg_url()).await.unwrap();
    sqlx::query(
        &future
            .replace("_sqlx_migrations", &format!("{s}._sqlx_migrations"))
            .replace("x'00'", "'\\x00'::bytea"),
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = open(&settings).await.err().expect("refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew(99990101000000)),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this Herald"));
    // SQLite
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let settings = StoreSettings {
        url: url.parse().expect("an sqlite:// URL"),
        ..settings
    };
    drop(open(&settings).await.expect("first start migrates"));
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(future).execute(&pool).await.unwrap();
    pool.close().await;
    assert!(matches!(
        open(&settings).await.err(),
        Some(StoreError::SchemaTooNew(_))
    ));
}

/// A TCP proxy to PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (target, is_cut, handles) = (target.to_owned(), cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "gone"
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                handles.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_database_goes_away_ingestion_answers_503_and_recovers_when_it_returns() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = pg_url().replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let app = TestApp::builder()
        .config(&format!(
            "[store]\nurl = \"{url}\"\nschema = \"{}\"\nacquire_timeout = \"1s\"",
            schema()
        ))
        .build()
        .await;
    app.send_purchase(1.0).await;
    proxy.cut();
    for _ in 0..3 {
        let r = app
            .req(reqwest::Method::POST, "/v1/events/contoso_CustomerPurchase")
            .json(&purchase(2.0))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            503,
            "never a false 202 while the database is away"
        );
        assert_eq!(r.headers()["retry-after"], "5");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
            "unavailable"
        );
    }
    assert_eq!(
        reqwest::get(format!("{}/readyz", app.url))
            .await
            .unwrap()
            .status(),
        503
    );
    proxy.restore();
    wait_for(Duration::from_secs(20), "ingestion to recover", || async {
        let r = app
            .req(reqwest::Method::POST, "/v1/events/contoso_CustomerPurchase")
            .json(&purchase(3.0))
            .send()
            .await
            .ok()?;
        (r.status() == 202).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_three_loses_nothing_when_two_instances_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nschema = \"{}\"\n[webhooks]\nallow_networks = [\"127.0.0.0/8\"]\ntimeout = \"1s\"\n\
             [delivery]\nretry_schedule = [\"100ms\", \"300ms\"]\npoll_interval = \"200ms\"\nlease = \"2s\"\n",
            schema()
        ),
    )
    .unwrap();
    let env = [("HERALD_STORE_URL", pg_url())];
    let receiver = Receiver::start().await;
    let start = |i: usize, run: u32| {
        HeraldProcess::start(
            &config,
            dir.path().join(format!("herald-{i}-{run}.log")),
            &env,
        )
    };
    let mut nodes: Vec<HeraldProcess> = (0..3).map(|i| start(i, 0)).collect();
    let http = reqwest::Client::new();
    let (status, body) = post(
        &http,
        &nodes[0].url,
        "/v1/endpoints",
        json!({"name": "r", "kind": "webhook", "url": receiver.url(), "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        post(
            &http,
            &nodes[1].url,
            "/v1/subscriptions",
            json!({"event": "contoso_CustomerPurchase", "endpoint": "r"})
        )
        .await
        .0,
        201
    );

    // Every instance learns of the subscription (LISTEN/NOTIFY) before the load starts.
    // (Probes accepted before an instance knew the subscription have no delivery to make.)
    subscribed_everywhere(&http, &nodes).await;

    // An idempotency key used on one instance is honoured on another.
    let keyed = |url: &str| {
        http.post(format!("{url}/v1/events/contoso_CustomerPurchase"))
            .bearer_auth(ADMIN_KEY)
            .header("Idempotency-Key", "k")
            .json(&purchase(9.0))
            .send()
    };
    let first: serde_json::Value = keyed(&nodes[0].url).await.unwrap().json().await.unwrap();
    let second: serde_json::Value = keyed(&nodes[2].url).await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], second["id"]);

    // Load over all three, while instances 0 and 1 are killed at random moments and restarted.
    let urls: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(
        nodes.iter().map(|n| Some(n.url.clone())).collect(),
    ));
    let accepted = Arc::new(Mutex::new(vec![first["id"].as_str().unwrap().to_owned()]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (http, urls, accepted, stop) =
            (http.clone(), urls.clone(), accepted.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..400usize {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(url) = urls.lock().unwrap()[(w + i) % 3].clone() else {
                    continue;
                };
                if let (202, body) = post(
                    &http,
                    &url,
                    "/v1/events/contoso_CustomerPurchase",
                    purchase(i as f64),
                )
                .await
                {
                    accepted
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_owned());
                }
            }
        }));
    }
    let mut kills = Vec::new();
    for victim in [0usize, 1] {
        let wait = rand::rng().random_range(200..700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        urls.lock().unwrap()[victim] = None;
        nodes[victim].kill();
        kills.push(format!("instance {victim} after {wait} ms"));
        nodes[victim] = start(victim, 1);
        urls.lock().unwrap()[victim] = Some(nodes[victim].url.clone());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = receiver.event_ids();
        let missing: Vec<&String> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let (_, event) = crate::support::process::get(
                &http,
                &nodes[2].url,
                &format!("/v1/events/{}", missing[0]),
            )
            .await;
            panic!(
                "{} of {} accepted events never arrived; the first: {event}",
                missing.len(),
                accepted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing stuck: no delivery is left pending or in flight.
    let url = nodes[2].url.clone();
    wait_for(
        Duration::from_secs(30),
        "no pending or in-flight delivery",
        || async {
            for status in ["pending", "in_flight"] {
                let r = http
                    .get(format!("{url}/v1/deliveries?status={status}"))
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .ok()?;
                if !r
                    .json::<serde_json::Value>()
                    .await
                    .ok()?
                    .as_array()?
                    .is_empty()
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let received = receiver.received();
    let unique: std::collections::HashSet<String> =
        received.iter().map(|r| r.header("webhook-id")).collect();
    println!(
        "cluster test: killed {}; {} events accepted, all delivered; {} requests, {} duplicates (same webhook-id)",
        kills.join(", "),
        accepted.len(),
        received.len(),
        received.len() - unique.len()
    );
}

/// The most arrivals within any one second (a window starting at each arrival).
fn busiest_second(at: &[std::time::Instant]) -> usize {
    let mut at = at.to_vec();
    at.sort();
    let mut best = 0;
    let mut end = 0;
    for start in 0..at.len() {
        while end < at.len() && at[end] < at[start] + Duration::from_secs(1) {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

// Several threads: the receiver's clock must not wait for the test's own work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_hold_an_endpoint_to_its_rate_limit_together() {
    const LIMIT: usize = 200;
    const EVENTS: usize = 4_400;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nschema = \"{}\"\n[webhooks]\nallow_networks = [\"127.0.0.0/8\"]\n\
             [delivery]\nretry_schedule = [\"100ms\"]\npoll_interval = \"100ms\"\n",
            schema()
        ),
    )
    .unwrap();
    let env = [
        ("HERALD_STORE_URL", pg_url()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let receiver = Receiver::start().await;
    let nodes: Vec<HeraldProcess> = (0..3)
        .map(|i| HeraldProcess::start(&config, dir.path().join(format!("herald-{i}.log")), &env))
        .collect();
    let http = reqwest::Client::new();
    let (status, body) = post(
        &http,
        &nodes[0].url,
        "/v1/endpoints",
        json!({"name": "limited", "kind": "webhook", "url": receiver.url(), "secret": SECRET,
               "rate_limit": {"per_second": LIMIT}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &http,
        &nodes[1].url,
        "/v1/subscriptions",
        json!({"event": "contoso_CustomerPurchase", "endpoint": "limited"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    subscribed_everywhere(&http, &nodes).await;
    // Far more than the limit allows at once, spread over the three instances.
    let items: Vec<_> = (0..EVENTS)
        .map(|i| json!({"event": "contoso_CustomerPurchase", "params": purchase(i as f64)}))
        .collect();
    for (i, chunk) in items.chunks(500).enumerate() {
        let (status, body) = post(
            &http,
            &nodes[i % 3].url,
            "/v1/events:batch",
            json!({ "events": chunk }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let expected = EVENTS + 3;
    wait_for(Duration::from_secs(60), "every delivery", || async {
        (receiver.count() >= expected).then_some(())
    })
    .await;
    // Sent at least once each: nothing lost on the way.
    assert_eq!(receiver.event_ids().len(), expected);
    let got = receiver.received();
    let times: Vec<std::time::Instant> = got.iter().map(|r| r.at).collect();
    let busiest = busiest_second(&times);
    let span = times
        .iter()
        .max()
        .unwrap()
        .duration_since(*times.iter().min().unwrap());
    let mean = got.len() as f64 / span.as_secs_f64();
    println!(
        "rate limit {LIMIT}/s over 3 instances: {} deliveries in {:.1} s, mean {mean:.1}/s, busiest second {busiest}",
        got.len(),
        span.as_secs_f64()
    );
    // Never more than the limit and 10 % in any second, whichever instance sent.
    assert!(
        busiest <= LIMIT + LIMIT / 10,
        "{busiest} deliveries in one second, limit {LIMIT}"
    );
    for (i, node) in nodes.iter().enumerate() {
        let log = std::fs::read_to_string(&node.log).unwrap_or_default();
        assert!(!log.contains("panicked"), "instance {i}: {log}");
    }
}

/// Waits until every instance routes a purchase to one subscription (it heard of it by
/// LISTEN/NOTIFY); the probes sent meanwhile are events too.
async fn subscribed_everywhere(http: &reqwest::Client, nodes: &[HeraldProcess]) {
    for node in nodes {
        wait_for(
            Duration::from_secs(10),
            "the subscription to reach every instance",
            || async {
                let (status, body) = post(
                    http,
                    &node.url,
                    "/v1/events/contoso_CustomerPurchase",
                    purchase(0.5),
                )
                .await;
                (status == 202 && body["deliveries"] == 1).then_some(())
            },
        )
        .await;
    }
}
