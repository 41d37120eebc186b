//! Dataverse compatibility: invocation as Dataverse does it, its errors, and the Custom API
//! rules enforced when the catalog loads.

use serde_json::{json, Value};

use std::time::Duration;

use crate::support::{purchase, wait_for, Receiver, TestApp};

const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Sales"
events = ["contoso_CustomerPurchase", "contoso_VendorPaymentPosted", "contoso_OrderShipped", "contoso_LegacyRefund", "contoso_ApproveOrder"]

[[events]]
unique_name = "contoso_CustomerPurchase"
solution = "contoso"
allowed_steps = "async_only"
external = true
parameters = [
  { name = "CustomerId", type = "Guid", required = true },
  { name = "Total", type = "Money", required = true },
  { name = "Currency", type = "String", max_length = 3 },
  { name = "PurchasedOn", type = "DateTime", required = true },
  { name = "Items", type = "StringArray" },
]

[[events]]
unique_name = "contoso_VendorPaymentPosted"
solution = "contoso"
allowed_steps = "async_only"
external = true
parameters = [
  { name = "VendorId", type = "Guid", required = true },
  { name = "Amount", type = "Money", required = true },
  { name = "PaymentReference", type = "String", required = true },
  { name = "PostedOn", type = "DateTime", required = true },
]

[[events]]
unique_name = "contoso_OrderShipped"
solution = "contoso"
binding = "salesorder"
allowed_steps = "async_only"
external = true
parameters = [
  { name = "Customer", type = "EntityReference", entity = "account", required = true },
  { name = "ShippedOn", type = "DateTime", required = true },
]

[[events]]
unique_name = "contoso_ApproveOrder"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [{ name = "OrderId", type = "Guid", required = true }, { name = "Amount", type = "Money", required = true }]

[[events]]
unique_name = "contoso_LegacyRefund"
solution = "contoso"
kind = "custom_process_action"
allowed_steps = "sync_and_async"
enabled = false
"#;

async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.toml"), CATALOG).unwrap();
    let path = dir.keep();
    TestApp::builder()
        .config(&format!("[catalog]\ndir = \"{}\"", path.display()))
        .build()
        .await
}

