//! The event pipeline as Dataverse runs it, over real sockets: synchronous steps that change
//! the event and set its response, shared variables, stage and rank order, all-or-nothing
//! storage, and the depth limit that stops a loop of receivers raising events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{run_python, wait_for, Receiver, TestApp};

const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Sales"
events = ["contoso_PlaceOrder", "contoso_PriceQuote", "contoso_OrderNoted"]

[[events]]
unique_name = "contoso_PlaceOrder"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [
  { name = "OrderId", type = "Guid", required = true },
  { name = "Currency", type = "String", required = true, max_length = 3 },
  { name = "Total", type = "Money", required = true },
  { name = "Note", type = "String" },
]

[[events]]
unique_name = "contoso_PriceQuote"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [{ name = "Sku", type = "String", required = true }, { name = "Quantity", type = "Integer", required = true }]
response_properties = [
  { name = "QuoteId", type = "Guid", required = true },
  { name = "Price", type = "Money", required = true },
  { name = "Approved", type = "Boolean" },
  { name = "ValidUntil", type = "DateTime" },
  { name = "Tier", type = "Integer" },
]

[[events]]
unique_name = "contoso_OrderNoted"
solution = "contoso"
allowed_steps = "async_only"
parameters = [{ name = "Note", type = "String", required = true }]
"#;

const ORDER_ID: &str = "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10";
const QUOTE_ID: &str = "0b8c3f5e-8a1d-4c2e-b7a9-3d6e1f2a4b5c";

async fn app_with(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.toml"), CATALOG).unwrap();
    let path = dir.keep();
    TestApp::builder()
        .config(&format!("[catalog]\ndir = \"{}\"\n{extra}", path.display()))
        .build()
        .await
}

fn order() -> Value {
    json!({"OrderId": ORDER_ID, "Currency": "usd", "Total": 100.0})
}

/// Registers a synchronous step `name` on `event`, calling `url`.
async fn step(
    app: &TestApp,
    event: &str,
    name: &str,
    url: &str,
    stage: &str,
    rank: i32,
    format: &str,
) {
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": name, "kind": "webhook", "url": url}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sub = json!({"name": name, "event": event, "endpoint": name, "mode": "sync",
        "stage": stage, "rank": rank, "format": format});
    let (status, body) = app.post("/v1/subscriptions", &sub).await;
    assert_eq!(status, 201, "{body}");
}

/// A `normalise` pre-operation step and an `erp` webhook subscription on `contoso_PlaceOrder`:
/// their receivers.
async fn normalise_and_erp(app: &TestApp) -> (Receiver, Receiver) {
    let steps = Receiver::start().await;
    let erp = Receiver::start().await;
    step(
        app,
        "contoso_PlaceOrder",
        "normalise",
        &steps.url(),
        "pre_operation",
        1,
        "params",
    )
    .await;
    app.subscribe_webhook(
        "erp",
        &erp.url(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "contoso_PlaceOrder",
    )
    .await;
    (steps, erp)
}

/// The parameter `key` of a Dataverse context's `InputParameters` (or another pair list).
fn pair<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|p| p["key"] == key)
        .map(|p| &p["value"])
}

