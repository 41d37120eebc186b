//! Crash safety: Herald as a child process under load, killed with SIGKILL, restarted on the
//! same data. Every event that got a 202 must reach the receiver. Also checks that the debug
//! logs of both runs hold neither the API key nor the webhook secret.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::json;

use crate::support::process::{post, HeraldProcess};
use crate::support::{purchase, wait_for, Receiver, ADMIN_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn start_herald(dir: &Path, run: u32) -> HeraldProcess {
    HeraldProcess::start(
        &dir.join("herald.toml"),
        dir.join(format!("herald-{run}.log")),
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_is_delivered_after_a_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{}"
[webhooks]
allow_networks = ["127.0.0.0/8"]
[delivery]
retry_schedule = ["100ms", "300ms"]
poll_interval = "100ms"
"#,
            dir.path().join("herald.db").display()
        ),
    )
    .unwrap();
    let receiver = Receiver::start().await;
    let mut herald = start_herald(dir.path(), 1);
    let http = reqwest::Client::new();
    let (status, body) = post(
        &http,
        &herald.url,
        "/v1/endpoints",
        json!({"name": "r", "kind": "webhook", "url": receiver.url(), "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post(
        &http,
        &herald.url,
        "/v1/subscriptions",
        json!({"event": "contoso_CustomerPurchase", "endpoint": "r"}),
    )
    .await;
    assert_eq!(status, 201);

    // Load: 8 senders, each at most 500 events, stopping at the first failed request.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (http, url, accepted, stop) = (
            http.clone(),
            herald.url.clone(),
            accepted.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in 0..500 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match post(
                    &http,
                    &url,
                    "/v1/events/contoso_CustomerPurchase",
                    purchase(f64::from(i)),
                )
                .await
                {
                    (202, body) => accepted
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_owned()),
                    _ => break,
                }
            }
        }));
    }
    let wait_ms = rand::rng().random_range(300..900);
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    herald.kill();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        !accepted.is_empty(),
        "the load got some events accepted before the kill"
    );

    let mut restarted = start_herald(dir.path(), 2);
    let missing = wait_for(
        Duration::from_secs(60),
        "every accepted event at the receiver",
        || async {
            let got = receiver.event_ids();
            let missing = accepted.iter().filter(|id| !got.contains(*id)).count();
            (missing == 0).then_some(missing)
        },
    )
    .await;
    assert_eq!(missing, 0);
    let deliveries = receiver.received();
    let unique: std::collections::HashSet<String> =
        deliveries.iter().map(|r| r.header("webhook-id")).collect();
    println!(
        "crash test: killed after {wait_ms} ms; {} events accepted, all delivered; {} requests, {} duplicates (same webhook-id)",
        accepted.len(),
        deliveries.len(),
        deliveries.len() - unique.len()
    );
    restarted.kill();

    for log in [&herald.log, &restarted.log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("DEBUG"), "the log was written at debug level");
        assert!(
            !text.contains(ADMIN_KEY),
            "the API key is in {}",
            log.display()
        );
        assert!(
            !text.contains(&SECRET[6..]),
            "the webhook secret is in {}",
            log.display()
        );
    }
}
