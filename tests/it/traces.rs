//! OpenTelemetry traces: one trace from the request that sends an event, through validation
//! and storage, to the attempt at each endpoint, exported over OTLP/HTTP to a real receiver
//! (the protocol's own decoder); the caller's `traceparent` is continued, and receivers get
//! the attempt's as `traceparent` (webhooks) and `Diagnostic-Id`/`traceparent` (Service Bus,
//! read with the official Python SDK).

use std::time::Duration;

use serde_json::json;

use crate::azure::{emulator, endpoint, expected, finished_deliveries, subscribe, Api};
use crate::support::otlp::{OtlpReceiver, SpanSeen};
use crate::support::{purchase, run_python, wait_for, Receiver, TestApp, ADMIN_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn one<'a>(spans: &'a [SpanSeen], name: &str) -> &'a SpanSeen {
    let found: Vec<&SpanSeen> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span named {name:?} in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_to_every_attempt_and_on_to_receivers() {
    let otlp = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = emulator(dir.path(), None, 0).await;
    let receiver = Receiver::start().await;
    let test_app = TestApp::builder()
        .config(&format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"herald-under-test\"\nexport_interval = \"100ms\"",
            otlp.url()
        ))
        .build()
        .await;
    let app = Api::of(&test_app);
    let conn = emu.connection_string();
    let hook = endpoint(
        app,
        json!({"name": "traced-hook", "kind": "webhook", "url": receiver.url(), "secret": SECRET}),
    )
    .await;
    let queue = endpoint(app, json!({"name": "traced-queue", "kind": "service_bus", "connection_string": conn, "entity": "orders"})).await;
    subscribe(
        app,
        json!({"name": "to-hook", "event": "contoso_CustomerPurchase", "endpoint": hook}),
    )
    .await;
    subscribe(
        app,
        json!({"name": "to-queue", "event": "contoso_CustomerPurchase", "endpoint": queue}),
    )
    .await;

    // The caller's own trace.
    let trace = hex::encode(rand::random::<[u8; 16]>());
    let caller_span = hex::encode(rand::random::<[u8; 8]>());
    let r = test_app
        .http
        .post(format!(
            "{}/v1/events/contoso_CustomerPurchase",
            test_app.url
        ))
        .bearer_auth(ADMIN_KEY)
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .json(&purchase(42.0))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 202);
    let event_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deliveries = finished_deliveries(app, &event_id).await;
    assert!(
        deliveries.iter().all(|d| d["status"] == "succeeded"),
        "{deliveries:#?}"
    );

    let spans = wait_for(Duration::from_secs(20), "the spans of the event", || {
        let spans: Vec<SpanSeen> = otlp
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        async move {
            (spans
                .iter()
                .filter(|s| s.name.starts_with("deliver "))
                .count()
                == 2)
                .then_some(spans)
        }
    })
    .await;
    let request = one(&spans, "POST /v1/events/{event}");
    assert_eq!(
        request.parent_id, caller_span,
        "the request span continues the caller's"
    );
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.service, "herald-under-test");
    assert_eq!(request.attributes["http.response.status_code"], "202");
    assert_ne!(request.status, 2, "the request did not fail");
    assert_eq!(request.attributes["herald.event.id"], event_id);
    for step in ["herald.validate", "herald.store"] {
        assert_eq!(
            one(&spans, step).parent_id,
            request.span_id,
            "{step} is the request's child"
        );
    }
    let to_hook = one(&spans, "deliver traced-hook");
    let to_queue = one(&spans, "deliver traced-queue");
    for (span, kind) in [(to_hook, 3), (to_queue, 4)] {
        assert_eq!(
            span.parent_id, request.span_id,
            "an attempt is the request's child: {span:?}"
        );
        assert_eq!(span.kind, kind);
        assert_eq!(span.attributes["herald.event.id"], event_id);
        assert_eq!(span.attributes["herald.attempt"], "1");
    }
    assert_eq!(to_hook.attributes["http.response.status_code"], "204");
    assert!(
        to_hook.status != 2 && to_queue.status != 2,
        "both attempts succeeded"
    );

    // The webhook's receiver continues the attempt's span.
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("traceparent"),
        format!("00-{trace}-{}-01", to_hook.span_id)
    );

    // The queue's message carries it as the Azure SDKs do, read by the official Python SDK.
    let (_, event) = app.get(&format!("/v1/events/{event_id}")).await;
    let delivery = deliveries
        .iter()
        .find(|d| d["endpoint_id"] == queue.as_str())
        .expect("the queue's delivery");
    let carried = format!("00-{trace}-{}-01", to_queue.span_id);
    let props = json!({"Diagnostic-Id": carried, "traceparent": carried});
    let base = test_app.url.clone();
    let out = run_python(
        "read_azure.py",
        &json!({
            "connection_string": conn,
            "queues": [{"path": "orders", "expect": [expected(&base, &event, delivery, props)]}],
        }),
    );
    assert_eq!(out.matches("OK ").count(), 1, "{out}");
    test_app.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn without_traces_a_callers_context_is_passed_on_unchanged() {
    let receiver = Receiver::start().await;
    let app = TestApp::start().await;
    app.subscribe_webhook(
        "plain-hook",
        &receiver.url(),
        SECRET,
        "contoso_CustomerPurchase",
    )
    .await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = app
        .req(reqwest::Method::POST, "/v1/events/contoso_CustomerPurchase")
        .header("traceparent", caller)
        .json(&purchase(1.0))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 202);
    wait_for(Duration::from_secs(10), "the delivery", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    assert_eq!(receiver.received()[0].header("traceparent"), caller);
    // No traceparent in, none out.
    app.send_purchase(2.0).await;
    wait_for(Duration::from_secs(10), "the second delivery", || async {
        (receiver.count() == 2).then_some(())
    })
    .await;
    assert_eq!(receiver.received()[1].header("traceparent"), "");
    app.stop().await;
}