async fn invoke(
    app: &TestApp,
    name: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = app
        .req(reqwest::Method::POST, &format!("/api/data/v9.2/{name}"))
        .header("OData-Version", "4.0")
        .header("OData-MaxVersion", "4.0")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn both_demo_events_and_an_entity_reference_are_invoked_as_in_dataverse() {
    let app = app().await;
    let (status, headers, _) = invoke(&app, "contoso_CustomerPurchase", &purchase(42.5)).await;
    assert_eq!(status, 204);
    assert_eq!(headers["odata-version"], "4.0");
    let payment = json!({"VendorId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Amount": 1250.75, "PaymentReference": "PAY-9", "PostedOn": "2026-11-22T10:30:00Z"});
    assert_eq!(
        invoke(&app, "contoso_VendorPaymentPosted", &payment)
            .await
            .0,
        204
    );
    let shipped = json!({
        "Customer": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"},
        "ShippedOn": "2026-11-22T10:30:00Z",
    });
    assert_eq!(invoke(&app, "contoso_OrderShipped", &shipped).await.0, 204);
    let (_, deliveries) = app.get("/v1/deliveries").await;
    assert!(
        deliveries.as_array().unwrap().is_empty(),
        "no subscriptions, no deliveries"
    );
    app.stop().await;
}

#[tokio::test]
async fn dataverse_style_errors_carry_dataverse_codes_and_statuses() {
    let app = app().await;
    let (status, _, body) = invoke(&app, "contoso_Nope", &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "0x8006088a", "message": "Resource not found for the segment 'contoso_Nope'."}})
    );

    let (status, _, body) = invoke(&app, "contoso_LegacyRefund", &json!({})).await;
    assert_eq!(
        status, 404,
        "a deactivated custom process action is not found, as in Dataverse"
    );
    assert_eq!(body["error"]["code"], "0x8006088a");

    let wrong_account = json!({
        "Customer": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"},
    });
    let (status, _, body) = invoke(&app, "contoso_OrderShipped", &wrong_account).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "0x80040203");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Customer: refers to a \"contact\" row; expected \"account\""),
        "{message}"
    );
    assert!(message.contains("ShippedOn: is required"), "{message}");

    let r = app
        .req(
            reqwest::Method::POST,
            "/api/data/v9.2/contoso_CustomerPurchase",
        )
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "0x80048d19"
    );

    let r = app
        .req(
            reqwest::Method::POST,
            "/api/data/v9.2/contoso_CustomerPurchase",
        )
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let r = app
        .http
        .post(format!(
            "{}/api/data/v9.2/contoso_CustomerPurchase",
            app.url
        ))
        .json(&purchase(1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "0x8005F101"
    );

    let r = app
        .req(
            reqwest::Method::POST,
            "/api/data/v9.2/contoso_CustomerPurchase",
        )
        .header("OData-Version", "3.0")
        .json(&purchase(1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The same disabled action on Herald's own route.
    let (status, body) = app
        .post("/v1/events/contoso_LegacyRefund", &json!({}))
        .await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deactivated"));
    app.stop().await;
}

#[test]
fn custom_api_rules_are_enforced_when_the_catalog_loads() {
    let broken = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Misc"
events = ["contoso_GetImage", "contoso_Internal", "contoso_Sync"]

[[events]]
unique_name = "contoso_GetImage"
solution = "contoso"
allowed_steps = "async_only"
is_function = true

[[events]]
unique_name = "contoso_Internal"
solution = "contoso"
allowed_steps = "async_only"
is_private = true

[[events]]
unique_name = "contoso_Sync"
solution = "contoso"
allowed_steps = "async_only"
external = true
plugin_type = "Contoso.Plugins.Sync"

[[events]]
unique_name = "contoso_OldAction"
solution = "contoso"
kind = "custom_process_action"
allowed_steps = "async_only"

[[events]]
unique_name = "contoso_Toggle"
solution = "contoso"
allowed_steps = "async_only"
enabled = false
"#;
    let err = herald::catalog::load_texts(&[("rules.toml".into(), broken.to_owned())])
        .unwrap_err()
        .to_string();
    for expected in [
        "\"contoso_GetImage\" is a function; only actions can be cataloged",
        "\"contoso_Internal\" is a private Custom API; private APIs cannot be cataloged",
        "event \"contoso_Sync\": field `plugin_type`: an external event already happened elsewhere, so it has no main-operation plug-in",
        "event \"contoso_OldAction\": field `allowed_steps`: a custom process action cannot prevent synchronous steps",
        "event \"contoso_Toggle\": field `enabled`: only a custom process action can be enabled or disabled",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[tokio::test]
async fn a_dataverse_format_delivery_parses_back_and_dataverse_auth_reaches_the_receiver() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "dv", "kind": "webhook", "url": receiver.url(), "auth": {"type": "HttpHeader", "values": {"x-api-key": "s3cret-header"}}}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    assert_eq!(
        ep["endpoint"]["auth"],
        json!({"type": "HttpHeader", "names": ["x-api-key"]}),
        "names shown, values never"
    );
    assert!(!ep.to_string().contains("s3cret-header"));
    let (status, _) = app
        .post(
            "/v1/subscriptions",
            &json!({"event": "contoso_OrderShipped", "endpoint": "dv", "format": "dataverse"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, keyed) = app
        .post("/v1/endpoints", &json!({"name": "fn", "kind": "webhook", "url": receiver.url(), "auth": {"type": "WebhookKey", "key": "fn-key-123"}}))
        .await;
    assert_eq!(status, 201, "{keyed}");
    let (status, _) = app
        .post(
            "/v1/subscriptions",
            &json!({"event": "contoso_OrderShipped", "endpoint": "fn", "format": "dataverse"}),
        )
        .await;
    assert_eq!(status, 201);

    let shipped = json!({
        "Customer": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"},
        "ShippedOn": "2026-11-22T10:30:00Z",
    });
    let r = app
        .req(reqwest::Method::POST, "/api/data/v9.2/contoso_OrderShipped")
        .header(
            "x-ms-correlation-request-id",
            "0d3c5f0e-8a44-4c2b-9d7e-1a2b3c4d5e6f",
        )
        .json(&shipped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let got = wait_for(Duration::from_secs(10), "two deliveries", || async {
        let r = receiver.received();
        (r.len() >= 2).then_some(r)
    })
    .await;
    let by_header = got
        .iter()
        .find(|r| r.header("x-api-key") == "s3cret-header")
        .expect("HttpHeader auth sent");
    let by_key = got
        .iter()
        .find(|r| r.uri.query() == Some("code=fn-key-123"))
        .expect("WebhookKey sent as ?code=");
    assert!(by_key.header("x-api-key").is_empty());
    for r in [by_header, by_key] {
        assert_eq!(r.header("x-ms-dynamics-organization"), "herald");
        assert_eq!(r.header("x-ms-dynamics-entity-name"), "salesorder");
        assert_eq!(
            r.header("x-ms-dynamics-request-name"),
            "contoso_OrderShipped"
        );
        assert_eq!(
            r.header("x-ms-correlation-request-id"),
            "0d3c5f0e-8a44-4c2b-9d7e-1a2b3c4d5e6f"
        );
        assert!(
            !r.header("webhook-signature").is_empty(),
            "signing stays on"
        );
    }
    // Parsed back as a RemoteExecutionContext.
    let context = by_header.json();
    assert_eq!(context["MessageName"], "contoso_OrderShipped");
    assert_eq!(context["PrimaryEntityName"], "salesorder");
    assert_eq!(context["OrganizationName"], "herald");
    assert_eq!(
        context["CorrelationId"],
        "0d3c5f0e-8a44-4c2b-9d7e-1a2b3c4d5e6f"
    );
    assert_eq!(context["Mode"], 1);
    assert_eq!(context["Stage"], 40);
    assert_eq!(context["Depth"], 1);
    assert_eq!(context["OutputParameters"], json!([]));
    assert!(context["OperationCreatedOn"]
        .as_str()
        .unwrap()
        .starts_with("/Date("));
    let inputs = context["InputParameters"].as_array().unwrap();
    let input = |k: &str| inputs.iter().find(|p| p["key"] == k).unwrap()["value"].clone();
    let customer = input("Customer");
    assert_eq!(
        customer["__type"],
        "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"
    );
    assert_eq!(customer["LogicalName"], "account");
    assert_eq!(customer["Id"], "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10");
    let raw = String::from_utf8(by_header.body.to_vec()).unwrap();
    assert!(
        raw.contains(r#"{"__type":"EntityReference:"#),
        "__type comes first, as WCF requires"
    );
    assert_eq!(
        input("ShippedOn"),
        json!(format!("/Date({})/", 1_795_343_400_000i64))
    );
    // The request id is the delivery id's UUID, stable across retries.
    let (_, deliveries) = app.get("/v1/deliveries").await;
    let ids: Vec<String> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap()[4..].to_owned())
        .collect();
    assert!(ids.contains(&context["RequestId"].as_str().unwrap().replace('-', "")));
    app.stop().await;
}

async fn step(app: &TestApp, name: &str, url: &str, rank: i32, stage: &str) {
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": name, "kind": "webhook", "url": url}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sub = json!({"name": name, "event": "contoso_ApproveOrder", "endpoint": name, "mode": "sync", "stage": stage, "rank": rank, "format": "dataverse"});
    let (status, body) = app.post("/v1/subscriptions", &sub).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_synchronous_step_vetoes_an_event_and_nothing_is_stored_or_delivered() {
    let app = app().await;
    let steps = Receiver::start().await;
    let later = Receiver::start().await;
    let base = format!("http://{}", steps.addr);
    step(
        &app,
        "credit-check",
        &format!("{base}/credit"),
        2,
        "pre_operation",
    )
    .await;
    step(
        &app,
        "fraud-check",
        &format!("{base}/fraud"),
        1,
        "pre_validation",
    )
    .await;
    app.subscribe_webhook(
        "erp",
        &later.url(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "contoso_ApproveOrder",
    )
    .await;
    let order = json!({"OrderId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Amount": 5000});

    // The fraud check (pre-validation) passes, the credit check (pre-operation) refuses.
    steps.script(&[(204, ""), (400, "Credit limit exceeded for this customer")]);
    let (status, body) = app.post("/v1/events/contoso_ApproveOrder", &order).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "cancelled_by_step");
    assert_eq!(
        body["error"]["message"],
        "Credit limit exceeded for this customer"
    );
    let paths: Vec<String> = steps
        .received()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/fraud", "/credit"], "stage first, then rank");
    let (_, deliveries) = app.get("/v1/deliveries").await;
    assert!(
        deliveries.as_array().unwrap().is_empty(),
        "a vetoed event is not stored and makes no delivery"
    );

    // The same through Dataverse's route: Dataverse's error for a cancelled operation.
    steps.script(&[(204, ""), (400, "Credit limit exceeded for this customer")]);
    let (status, _, body) = invoke(&app, "contoso_ApproveOrder", &order).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "0x80040265");
    assert_eq!(
        body["error"]["message"],
        "Credit limit exceeded for this customer"
    );

    // One more attempt after a 503; then both pass and the event is stored and delivered.
    steps.script(&[(503, "busy"), (204, ""), (200, "")]);
    let (status, body) = app.post("/v1/events/contoso_ApproveOrder", &order).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["deliveries"], 1,
        "only the asynchronous subscription makes a delivery"
    );
    wait_for(
        Duration::from_secs(10),
        "the asynchronous delivery",
        || async { later.received().first().cloned() },
    )
    .await;
    let context = steps.received().last().unwrap().json();
    assert_eq!(context["MessageName"], "contoso_ApproveOrder");
    app.stop().await;
}

#[tokio::test]
async fn a_synchronous_step_cannot_be_registered_on_an_async_only_event() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let (status, _) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "s", "kind": "webhook", "url": receiver.url()}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post(
            "/v1/subscriptions",
            &json!({"event": "contoso_CustomerPurchase", "endpoint": "s", "mode": "sync"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["parameter"], "mode");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows only asynchronous steps"),
        "{body}"
    );
    let (status, body) = app.post("/v1/subscriptions", &json!({"event": "contoso_CustomerPurchase", "endpoint": "s", "stage": "pre_operation"})).await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn deliveries_are_reported_as_dataverse_system_jobs() {
    let app = app().await;
    let receiver = Receiver::start().await;
    app.subscribe_webhook(
        "jobs",
        &receiver.url(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "contoso_CustomerPurchase",
    )
    .await;
    receiver.answer(400);
    let r = app
        .req(
            reqwest::Method::POST,
            "/api/data/v9.2/contoso_CustomerPurchase",
        )
        .header("Prefer", "return=representation")
        .json(&purchase(3.0))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        204,
        "an action without response properties answers 204 whatever Prefer asks"
    );
    let failed = wait_for(Duration::from_secs(10), "a failed system job", || async {
        let (_, jobs) = app
            .get("/api/data/v9.2/asyncoperations?$filter=statuscode%20eq%2031")
            .await;
        jobs["value"].as_array().and_then(|v| v.first().cloned())
    })
    .await;
    assert_eq!(failed["statecode"], 3);
    assert_eq!(failed["statuscode"], 31);
    assert_eq!(failed["message"], "receiver answered 400");
    let id = failed["asyncoperationid"].as_str().unwrap();
    let (status, one) = app
        .get(&format!("/api/data/v9.2/asyncoperations({id})"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["statuscode"], 31);
    let (status, body) = app
        .get("/api/data/v9.2/asyncoperations?$filter=name%20eq%20'x'")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app
        .get("/api/data/v9.2/asyncoperations(6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10)")
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}
