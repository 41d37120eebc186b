//! Endpoint health over real sockets: a failing endpoint's deliveries wait without spending
//! attempts while one probe at a time is sent, and drain in order after recovery; an
//! endpoint failing past its budget is disabled, the operational events reach an operator's
//! webhook and a Service Bus queue of the local emulator, and its deliveries are held until
//! it is enabled; an operator endpoint that fails makes no loop.

use std::collections::HashSet;
use std::time::Duration;

use local_emulator::Emulator;
use serde_json::{json, Value};

use crate::support::{wait_for, Receiver, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Creates a webhook endpoint to `url` (one send at a time) subscribed to `event`, or to
/// Herald's whole `Operations` category when `event` is `None`; returns its id.
async fn webhook(app: &TestApp, name: &str, url: &str, event: Option<&str>) -> String {
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": name, "kind": "webhook", "url": url, "secret": SECRET, "timeout": "5s", "max_concurrency": 1}),
        )
        .await;
    assert_eq!(status, 201, "endpoint created: {ep}");
    let id = ep["endpoint"]["id"].as_str().unwrap().to_owned();
    let sub = match event {
        Some(e) => json!({"name": name, "event": e, "endpoint": id}),
        None => {
            json!({"name": name, "category": "Operations", "solution": "herald", "endpoint": id})
        }
    };
    let (status, body) = app.post("/v1/subscriptions", &sub).await;
    assert_eq!(status, 201, "subscription created: {body}");
    id
}

async fn health(app: &TestApp, endpoint: &str) -> Value {
    let (status, h) = app.get(&format!("/v1/endpoints/{endpoint}/health")).await;
    assert_eq!(status, 200, "{h}");
    h
}

async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, list) = app.get(&format!("/v1/deliveries?{query}")).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