async fn deliveries(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/v1/deliveries").await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_changes_the_event_changes_what_is_stored_sent_and_queued() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sb.json"),
        r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"orders"}]}]}}"#,
    )
    .unwrap();
    let emu = tokio::time::timeout(
        Duration::from_secs(10),
        local_emulator::Emulator::builder()
            .amqp_port(0)
            .http_port(0)
            .config_file(dir.path().join("sb.json"))
            .start(),
    )
    .await
    .expect("emulator starts within 10s")
    .expect("emulator starts");
    let app = app_with("").await;
    let (steps, erp) = normalise_and_erp(&app).await;
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "orders", "kind": "service_bus", "connection_string": emu.connection_string(), "entity": "orders"}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let (status, body) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "to-queue", "event": "contoso_PlaceOrder", "endpoint": "orders", "amqp": {"properties": ["Currency"]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    steps.script_json(&[(
        200,
        json!({"parameters": {"Currency": "EUR", "Total": 92.5}}),
    )]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"], 2);
    let id = body["id"].as_str().unwrap().to_owned();
    let sent = steps.received()[0].json();
    assert_eq!(
        sent["Currency"], "usd",
        "the step sees the event as the caller sent it"
    );

    // The stored event: the new values, and which step changed what.
    let (_, event) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(event["params"]["Currency"], "EUR");
    assert_eq!(event["params"]["Total"], 92.5);
    assert_eq!(event["depth"], 1);
    assert_eq!(
        event["changes"],
        json!([
            {"step": "normalise", "stage": "pre_operation", "parameter": "Currency", "from": "usd", "to": "EUR"},
            {"step": "normalise", "stage": "pre_operation", "parameter": "Total", "from": 100.0, "to": 92.5},
        ])
    );
    // The webhook delivery.
    let got = wait_for(Duration::from_secs(10), "the webhook delivery", || async {
        erp.received().first().cloned()
    })
    .await;
    let data = got.json()["data"].clone();
    assert_eq!(
        (data["Currency"].clone(), data["Total"].clone()),
        (json!("EUR"), json!(92.5))
    );
    assert_eq!(got.header("herald-depth"), "1");
    assert_eq!(
        got.header("x-correlation-id"),
        event["correlation_id"].as_str().unwrap()
    );
    // The Service Bus message, read back with the Python SDK.
    let queued = wait_for(Duration::from_secs(60), "the queue delivery", || async {
        let (_, ev) = app.get(&format!("/v1/events/{id}")).await;
        ev["deliveries"]
            .as_array()?
            .iter()
            .find(|d| d["endpoint_id"] == ep["endpoint"]["id"] && d["status"] == "succeeded")
            .cloned()
    })
    .await;
    let expect = json!({
        "message_id": queued["id"], "event_id": id, "type": "contoso_PlaceOrder",
        "source": "/herald/contoso", "correlation_id": event["correlation_id"],
        "dataschema": format!("{}/v1/catalog/events/contoso_PlaceOrder/schema", app.url),
        "properties": {"Currency": "EUR", "herald-depth": 1},
        "data": event["params"],
    });
    let out = run_python(
        "read_azure.py",
        &json!({"connection_string": emu.connection_string(), "queues": [{"path": "orders", "expect": [expect]}]}),
    );
    assert!(out.contains("OK queue orders: 1 messages"), "{out}");
    app.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_step_that_sets_a_wrong_type_is_refused_naming_it_and_the_parameter() {
    let app = app_with("").await;
    let (steps, erp) = normalise_and_erp(&app).await;
    steps.script_json(&[(200, json!({"parameters": {"Total": "ninety"}}))]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_step_answer");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"normalise\""),
        "{body}"
    );
    assert_eq!(body["error"]["details"][0]["parameter"], "Total");
    // The same refusal on the Dataverse route, as a plug-in that throws.
    steps.script_json(&[(200, json!({"parameters": {"Total": "ninety"}}))]);
    let (status, body) = app
        .post("/api/data/v9.2/contoso_PlaceOrder", &order())
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "0x80040265");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("normalise") && message.contains("Total"),
        "{message}"
    );
    assert!(deliveries(&app).await.is_empty(), "nothing is stored");
    assert!(erp.received().is_empty(), "nothing is delivered");
    app.stop().await;
}

