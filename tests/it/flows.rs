//! Flows: Power Automate-style webhook trigger subscriptions, the connector definition, and
//! catalog discovery.

use std::time::Duration;

use serde_json::json;

use crate::support::{purchase, run_python, wait_for, Receiver, TestApp};

#[tokio::test]
async fn a_flow_subscribes_receives_the_parameters_unsubscribes_and_receives_no_more() {
    let app = TestApp::start().await;
    let callback = Receiver::start().await;
    let r = app
        .req(reqwest::Method::POST, "/v1/flows/subscriptions")
        .json(&json!({"event": "contoso_CustomerPurchase", "notificationUrl": callback.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/v1/flows/subscriptions/sub_"),
        "{location}"
    );

    let (_, accepted) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(42.5))
        .await;
    assert_eq!(accepted["deliveries"], 1);
    let got = wait_for(Duration::from_secs(10), "the flow's callback", || async {
        callback.received().first().cloned()
    })
    .await;
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(
        got.json(),
        purchase(42.5),
        "the callback body is the event's parameters"
    );

    let r = app
        .req(reqwest::Method::DELETE, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, accepted) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(1.0))
        .await;
    assert_eq!(
        accepted["deliveries"], 0,
        "an unsubscribed flow gets nothing"
    );
    assert_eq!(
        app.req(reqwest::Method::DELETE, &location)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Ordinary subscriptions cannot be deleted through the flow route.
    let (_, ordinary) = app
        .subscribe_webhook(
            "plain",
            &callback.url(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "contoso_CustomerPurchase",
        )
        .await;
    let r = app
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/flows/subscriptions/{ordinary}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_per_event_trigger_and_a_category_trigger_subscribe_too_and_bad_urls_are_named() {
    let app = TestApp::start().await;
    let callback = Receiver::start().await;
    let (status, body) = app
        .post(
            "/v1/flows/events/contoso_VendorPaymentPosted/subscriptions",
            &json!({"notificationUrl": callback.url()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event"], "contoso_VendorPaymentPosted");
    let (status, body) = app
        .post(
            "/v1/flows/subscriptions",
            &json!({"category": "Sales", "notificationUrl": callback.url()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["category"], "Sales");
    let (status, body) = app
        .post(
            "/v1/flows/subscriptions",
            &json!({"event": "contoso_CustomerPurchase", "notificationUrl": "ftp://x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["parameter"], "notificationUrl");
    let (status, _) = app
        .post(
            "/v1/flows/subscriptions",
            &json!({"event": "contoso_Nope", "notificationUrl": callback.url()}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, endpoints) = app.get("/v1/endpoints").await;
    assert_eq!(
        endpoints.as_array().unwrap().len(),
        2,
        "a refused subscription leaves no endpoint behind"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_connector_definition_validates_and_discovery_follows_the_catalog() {
    let app = TestApp::start().await;
    let (status, _) = app.get_public("/v1/flows/connector.json").await;
    assert_eq!(status, 401, "the connector lists events: it needs a key");
    let (status, spec) = app.get("/v1/flows/connector.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["swagger"], "2.0");
    // Three for the demo catalog, as before, and five for Herald's operational events.
    let out = run_python("validate_connector.py", &spec);
    assert!(out.contains("8 webhook triggers"), "{out}");

    let (_, events) = app.get("/v1/flows/events").await;
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["unique_name"].as_str().unwrap())
        .collect();
    // The demo catalog's events, and Herald's operational events, which flows subscribe to too.
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("contoso_"))
            .collect::<Vec<_>>(),
        [&"contoso_CustomerPurchase", &"contoso_VendorPaymentPosted"]
    );
    assert!(names.contains(&"herald_EndpointDisabled"), "{names:?}");
    let (status, schema) = app
        .get("/v1/flows/events/contoso_CustomerPurchase/schema")
        .await;
    assert_eq!(status, 200);
    assert_eq!(schema["properties"]["Total"]["type"], "number");

    let (_, tree) = app.get("/v1/flows/catalog").await;
    let contoso = tree["catalogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["catalog"] == "contoso")
        .expect("the contoso catalog");
    let sales = &contoso["categories"][0];
    assert_eq!(sales["name"], "Sales");
    assert_eq!(sales["tables"][0]["table"], "(none)");
    assert_eq!(
        sales["tables"][0]["actions"][0]["unique_name"],
        "contoso_CustomerPurchase"
    );
    assert_eq!(
        sales["tables"][0]["actions"][0]["display_name"],
        "Customer purchase"
    );
    app.stop().await;
}
