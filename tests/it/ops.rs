//! The OpenAPI document, health, readiness and metrics.

use crate::support::TestApp;

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_ops_routes_answer() {
    let app = TestApp::start().await;
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/events/{event}",
        "/v1/events:batch",
        "/v1/catalog",
        "/v1/catalog/events/{unique_name}",
        "/v1/endpoints",
        "/v1/endpoints/{id}/secrets",
        "/v1/subscriptions/{id}",
        "/v1/deliveries",
        "/v1/deliveries/{id}/retry",
        "/v1/dead-letters/replay",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in the OpenAPI document"
        );
    }
    assert!(
        doc["paths"]["/v1/events/{event}"].get("post").is_some()
            && doc["paths"]["/v1/events/{event}"].get("get").is_some()
    );

    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            reqwest::get(format!("{}{path}", app.url))
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    app.send_purchase(1.0).await;
    let metrics = reqwest::get(format!("{}/metrics", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "herald_events_accepted_total",
        "herald_deliveries{status=\"pending\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    app.stop().await;
}
