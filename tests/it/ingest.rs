//! Ingestion: validation of every parameter type, HTTP errors, idempotency and batches.

use serde_json::{json, Value};

use crate::support::{purchase, TestApp};

/// An event with a parameter of every type, and one that is not cataloged.
const ALL_TYPES: &str = include_str!("../catalogs/all-types.toml");

async fn all_types_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.toml"), ALL_TYPES).unwrap();
    let catalog_dir = dir.keep();
    TestApp::builder()
        .config(&format!("[catalog]\ndir = \"{}\"", catalog_dir.display()))
        .build()
        .await
}

fn valid_all_types() -> Value {
    json!({
        "B": true,
        "Dt": "2026-11-22T10:30:00+01:00",
        "Dec": 12.34,
        "E": {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "Contoso"},
        "Ec": [{"name": "a"}, {"name": "b"}],
        "Er": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"},
        "F": 1.5e10,
        "I": -2147483648,
        "M": 922337203685477.0,
        "P": 2,
        "S": "héllo",
        "Sa": ["x", "y"],
        "G": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10",
    })
}

#[tokio::test]
async fn every_parameter_type_accepts_valid_values() {
    let app = all_types_app().await;
    let (status, body) = app
        .post("/v1/events/contoso_AllTypes", &valid_all_types())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"], 0);
    // The plain form of an entity reference is accepted too.
    let mut params = valid_all_types();
    params["Er"] = json!({"logical_name": "account", "id": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"});
    assert_eq!(
        app.post("/v1/events/contoso_AllTypes", &params).await.0,
        202
    );
    app.stop().await;
}

#[tokio::test]
async fn every_offending_parameter_is_named_with_its_problem() {
    let app = all_types_app().await;
    let bad = json!({
        "B": "yes",
        "Dt": "22/11/2026",
        "Dec": 1.234,
        "E": {"@odata.type": "Microsoft.Dynamics.CRM.contact"},
        "Ec": [{"a": 1}, 3],
        "Er": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "nope"},
        "F": "1.5",
        "I": 2147483648i64,
        "M": 1.23456,
        "P": 3,
        "S": "too long",
        "Sa": ["x", 1],
        "G": "6f1c1a2e",
        "Extra": 1,
    });
    let (status, body) = app.post("/v1/events/contoso_AllTypes", &bad).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_parameters");
    let details = body["error"]["details"].as_array().unwrap();
    let problem = |p: &str| {
        details
            .iter()
            .find(|d| d["parameter"] == p)
            .unwrap_or_else(|| panic!("no problem reported for {p}: {body}"))["problem"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(problem("B"), "expected true or false, got a string");
    assert!(problem("Dt").contains("not an ISO 8601 date-time"));
    assert_eq!(
        problem("Dec"),
        "1.234 has 3 decimal places; at most 2 allowed"
    );
    assert_eq!(problem("E"), "is a \"contact\" row; expected \"account\"");
    assert_eq!(
        problem("Ec"),
        "item 1: expected an entity object, got a number"
    );
    assert!(problem("Er").starts_with("needs the row's id as a GUID"));
    assert_eq!(problem("F"), "expected a number, got a string");
    assert_eq!(
        problem("I"),
        "2147483648 is outside the 32-bit integer range"
    );
    assert_eq!(
        problem("M"),
        "1.23456 has 5 decimal places; at most 4 allowed"
    );
    assert_eq!(
        problem("P"),
        "3 is not an option; allowed: 1 (Red), 2 (Blue)"
    );
    assert_eq!(problem("S"), "is 8 characters long; at most 5 allowed");
    assert_eq!(problem("Sa"), "item 1 is not a string");
    assert_eq!(problem("G"), "\"6f1c1a2e\" is not a GUID in its 36-character form, e.g. 6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10");
    assert!(problem("Extra").starts_with("is not a parameter of contoso_AllTypes"));
    assert_eq!(details.len(), 14);

    let (status, body) = app.post("/v1/events/contoso_AllTypes", &json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"][0],
        json!({"parameter": "S", "problem": "is required (String)"})
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_uncataloged_events_are_404() {
    let app = all_types_app().await;
    for name in ["contoso_Nope", "contoso_NotCataloged"] {
        let (status, body) = app.post(&format!("/v1/events/{name}"), &json!({})).await;
        assert_eq!(status, 404, "{name}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_content_type_is_415_bad_json_400_and_oversized_body_413() {
    let app = TestApp::builder()
        .config("[server]\nmax_body_bytes = 1024")
        .build()
        .await;
    let path = "/v1/events/contoso_CustomerPurchase";
    let r = app
        .req(reqwest::Method::POST, path)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let r = app
        .req(reqwest::Method::POST, path)
        .header("content-type", "application/json")
        .body("{\"Total\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );

    let r = app
        .req(reqwest::Method::POST, path)
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut big = purchase(1.0);
    big["Items"] = json!(vec!["x".repeat(100); 20]);
    let r = app
        .req(reqwest::Method::POST, path)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_first_answer_and_a_different_body_409() {
    let app = TestApp::start().await;
    let path = "/v1/events/contoso_CustomerPurchase";
    let send = |body: Value| {
        app.req(reqwest::Method::POST, path)
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    };
    let first = send(purchase(10.0)).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send(purchase(10.0)).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = send(purchase(11.0)).await.unwrap();
    assert_eq!(other.status(), 409);
    // Only one event exists: a different key makes a second one.
    let (_, event) = app
        .get(&format!("/v1/events/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(event["params"]["Total"], 10.0);
    let r = app
        .req(reqwest::Method::POST, path)
        .header("Idempotency-Key", "order-43")
        .json(&purchase(10.0))
        .send()
        .await
        .unwrap();
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["id"], first["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_answers_per_item_and_stores_the_valid_ones() {
    let app = TestApp::start().await;
    let batch = json!({"events": [
        {"event": "contoso_CustomerPurchase", "params": purchase(1.0)},
        {"event": "contoso_CustomerPurchase", "params": {"Total": "x"}},
        {"event": "contoso_Unknown", "params": {}},
        {"event": "contoso_VendorPaymentPosted", "params": {
            "VendorId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Amount": 99.99,
            "PaymentReference": "PAY-1", "PostedOn": "2026-11-22T10:30:00Z"}, "idempotency_key": "pay-1"},
    ]});
    let (status, results) = app.post("/v1/events:batch", &batch).await;
    assert_eq!(status, 200, "{results}");
    let statuses: Vec<u64> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 400, 404, 202]);
    assert_eq!(results[1]["error"]["details"][0]["parameter"], "CustomerId");
    for i in [0, 3] {
        let (status, _) = app
            .get(&format!(
                "/v1/events/{}",
                results[i]["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200);
    }
    let too_many = json!({"events": vec![json!({"event": "contoso_CustomerPurchase", "params": purchase(1.0)}); 1001]});
    let (status, body) = app.post("/v1/events:batch", &too_many).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["parameter"], "events");
    app.stop().await;
}

#[tokio::test]
async fn every_json_route_refuses_bodies_over_the_configured_limit_and_says_which() {
    let app = TestApp::builder()
        .config("[server]\nmax_body_bytes = 4096")
        .build()
        .await;
    // An admin body over the limit: not the 2 MiB of axum's default, and the answer names
    // the limit Herald was configured with.
    let big = json!({"name": "big", "url": format!("https://example.com/{}", "x".repeat(5000))});
    for (method, path) in [
        (reqwest::Method::POST, "/v1/endpoints"),
        (reqwest::Method::POST, "/v1/subscriptions"),
        (reqwest::Method::POST, "/v1/dead-letters/replay"),
    ] {
        let r = app.req(method, path).json(&big).send().await.unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("4096 bytes"), "{path}: {message}");
    }
    // A body of the wrong shape names the field: a shared one, one of its kind's, one of
    // another kind's.
    for (body, field) in [
        (json!({"name": "x", "url": "https://example.com/"}), "kind"),
        (json!({"name": "x", "kind": "webhook", "url": 7}), "url"),
        (
            json!({"name": "x", "kind": "service_bus", "url": "https://example.com/"}),
            "url",
        ),
        (
            json!({"name": 7, "kind": "webhook", "url": "https://example.com/"}),
            "name",
        ),
    ] {
        let (status, answer) = app.post("/v1/endpoints", &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            answer["error"]["details"][0]["parameter"], field,
            "{body}: {answer}"
        );
    }
    app.stop().await;
}