#[tokio::test]
async fn steps_run_by_stage_then_rank_and_each_sees_what_the_one_before_set() {
    let app = app_with("").await;
    let steps = Receiver::start().await;
    let base = format!("http://{}", steps.addr);
    // Registered out of order: pre_operation rank 2, pre_validation, pre_operation rank 1.
    step(
        &app,
        "contoso_PlaceOrder",
        "third",
        &format!("{base}/third"),
        "pre_operation",
        2,
        "params",
    )
    .await;
    step(
        &app,
        "contoso_PlaceOrder",
        "first",
        &format!("{base}/first"),
        "pre_validation",
        9,
        "params",
    )
    .await;
    step(
        &app,
        "contoso_PlaceOrder",
        "second",
        &format!("{base}/second"),
        "pre_operation",
        1,
        "params",
    )
    .await;
    steps.script_json(&[
        (200, json!({"parameters": {"Note": "first"}})),
        (200, json!({"parameters": {"Note": "second"}})),
        (200, json!({"parameters": {"Note": "third"}})),
    ]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 202, "{body}");
    let calls: Vec<(String, Value)> = steps
        .received()
        .iter()
        .map(|r| (r.uri.path().to_owned(), r.json()["Note"].clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("/first".to_owned(), Value::Null),
            ("/second".to_owned(), json!("first")),
            ("/third".to_owned(), json!("second")),
        ],
        "stage first, then rank; each step sees the value the one before set"
    );
    let (_, event) = app
        .get(&format!("/v1/events/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(event["params"]["Note"], "third");
    let chain: Vec<(Value, Value, Value)> = event["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["step"].clone(), c["from"].clone(), c["to"].clone()))
        .collect();
    assert_eq!(
        chain,
        [
            (json!("first"), Value::Null, json!("first")),
            (json!("second"), json!("first"), json!("second")),
            (json!("third"), json!("second"), json!("third")),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_post_operation_refusal_leaves_nothing_stored_or_delivered() {
    let app = app_with("").await;
    let steps = Receiver::start().await;
    let erp = Receiver::start().await;
    let base = format!("http://{}", steps.addr);
    step(
        &app,
        "contoso_PlaceOrder",
        "normalise",
        &format!("{base}/pre"),
        "pre_operation",
        1,
        "params",
    )
    .await;
    step(
        &app,
        "contoso_PlaceOrder",
        "audit",
        &format!("{base}/post"),
        "post_operation",
        1,
        "dataverse",
    )
    .await;
    app.subscribe_webhook(
        "erp",
        &erp.url(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "contoso_PlaceOrder",
    )
    .await;
    steps.script_json(&[(200, json!({"parameters": {"Currency": "EUR"}}))]);
    steps.script(&[(409, "Audit store is read-only")]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "cancelled_by_step");
    assert_eq!(body["error"]["message"], "Audit store is read-only");
    let post = steps.received()[1].json();
    assert_eq!(
        (post["Mode"].clone(), post["Stage"].clone()),
        (json!(0), json!(40))
    );
    assert_eq!(
        pair(&post["InputParameters"], "Currency"),
        Some(&json!("EUR"))
    );
    assert!(deliveries(&app).await.is_empty(), "nothing is stored");
    // A post-operation step may not change parameters: the operation ran on them.
    steps.script_json(&[
        (200, json!({})),
        (200, json!({"parameters": {"Currency": "GBP"}})),
    ]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["parameter"], "parameters");
    assert!(deliveries(&app).await.is_empty());
    assert!(erp.received().is_empty(), "nothing is delivered");
    app.stop().await;
}

#[tokio::test]
async fn response_properties_come_back_typed_on_both_routes() {
    let app = app_with("").await;
    let steps = Receiver::start().await;
    let base = format!("http://{}", steps.addr);
    step(
        &app,
        "contoso_PriceQuote",
        "price",
        &format!("{base}/price"),
        "pre_operation",
        1,
        "dataverse",
    )
    .await;
    step(
        &app,
        "contoso_PriceQuote",
        "approve",
        &format!("{base}/approve"),
        "post_operation",
        1,
        "params",
    )
    .await;
    let answers = || {
        steps.script_json(&[
            (200, json!({"response": {"Price": 42.5, "QuoteId": QUOTE_ID}})),
            (200, json!({"response": {"Approved": true, "ValidUntil": "2026-12-31T00:00:00Z", "Tier": 2}})),
        ])
    };
    let quote = json!({"Sku": "SKU-1", "Quantity": 3});
    let expected = json!({"QuoteId": QUOTE_ID, "Price": 42.5, "Approved": true, "ValidUntil": "2026-12-31T00:00:00Z", "Tier": 2});

    answers();
    let (status, body) = app.post("/v1/events/contoso_PriceQuote", &quote).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], expected);
    assert_eq!(body["deliveries"], 0);
    let id = body["id"].as_str().unwrap().to_owned();
    // The pre-operation step's Dataverse-format call is a synchronous stage-20 context.
    let price_call = steps.received()[0].json();
    assert_eq!(
        (price_call["Mode"].clone(), price_call["Stage"].clone()),
        (json!(0), json!(20))
    );
    assert_eq!(price_call["IsInTransaction"], true);
    let (_, event) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(event["response"], expected);

    // Dataverse's route: the Custom API response, field by field.
    answers();
    let r = app
        .req(reqwest::Method::POST, "/api/data/v9.2/contoso_PriceQuote")
        .json(&quote)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["odata-version"], "4.0");
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        got["@odata.context"],
        format!(
            "{}/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.contoso_PriceQuoteResponse",
            app.url
        )
    );
    assert_eq!(got["QuoteId"], QUOTE_ID);
    assert_eq!(got["Price"], 42.5);
    assert_eq!(got["Approved"], true);
    assert_eq!(got["ValidUntil"], "2026-12-31T00:00:00Z");
    assert_eq!(got["Tier"], 2);
    assert_eq!(
        got.as_object().unwrap().len(),
        6,
        "the context and five properties: {got}"
    );
    // Prefer: return=minimal → 204, as the caller asked.
    answers();
    let r = app
        .req(reqwest::Method::POST, "/api/data/v9.2/contoso_PriceQuote")
        .header("prefer", "odata.include-annotations=\"*\", return=minimal")
        .json(&quote)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["preference-applied"], "return=minimal");

    // An idempotent replay answers with the first response, whatever the steps say now.
    answers();
    let keyed = |key: &'static str| {
        app.req(reqwest::Method::POST, "/v1/events/contoso_PriceQuote")
            .header("idempotency-key", key)
            .json(&quote)
    };
    let first: Value = keyed("q-1").send().await.unwrap().json().await.unwrap();
    steps.script_json(&[
        (
            200,
            json!({"response": {"Price": 99.0, "QuoteId": QUOTE_ID}}),
        ),
        (200, json!({})),
    ]);
    let again = keyed("q-1").send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["id"].clone(), again["response"].clone()),
        (first["id"].clone(), expected.clone())
    );

    // A wrong type, and a required property nobody set.
    steps.script_json(&[(200, json!({"response": {"Price": "cheap"}}))]);
    let (status, body) = app.post("/v1/events/contoso_PriceQuote", &quote).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["parameter"], "response.Price");
    steps.script_json(&[(200, json!({"response": {"Price": 1.0}})), (200, json!({}))]);
    let (status, body) = app.post("/v1/events/contoso_PriceQuote", &quote).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "response_incomplete");
    assert_eq!(body["error"]["details"][0]["parameter"], "QuoteId");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("QuoteId"));
    app.stop().await;
}

