//! Retention end to end, with windows shortened to seconds by configuration: what succeeded
//! goes (and the API says "pruned", not "not found"), dead letters stay for their longer window
//! and can be replayed, a retrying delivery stays however old, idempotency keys expire, and
//! `/metrics` and `herald store stats` show what the store holds and what pruning removed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{purchase, wait_for, Receiver, TestApp};

const RETENTION: &str = r#"
[retention]
succeeded = "1s"
dead_lettered = "6s"
events = "1s"
idempotency = "2s"
interval = "100ms"
[delivery]
retry_schedule = ["1h"]
"#;

fn payment(reference: &str) -> Value {
    json!({"VendorId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Amount": 99.99,
           "PaymentReference": reference, "PostedOn": "2026-11-22T10:30:00Z"})
}

/// The deliveries of event `id`.
async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

async fn status_of(app: &TestApp, path: &str) -> (u16, Value) {
    app.get(path).await
}

#[tokio::test]
async fn finished_work_expires_by_policy_and_what_is_still_going_stays() {
    let ok = Receiver::start().await;
    let refusing = Receiver::start().await;
    refusing.answer(400);
    let down = Receiver::start().await;
    down.answer(503);
    let app = TestApp::builder().config(RETENTION).build().await;
    let (ok_ep, _) = app
        .subscribe_webhook(
            "ok",
            &ok.url(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "contoso_CustomerPurchase",
        )
        .await;
    let (refusing_ep, _) = app
        .subscribe_webhook(
            "refusing",
            &refusing.url(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "contoso_CustomerPurchase",
        )
        .await;
    let (down_ep, _) = app
        .subscribe_webhook(
            "down",
            &down.url(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "contoso_CustomerPurchase",
        )
        .await;
    // Payments go to the succeeding receiver only.
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "payments", "event": "contoso_VendorPaymentPosted", "endpoint": ok_ep}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");

    // A payment that succeeds: it and its event are removed after their windows, and asking
    // for them says they were pruned.
    let (status, paid) = app
        .post("/v1/events/contoso_VendorPaymentPosted", &payment("PAY-1"))
        .await;
    assert_eq!(status, 202, "{paid}");
    let paid_id = paid["id"].as_str().unwrap().to_owned();
    let paid_delivery = deliveries(&app, &paid_id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = wait_for(
        Duration::from_secs(15),
        "the paid event to be pruned",
        || async {
            let (status, body) = status_of(&app, &format!("/v1/events/{paid_id}")).await;
            (status == 410).then_some(body)
        },
    )
    .await;
    assert_eq!(gone["error"]["code"], "pruned", "{gone}");
    assert!(
        gone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retention"),
        "{gone}"
    );
    let (status, body) = status_of(&app, &format!("/v1/deliveries/{paid_delivery}")).await;
    assert_eq!(status, 410, "{body}");
    let (status, body) = app
        .post(&format!("/v1/deliveries/{paid_delivery}/retry"), &json!({}))
        .await;
    assert_eq!(status, 410, "retrying a pruned delivery says so: {body}");
    // An id nobody ever made, newer than anything pruned, is simply not found.
    let (status, _) = status_of(&app, "/v1/deliveries/msg_ffffffffffff7000800000000000000f").await;
    assert_eq!(status, 404);

    // A purchase: delivered to `ok`, dead-lettered by `refusing`, retrying at `down`.
    let purchase_id = app.send_purchase(10.0).await;
    let by_endpoint = |ds: &[Value], ep: &str| -> Option<Value> {
        ds.iter().find(|d| d["endpoint_id"] == ep).cloned()
    };
    let settled = wait_for(
        Duration::from_secs(10),
        "the purchase's deliveries to settle",
        || async {
            let ds = deliveries(&app, &purchase_id).await;
            let states = (
                by_endpoint(&ds, &ok_ep).map(|d| d["status"].clone()),
                by_endpoint(&ds, &refusing_ep).map(|d| d["status"].clone()),
                by_endpoint(&ds, &down_ep).map(|d| d["attempts"].clone()),
            );
            (states
                == (
                    Some(json!("succeeded")),
                    Some(json!("dead_lettered")),
                    Some(json!(1)),
                ))
                .then_some(ds)
        },
    )
    .await;
    let dead = by_endpoint(&settled, &refusing_ep).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retrying = by_endpoint(&settled, &down_ep).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The succeeded one goes after a second; the dead letter and the retrying one stay.
    wait_for(
        Duration::from_secs(10),
        "the succeeded delivery to be pruned",
        || async {
            let ds = deliveries(&app, &purchase_id).await;
            by_endpoint(&ds, &ok_ep).is_none().then_some(())
        },
    )
    .await;
    let (status, body) = status_of(&app, &format!("/v1/deliveries/{dead}")).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("dead_lettered")),
        "{body}"
    );
    // Inside its window, the dead letter can be replayed.
    refusing.answer(200);
    let (status, body) = app
        .post(
            "/v1/dead-letters/replay",
            &json!({"endpoint_id": refusing_ep}),
        )
        .await;
    assert_eq!(
        (status, body["replayed"].clone()),
        (200, json!(1)),
        "{body}"
    );
    wait_for(
        Duration::from_secs(10),
        "the replayed dead letter to arrive",
        || async { (!refusing.received().is_empty()).then_some(()) },
    )
    .await;

    // A second dead letter, left alone: it goes after its 6 s, and replay says so.
    refusing.answer(400);
    let second = app.send_purchase(20.0).await;
    let second_dead = wait_for(
        Duration::from_secs(10),
        "the second dead letter",
        || async {
            let ds = deliveries(&app, &second).await;
            by_endpoint(&ds, &refusing_ep)
                .filter(|d| d["status"] == "dead_lettered")
                .map(|d| d["id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    let (_, event) = app.get(&format!("/v1/events/{second}")).await;
    let accepted = event["received_at"].as_str().unwrap().to_owned();
    wait_for(
        Duration::from_secs(15),
        "the second dead letter to be pruned",
        || async {
            let (status, _) = status_of(&app, &format!("/v1/deliveries/{second_dead}")).await;
            (status == 410).then_some(())
        },
    )
    .await;
    let (status, body) = app
        .post(
            "/v1/dead-letters/replay",
            &json!({"endpoint_id": refusing_ep, "from": accepted}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 0);
    assert!(
        body["pruned_through"].is_string(),
        "replay says dead letters were pruned: {body}"
    );

    // However old, the retrying delivery stays, and so does its event.
    let (status, body) = status_of(&app, &format!("/v1/deliveries/{retrying}")).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("pending")),
        "{body}"
    );
    assert_eq!(
        status_of(&app, &format!("/v1/events/{purchase_id}"))
            .await
            .0,
        200
    );

    // /metrics shows rows and bytes by table and what the last pass removed.
    let metrics = app
        .req(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // `herald store stats` prints the same, from the database.
    let config = app.dir.path().join("stats.toml");
    std::fs::write(
        &config,
        format!(
            "encryption_keys = \"{}\"\n[store]\nurl = \"sqlite://{}\"\n",
            crate::support::ENCRYPTION_KEY,
            app.dir.path().join("herald.db").display()
        ),
    )
    .unwrap();
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["store", "stats", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("herald store stats runs");
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("JSON");
    let tables = stats["stats"]["tables"].as_array().expect("tables");
    for table in ["events", "deliveries", "attempts", "endpoints"] {
        let t = tables
            .iter()
            .find(|t| t["table"] == table)
            .unwrap_or_else(|| panic!("{table} in {stats}"));
        assert!(t["bytes"].as_u64().unwrap() > 0, "{stats}");
    }
    assert!(
        stats["last_pass"]["removed"]["deliveries"]
            .as_u64()
            .is_some(),
        "{stats}"
    );
    for needle in [
        "herald_store_rows{table=\"deliveries\"}",
        "herald_store_bytes{table=\"events\"}",
        "herald_prune_removed_total{table=\"deliveries\"}",
        "herald_prune_last_pass_timestamp_seconds",
    ] {
        assert!(metrics.contains(needle), "{needle} in /metrics:\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_is_honoured_inside_its_window_and_free_after_it() {
    let app = TestApp::builder().config(RETENTION).build().await;
    let send = || async {
        let r = app
            .req(reqwest::Method::POST, "/v1/events/contoso_CustomerPurchase")
            .header("Idempotency-Key", "order-1")
            .json(&purchase(5.0))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        (status, body["id"].as_str().unwrap().to_owned())
    };
    let (status, first) = send().await;
    assert_eq!(status, 202);
    let sent = std::time::Instant::now();
    let (_, again) = send().await;
    assert_eq!(
        again, first,
        "inside the window the key answers as the first time"
    );
    let later = wait_for(
        Duration::from_secs(10),
        "the key's window to end",
        || async {
            let (status, id) = send().await;
            assert_eq!(status, 202);
            (id != first).then_some(id)
        },
    )
    .await;
    assert!(
        sent.elapsed() >= Duration::from_millis(1_900),
        "the key was honoured for its whole window; {later} came after {:?}",
        sent.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn two_instances_on_postgresql_prune_side_by_side_without_errors() {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let store = format!(
        "[store]\nurl = \"{}\"\nschema = \"{schema}\"\n",
        crate::support::pg_url()
    );
    let ok = Receiver::start().await;
    let a = TestApp::builder()
        .config(RETENTION)
        .config(&store)
        .build()
        .await;
    let b = TestApp::builder()
        .config(RETENTION)
        .config(&store)
        .build()
        .await;
    a.subscribe_webhook(
        "ok",
        &ok.url(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "contoso_CustomerPurchase",
    )
    .await;
    // Instance b learns of the subscription from a (LISTEN/NOTIFY).
    wait_for(
        Duration::from_secs(10),
        "the subscription to reach b",
        || async {
            let (status, body) = b
                .post("/v1/events/contoso_CustomerPurchase", &purchase(0.5))
                .await;
            (status == 202 && body["deliveries"] == 1).then_some(())
        },
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let app = if i % 2 == 0 { &a } else { &b };
        ids.push(app.send_purchase(f64::from(i)).await);
    }
    wait_for(
        Duration::from_secs(30),
        "every event to be delivered and pruned",
        || async {
            for id in &ids {
                if a.get(&format!("/v1/events/{id}")).await.0 != 410 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    assert!(ok.event_ids().len() >= 200);
    let (ta, tb) = (
        a.running.state.pruner.totals(),
        b.running.state.pruner.totals(),
    );
    assert_eq!((ta.failures, tb.failures), (0, 0), "{ta:?} {tb:?}");
    assert!(ta.passes > 0 && tb.passes > 0, "{ta:?} {tb:?}");
    let events = ta.removed.events + tb.removed.events;
    assert!(
        (200..=220).contains(&events),
        "each event removed once, by one instance or the other: {ta:?} {tb:?}"
    );
    // Deliveries that succeeded at once are kept in their events' rows, with no attempt of
    // their own; the others have one attempt each.
    assert!(
        ta.removed.deliveries + tb.removed.deliveries >= 200
            && ta.removed.attempts + tb.removed.attempts
                <= ta.removed.deliveries + tb.removed.deliveries,
        "{ta:?} {tb:?}"
    );
    a.stop().await;
    b.stop().await;
}
