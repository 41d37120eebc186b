//! Destination outages, permanent failures, dead letters and replay, 410 Gone.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, Receiver, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn delivery_of(app: &TestApp, event_id: &str) -> Value {
    app.get(&format!("/v1/events/{event_id}")).await.1["deliveries"][0].clone()
}

#[tokio::test]
async fn every_event_arrives_after_the_receiver_answers_503_and_then_is_down_for_a_while() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let addr = receiver.addr;
    app.subscribe_webhook("flaky", &receiver.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    receiver.answer(503);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.send_purchase(f64::from(i)).await);
    }
    wait_for(Duration::from_secs(10), "failed attempts", || async {
        (receiver.received().len() >= 5).then_some(())
    })
    .await;
    // Now the receiver is down altogether: connections are refused.
    receiver.stop();
    // The 503s are recorded in batches, a moment after the receiver saw them.
    wait_for(
        Duration::from_secs(5),
        "the first failure to be recorded",
        || async {
            let first = delivery_of(&app, &ids[0]).await;
            (first["status"] == "pending" && first["attempts"].as_u64() >= Some(1)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = Receiver::start_on(addr).await;
    wait_for(
        Duration::from_secs(20),
        "all events after recovery",
        || async {
            let got = back.event_ids();
            ids.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    let d = wait_for(
        Duration::from_secs(5),
        "the success to be recorded",
        || async {
            let d = delivery_of(&app, &ids[0]).await;
            (d["status"] == "succeeded").then_some(d)
        },
    )
    .await;
    assert!(d["attempts"].as_u64().unwrap() >= 2);
    let (_, detail) = app
        .get(&format!("/v1/deliveries/{}", d["id"].as_str().unwrap()))
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "retry");
    assert_eq!(attempts[0]["http_status"], 503);
    assert_eq!(attempts.last().unwrap()["outcome"], "success");
    app.stop().await;
}

#[tokio::test]
async fn a_400_dead_letters_without_retry_and_replay_delivers_once_the_receiver_is_fixed() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app
        .subscribe_webhook(
            "strict",
            &receiver.url(),
            SECRET,
            "contoso_CustomerPurchase",
        )
        .await;
    receiver.answer(400);
    let id = app.send_purchase(5.0).await;
    let dead = wait_for(Duration::from_secs(10), "the dead letter", || async {
        let d = delivery_of(&app, &id).await;
        (d["status"] == "dead_lettered").then_some(d)
    })
    .await;
    assert_eq!(dead["attempts"], 1, "a permanent failure is not retried");
    assert_eq!(dead["last_error"], "receiver answered 400");
    let (_, listed) = app.get("/v1/deliveries?status=dead_lettered").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    receiver.answer(204);
    let (status, replayed) = app
        .post(
            "/v1/dead-letters/replay",
            &json!({"endpoint_id": endpoint, "event": "contoso_CustomerPurchase"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(replayed["replayed"], 1);
    let done = wait_for(Duration::from_secs(10), "the replayed delivery", || async {
        let d = delivery_of(&app, &id).await;
        (d["status"] == "succeeded").then_some(d)
    })
    .await;
    assert_eq!(done["attempts"], 2);
    // The same delivery id was used both times, so the receiver can drop duplicates.
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );

    // Retrying a succeeded delivery is refused; retrying a dead letter works.
    let r = app
        .req(
            reqwest::Method::POST,
            &format!("/v1/deliveries/{}/retry", done["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn retries_give_up_after_max_attempts_and_the_delivery_is_dead_lettered() {
    let app = TestApp::builder()
        .config("[delivery]\nmax_attempts = 3")
        .build()
        .await;
    let receiver = Receiver::start().await;
    app.subscribe_webhook("down", &receiver.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    receiver.answer(500);
    let id = app.send_purchase(5.0).await;
    let dead = wait_for(Duration::from_secs(10), "the dead letter", || async {
        let d = delivery_of(&app, &id).await;
        (d["status"] == "dead_lettered").then_some(d)
    })
    .await;
    assert_eq!(dead["attempts"], 3);
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{dead}"
    );
    // Manual retry of one dead letter.
    receiver.answer(200);
    let r = app
        .req(
            reqwest::Method::POST,
            &format!("/v1/deliveries/{}/retry", dead["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for(Duration::from_secs(10), "the retried delivery", || async {
        (delivery_of(&app, &id).await["status"] == "succeeded").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_410_gone_disables_the_subscription() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let (_, subscription) = app
        .subscribe_webhook("gone", &receiver.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    receiver.answer(410);
    let id = app.send_purchase(5.0).await;
    wait_for(
        Duration::from_secs(10),
        "the cancelled delivery",
        || async { (delivery_of(&app, &id).await["status"] == "cancelled").then_some(()) },
    )
    .await;
    let (_, sub) = app.get(&format!("/v1/subscriptions/{subscription}")).await;
    assert_eq!(sub["enabled"], false);
    assert!(sub["disabled_reason"].as_str().unwrap().contains("410"));
    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &crate::support::purchase(1.0),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        body["deliveries"], 0,
        "a disabled subscription gets no new deliveries"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_the_others() {
    // One receiver never answers within the test; the other must get its events at once.
    let app = TestApp::builder()
        .config("[delivery]\nendpoint_concurrency = 2\nmax_in_flight = 8")
        .build()
        .await;
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_url = format!("http://{}/hook", stuck.local_addr().unwrap());
    let fast = Receiver::start().await;
    app.subscribe_webhook("stuck", &stuck_url, SECRET, "contoso_CustomerPurchase")
        .await;
    app.subscribe_webhook("fast", &fast.url(), SECRET, "contoso_CustomerPurchase")
        .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.send_purchase(f64::from(i)).await);
    }
    wait_for(
        Duration::from_secs(10),
        "all events at the fast receiver",
        || async {
            let got = fast.event_ids();
            ids.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
    drop(stuck);
    app.stop().await;
}