#[tokio::test]
async fn shared_variables_reach_later_steps_and_dataverse_deliveries() {
    let app = app_with("").await;
    let steps = Receiver::start().await;
    let erp = Receiver::start().await;
    let base = format!("http://{}", steps.addr);
    step(
        &app,
        "contoso_PlaceOrder",
        "rates",
        &format!("{base}/rates"),
        "pre_validation",
        1,
        "params",
    )
    .await;
    step(
        &app,
        "contoso_PlaceOrder",
        "convert",
        &format!("{base}/convert"),
        "pre_operation",
        1,
        "dataverse",
    )
    .await;
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "erp", "kind": "webhook", "url": erp.url()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "erp", "event": "contoso_PlaceOrder", "endpoint": "erp", "format": "dataverse"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    steps.script_json(&[
        (
            200,
            json!({"shared_variables": {"rate": 0.925, "source": "ECB — Frankfurt"}}),
        ),
        (
            200,
            json!({"parameters": {"Currency": "EUR"}, "shared_variables": {"converted": true}}),
        ),
    ]);
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 202, "{body}");
    let second = &steps.received()[1];
    let context = second.json();
    assert_eq!(
        pair(&context["SharedVariables"], "rate"),
        Some(&json!(0.925))
    );
    let header: Value = serde_json::from_str(&second.header("herald-shared-variables")).unwrap();
    assert_eq!(header, json!({"rate": 0.925, "source": "ECB — Frankfurt"}));
    let got = wait_for(
        Duration::from_secs(10),
        "the Dataverse delivery",
        || async { erp.received().first().cloned() },
    )
    .await;
    let delivered = got.json();
    assert_eq!(
        pair(&delivered["SharedVariables"], "rate"),
        Some(&json!(0.925))
    );
    assert_eq!(
        pair(&delivered["SharedVariables"], "converted"),
        Some(&json!(true))
    );
    assert_eq!(
        pair(&delivered["InputParameters"], "Currency"),
        Some(&json!("EUR"))
    );
    assert_eq!(
        (delivered["Mode"].clone(), delivered["Depth"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(got.header("x-ms-dynamics-depth"), "1");
    let (_, event) = app
        .get(&format!("/v1/events/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(event["shared_variables"]["converted"], true);
    app.stop().await;
}

/// A receiver that sends every event it gets back to Herald as a new event, with the depth and
/// correlation id of the delivery it handles, and keeps Herald's answers.
#[derive(Clone, Default)]
struct Echo {
    answers: Arc<Mutex<Vec<(u16, Value)>>>,
}

async fn start_echo(herald: String, key: String, route: &'static str) -> (Echo, String) {
    let echo = Echo::default();
    let state = (echo.clone(), herald, key, reqwest::Client::new());
    let handler = move |axum::extract::State((echo, herald, key, http)): axum::extract::State<
        (Echo, String, String, reqwest::Client),
    >,
                        headers: axum::http::HeaderMap| async move {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (depth_header, depth) = if route.starts_with("/api") {
            ("x-ms-dynamics-depth", h("x-ms-dynamics-depth"))
        } else {
            ("herald-depth", h("herald-depth"))
        };
        let r = http
            .post(format!("{herald}{route}"))
            .bearer_auth(&key)
            .header(depth_header, depth)
            .header("x-correlation-id", h("x-correlation-id"))
            .json(&json!({"Note": "again"}))
            .send()
            .await
            .expect("Herald answers");
        let status = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        echo.answers.lock().unwrap().push((status, body));
        axum::http::StatusCode::NO_CONTENT
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/echo", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/echo", axum::routing::post(handler))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (echo, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_re_posts_every_event_stops_at_the_depth_limit() {
    for (route, format, refusal_code) in [
        ("/v1/events/contoso_OrderNoted", "params", "depth_exceeded"),
        (
            "/api/data/v9.2/contoso_OrderNoted",
            "dataverse",
            "0x80040265",
        ),
    ] {
        let app = app_with("").await;
        let (echo, url) =
            start_echo(app.url.clone(), crate::support::ADMIN_KEY.to_owned(), route).await;
        let (status, body) = app
            .post(
                "/v1/endpoints",
                &json!({"name": "echo", "kind": "webhook", "url": url}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = app
            .post(
                "/v1/subscriptions",
                &json!({"name": "echo", "event": "contoso_OrderNoted", "endpoint": "echo", "format": format}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let r = app
            .req(reqwest::Method::POST, "/v1/events/contoso_OrderNoted")
            .header("x-correlation-id", "chain-1")
            .json(&json!({"Note": "first"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        // Answers are kept as each echo finishes; a deeper one may finish first (Herald starts
        // a delivery as soon as its event is committed, before the echo that sent it is done).
        let answers = wait_for(
            Duration::from_secs(30),
            "eight answers, one a refusal",
            || async {
                let a = echo.answers.lock().unwrap().clone();
                (a.len() == 8 && a.iter().any(|(s, _)| *s == 400)).then_some(a)
            },
        )
        .await;
        // Depth 1 came from outside; the receiver raised depths 2 to 8, and 9 was refused.
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort_unstable();
        let ok = if route.starts_with("/api") { 204 } else { 202 };
        assert_eq!(statuses, [vec![ok; 7], vec![400]].concat(), "{answers:?}");
        let (_, refusal) = answers.iter().find(|(s, _)| *s == 400).unwrap();
        assert_eq!(refusal["error"]["code"], refusal_code);
        let message = refusal["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("chain-1") && message.contains('9'),
            "{message}"
        );
        if route.starts_with("/api") {
            assert!(message.starts_with("This workflow job was canceled because the workflow that started it included an infinite loop."));
        }
        // Eight events, one delivery each, all delivered; no ninth.
        let all = wait_for(
            Duration::from_secs(10),
            "eight finished deliveries",
            || async {
                let ds = deliveries(&app).await;
                (ds.len() == 8 && ds.iter().all(|d| d["status"] == "succeeded")).then_some(ds)
            },
        )
        .await;
        let mut depths = Vec::new();
        for d in &all {
            let (_, event) = app
                .get(&format!("/v1/events/{}", d["event_id"].as_str().unwrap()))
                .await;
            assert_eq!(
                event["correlation_id"], "chain-1",
                "the chain keeps its correlation id"
            );
            depths.push(event["depth"].as_u64().unwrap());
        }
        depths.sort_unstable();
        assert_eq!(depths, (1..=8).collect::<Vec<u64>>());
        assert_eq!(echo.answers.lock().unwrap().len(), 8, "nothing loops on");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_depth_header_that_is_not_a_depth_is_refused_by_name() {
    let app = app_with("[pipeline]\nmax_depth = 2").await;
    for bad in ["zero", "0", "-1"] {
        let r = app
            .req(reqwest::Method::POST, "/v1/events/contoso_OrderNoted")
            .header("herald-depth", bad)
            .json(&json!({"Note": "n"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["details"][0]["parameter"], "herald-depth",
            "{body}"
        );
    }
    let send = |depth: &'static str| {
        app.req(reqwest::Method::POST, "/v1/events/contoso_OrderNoted")
            .header("herald-depth", depth)
            .json(&json!({"Note": "n"}))
            .send()
    };
    assert_eq!(
        send("1").await.unwrap().status(),
        202,
        "depth 2 is the configured maximum"
    );
    assert_eq!(send("2").await.unwrap().status(), 400, "depth 3 is past it");
    app.stop().await;
}