/// The event ids of what `receiver` got, first arrivals only, in order.
fn arrivals(receiver: &Receiver) -> Vec<String> {
    let mut seen = HashSet::new();
    receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

#[tokio::test]
async fn a_failing_endpoint_is_probed_one_delivery_at_a_time_and_what_waited_drains_in_order() {
    let app = TestApp::builder()
        .config(
            r#"[endpoint_health]
consecutive_failures = 3
probe_interval = "250ms"
probe_interval_max = "250ms"
disable_after = "0s"
[delivery]
retry_schedule = ["50ms"]
# One lease at a time per endpoint, so the order the store hands out is the order sent.
endpoint_concurrency = 1"#,
        )
        .build()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    receiver.delay(Duration::from_millis(60));
    let endpoint = webhook(
        &app,
        "flaky",
        &receiver.url(),
        Some("contoso_CustomerPurchase"),
    )
    .await;
    for i in 0..3 {
        app.send_purchase(f64::from(i)).await;
    }
    wait_for(Duration::from_secs(10), "the endpoint to fail", || async {
        let h = health(&app, &endpoint).await;
        matches!(h["state"].as_str(), Some("failing" | "probing")).then_some(())
    })
    .await;
    let h = health(&app, &endpoint).await;
    assert!(h["consecutive_failures"].as_u64() >= Some(3), "{h}");
    assert_eq!(h["last_error"], "receiver answered 503", "{h}");

    // Deliveries that arrive now wait: only probes go out, one at a time.
    let mut waiting = Vec::new();
    for i in 0..12 {
        waiting.push(app.send_purchase(f64::from(10 + i)).await);
    }
    let before = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probes = receiver.received().len() - before;
    assert!(
        (1..=8).contains(&probes),
        "about one probe per 250 ms in 1.5 s, got {probes}"
    );
    let all = deliveries(&app, &format!("endpoint_id={endpoint}")).await;
    let attempts: u64 = all.iter().map(|d| d["attempts"].as_u64().unwrap()).sum();
    let requests = receiver.received().len();
    // Every attempt recorded is a request the receiver got (the last probe may still be on
    // its way to the record): waiting spends none.
    assert!(
        (requests.saturating_sub(1)..=requests).contains(&(attempts as usize)),
        "{attempts} attempts recorded for {requests} requests"
    );
    let untouched: Vec<String> = waiting
        .iter()
        .filter(|id| {
            all.iter()
                .any(|d| d["event_id"] == id.as_str() && d["attempts"] == 0)
        })
        .cloned()
        .collect();
    assert!(untouched.len() >= 4, "most waited untouched: {all:?}");
    let waited = all
        .iter()
        .find(|d| d["attempts"] == 0)
        .expect("a waiting delivery");
    assert_eq!(waited["status"], "pending", "{waited}");

    receiver.answer(204);
    wait_for(
        Duration::from_secs(15),
        "every delivery to succeed",
        || async {
            let all = deliveries(&app, &format!("endpoint_id={endpoint}")).await;
            (all.len() == 15 && all.iter().all(|d| d["status"] == "succeeded")).then_some(())
        },
    )
    .await;
    assert_eq!(health(&app, &endpoint).await["state"], "healthy");
    // What never went out while the endpoint failed arrives in the order it was created.
    let order: Vec<String> = arrivals(&receiver)
        .into_iter()
        .filter(|id| untouched.contains(id))
        .collect();
    assert_eq!(order, untouched);
    // The probes never overlapped: one request at a time reached the receiver.
    assert_eq!(receiver.max_concurrent(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_past_its_budget_is_disabled_announced_and_its_deliveries_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sb = dir.path().join("sb.json");
    std::fs::write(
        &sb,
        r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"ops"}]}]}}"#,
    )
    .unwrap();
    let emu = Emulator::builder()
        .amqp_port(0)
        .http_port(0)
        .config_file(sb)
        .start()
        .await
        .expect("emulator starts");
    let app = TestApp::builder()
        .config(
            r#"[endpoint_health]
consecutive_failures = 2
probe_interval = "100ms"
probe_interval_max = "200ms"
disable_after = "1500ms"
[delivery]
endpoint_concurrency = 1"#,
        )
        .build()
        .await;
    let operator = Receiver::start().await;
    webhook(&app, "operator", &operator.url(), None).await;
    let (status, queue) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "ops-queue", "kind": "service_bus", "connection_string": emu.connection_string(), "entity": "ops"}),
        )
        .await;
    assert_eq!(status, 201, "{queue}");
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "ops-queue", "event": "herald_EndpointDisabled", "endpoint": queue["endpoint"]["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let endpoint = webhook(
        &app,
        "down",
        &receiver.url(),
        Some("contoso_CustomerPurchase"),
    )
    .await;
    let mut ids = vec![app.send_purchase(1.0).await, app.send_purchase(2.0).await];

    let h = wait_for(
        Duration::from_secs(15),
        "the endpoint to be disabled",
        || async {
            let h = health(&app, &endpoint).await;
            (h["state"] == "disabled").then_some(h)
        },
    )
    .await;
    assert!(
        h["disabled_reason"].as_str().unwrap().contains("1s 500ms"),
        "{h}"
    );
    // The operator's webhook hears of it: the failure budget's steps, then the disabling.
    let told = wait_for(
        Duration::from_secs(10),
        "the operational events",
        || async {
            let got = operator.received();
            got.iter()
                .any(|r| r.json()["type"] == "herald_EndpointDisabled")
                .then_some(got)
        },
    )
    .await;
    let disabled = told
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "herald_EndpointDisabled")
        .unwrap();
    assert_eq!(disabled["data"]["EndpointId"], endpoint.as_str());
    assert_eq!(disabled["data"]["EndpointName"], "down");
    assert_eq!(disabled["source"], "/herald/herald");
    let percents: Vec<i64> = told
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "herald_EndpointFailing")
        .map(|e| e["data"]["BudgetPercent"].as_i64().unwrap())
        .collect();
    assert!(
        percents.contains(&100),
        "budget steps announced: {percents:?}"
    );
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    // …and so does the Service Bus queue.
    wait_for(
        Duration::from_secs(10),
        "the event on the queue",
        || async {
            emu.peek("ops", 10)
                .iter()
                .any(|m| m.msg.system.subject.as_deref() == Some("herald_EndpointDisabled"))
                .then_some(())
        },
    )
    .await;

    // What comes while it is disabled is held, not sent and not dropped.
    ids.push(app.send_purchase(3.0).await);
    ids.push(app.send_purchase(4.0).await);
    let requests = receiver.received().len();
    wait_for(
        Duration::from_secs(10),
        "all four deliveries held",
        || async {
            let held = deliveries(&app, &format!("endpoint_id={endpoint}&status=held")).await;
            (held.len() == 4).then_some(())
        },
    )
    .await;
    assert_eq!(receiver.received().len(), requests, "nothing was sent");

    receiver.answer(204);
    let (status, enabled) = app
        .post(&format!("/v1/endpoints/{endpoint}/enable"), &json!({}))
        .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["resumed"], 4);
    assert_eq!(enabled["health"]["state"], "healthy");
    wait_for(Duration::from_secs(10), "the held deliveries", || async {
        let got = arrivals(&receiver);
        ids.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
    let after: Vec<String> = arrivals(&receiver)
        .into_iter()
        .filter(|id| ids[2..].contains(id))
        .collect();
    assert_eq!(
        after,
        ids[2..],
        "held deliveries go out in the order they were created"
    );
    app.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn an_operator_endpoint_that_fails_makes_no_loop() {
    let app = TestApp::builder()
        .config("[endpoint_health]\nconsecutive_failures = 1\ndisable_after = \"0s\"")
        .build()
        .await;
    let operator = Receiver::start().await;
    operator.answer(400);
    let ops = webhook(&app, "operator", &operator.url(), None).await;
    let receiver = Receiver::start().await;
    receiver.answer(400);
    webhook(
        &app,
        "rejects",
        &receiver.url(),
        Some("contoso_CustomerPurchase"),
    )
    .await;
    app.send_purchase(1.0).await;
    let dead = wait_for(
        Duration::from_secs(10),
        "the operator's delivery to be dead-lettered",
        || async {
            let dead = deliveries(&app, &format!("endpoint_id={ops}&status=dead_lettered")).await;
            (!dead.is_empty()).then_some(dead)
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    let told = operator.received();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].json()["type"], "herald_DeliveryDeadLettered");
    assert_eq!(told[0].json()["data"]["Reason"], "receiver answered 400");
    // Its own dead letter raises nothing more. Proved by what comes later: a second purchase
    // dead-lettered at the receiver raises a second notice, which reaches the operator after
    // any notice of the operator's own first dead letter would have (that one would have been
    // due earlier, and the operator takes one delivery at a time).
    app.send_purchase(2.0).await;
    wait_for(
        Duration::from_secs(10),
        "the second purchase's notice to be dead-lettered",
        || async {
            let dead = deliveries(&app, &format!("endpoint_id={ops}&status=dead_lettered")).await;
            (dead.len() >= 2).then_some(())
        },
    )
    .await;
    let told = operator.received();
    let about: Vec<Value> = told
        .iter()
        .map(|r| r.json()["data"]["EndpointName"].clone())
        .collect();
    assert_eq!(
        about,
        [json!("rejects"), json!("rejects")],
        "no notice about the operator's own dead letters"
    );
    assert_eq!(
        deliveries(&app, &format!("endpoint_id={ops}")).await.len(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn an_operator_disables_and_enables_an_endpoint_and_replays_what_was_held_by_time() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let endpoint = webhook(
        &app,
        "paused",
        &receiver.url(),
        Some("contoso_CustomerPurchase"),
    )
    .await;
    let (status, h) = app
        .post(
            &format!("/v1/endpoints/{endpoint}/disable"),
            &json!({"reason": "receiver maintenance"}),
        )
        .await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (h["state"].as_str(), h["disabled_reason"].as_str()),
        (Some("disabled"), Some("receiver maintenance"))
    );
    let first = app.send_purchase(1.0).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = time::OffsetDateTime::now_utc();
    let later = [app.send_purchase(2.0).await, app.send_purchase(3.0).await];
    wait_for(Duration::from_secs(10), "three held deliveries", || async {
        let held = deliveries(&app, &format!("endpoint_id={endpoint}&status=held")).await;
        (held.len() == 3).then_some(())
    })
    .await;
    let (status, enabled) = app
        .post(
            &format!("/v1/endpoints/{endpoint}/enable"),
            &json!({"held": "keep"}),
        )
        .await;
    assert_eq!(
        (status, enabled["resumed"].as_u64()),
        (200, Some(0)),
        "{enabled}"
    );
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (status, replayed) = app
        .post(
            "/v1/dead-letters/replay",
            &json!({"status": "held", "endpoint_id": endpoint, "from": fmt(from)}),
        )
        .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (200, Some(2)),
        "{replayed}"
    );
    wait_for(
        Duration::from_secs(10),
        "the replayed deliveries",
        || async {
            let got = arrivals(&receiver);
            later.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    assert!(!arrivals(&receiver).contains(&first));
    assert_eq!(
        deliveries(&app, &format!("endpoint_id={endpoint}&status=held"))
            .await
            .len(),
        1
    );
    // Bad input is named.
    let (status, err) = app
        .post(
            &format!("/v1/endpoints/{endpoint}/enable"),
            &json!({"held": "later"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = app
        .post(
            &format!("/v1/endpoints/{endpoint}/disable"),
            &json!({"reason": " "}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("reason"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn only_herald_sends_its_operational_events() {
    let app = TestApp::start().await;
    let (status, body) = app
        .post(
            "/v1/events/herald_EndpointDisabled",
            &json!({"EndpointId": "ep_x", "EndpointName": "x", "Reason": "forged"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // They are in the catalog, to subscribe to.
    let (status, catalog) = app.get("/v1/catalog").await;
    assert_eq!(status, 200);
    assert!(
        catalog.to_string().contains("herald_DeliveryDeadLettered"),
        "{catalog}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_endpoint_then_lowers_its_rate() {
    let app = TestApp::builder()
        .config("[endpoint_health]\nrate_after_429 = 5.0\nslow_for = \"30s\"")
        .build()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_with(429, &[("retry-after", "1")]);
    let endpoint = webhook(
        &app,
        "busy",
        &receiver.url(),
        Some("contoso_CustomerPurchase"),
    )
    .await;
    app.send_purchase(0.0).await;
    let refused = wait_for(Duration::from_secs(10), "the 429", || async {
        receiver.received().first().map(|r| r.at)
    })
    .await;
    receiver.answer(204);
    let mut ids = Vec::new();
    for i in 0..15 {
        ids.push(app.send_purchase(f64::from(1 + i)).await);
    }
    wait_for(Duration::from_secs(20), "every event", || async {
        let got = arrivals(&receiver);
        ids.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
    let later: Vec<std::time::Instant> = receiver.received()[1..].iter().map(|r| r.at).collect();
    let first = *later.iter().min().unwrap();
    let last = *later.iter().max().unwrap();
    // Nothing before Retry-After…
    assert!(
        first.duration_since(refused) >= Duration::from_millis(950),
        "the next send came {:?} after the 429",
        first.duration_since(refused)
    );
    // …then 5 per second: 16 deliveries take three seconds at least, where unthrottled
    // they would all arrive within a moment.
    assert!(
        last.duration_since(first) >= Duration::from_millis(2_800),
        "16 deliveries in {:?}",
        last.duration_since(first)
    );
    let (status, view) = app.get(&format!("/v1/endpoints/{endpoint}")).await;
    assert_eq!(status, 200, "{view}");
    app.stop().await;
}
