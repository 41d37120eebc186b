//! Service Bus and Event Hubs destinations against the local emulator over real sockets,
//! read back with the official Python SDKs (`azure-servicebus`, `azure-eventhub`).

use std::time::Duration;

use local_emulator::faults::FaultPlan;
use local_emulator::{Emulator, RunningEmulator};
use serde_json::{json, Value};

use crate::support::process::{self, HeraldProcess};
use crate::support::{purchase, run_python, wait_for, TestApp};

const SB_CONFIG: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns",
  "Queues":[{"Name":"orders","Properties":{"MaxDeliveryCount":10}},
    {"Name":"carts","Properties":{"RequiresSession":true}},
    {"Name":"deduplicated","Properties":{"RequiresDuplicateDetection":true,"DuplicateDetectionHistoryTimeWindow":"PT10M"}}],
  "Topics":[{"Name":"purchases","Subscriptions":[
     {"Name":"all"},
     {"Name":"big","Rules":[{"Name":"big","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"Total > 100 AND Currency = 'EUR'"}}}]}]}]}]}}"#;
const EH_CONFIG: &str = r#"{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"emulatorNs1",
  "Entities":[{"Name":"purchases-hub","PartitionCount":"2","ConsumerGroups":[]}]}]}}"#;

/// An emulator on free ports with the entities above, keeping its state in `dir` when given.
pub(crate) async fn emulator(
    dir: &std::path::Path,
    data: Option<&std::path::Path>,
    port: u16,
) -> RunningEmulator {
    let sb = dir.join("sb.json");
    let eh = dir.join("eh.json");
    std::fs::write(&sb, SB_CONFIG).expect("config written");
    std::fs::write(&eh, EH_CONFIG).expect("config written");
    let mut b = Emulator::builder()
        .amqp_port(port)
        .http_port(0)
        .config_file(sb)
        .config_file(eh);
    if let Some(d) = data {
        b = b.data_dir(d);
    }
    tokio::time::timeout(Duration::from_secs(10), b.start())
        .await
        .expect("emulator starts within 10s")
        .expect("emulator starts")
}

/// Herald's admin API, in-process or as a child process.
#[derive(Clone, Copy)]
pub(crate) struct Api<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl<'a> Api<'a> {
    pub(crate) fn of(app: &'a TestApp) -> Self {
        Api {
            http: &app.http,
            base: &app.url,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        process::post(self.http, self.base, path, body.clone()).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        process::get(self.http, self.base, path).await
    }
}

/// Creates an endpoint; returns its id.
pub(crate) async fn endpoint(app: Api<'_>, body: Value) -> String {
    let (status, ep) = app.post("/v1/endpoints", &body).await;
    assert_eq!(status, 201, "endpoint created: {ep}");
    ep["endpoint"]["id"].as_str().expect("id").to_owned()
}

pub(crate) async fn subscribe(app: Api<'_>, body: Value) {
    let (status, sub) = app.post("/v1/subscriptions", &body).await;
    assert_eq!(status, 201, "subscription created: {sub}");
}

/// Sends a valid `contoso_CustomerPurchase`; returns the event id.
async fn send_purchase(app: Api<'_>, total: f64) -> String {
    let (status, body) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(total))
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// The deliveries of `event_id`, once all have finished. An attempt may take as long as
/// Event Hubs' send timeout (90 s, the SDK retrying inside it) when the emulator goes away
/// mid-send, or two Service Bus settlement timeouts (30 s each) on a loaded machine.
pub(crate) async fn finished_deliveries(app: Api<'_>, event_id: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    wait_for(Duration::from_secs(155), "deliveries to finish", || async {
        let (_, ev) = app.get(&format!("/v1/events/{event_id}")).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not finish: {ev:#}"
        );
        let ds = ev["deliveries"].as_array()?.clone();
        (!ds.is_empty()
            && ds
                .iter()
                .all(|d| d["status"] != "pending" && d["status"] != "in_flight"))
        .then_some(ds)
    })
    .await
}

/// What the Python reader expects of the message of `delivery` of `event`.
pub(crate) fn expected(base: &str, event: &Value, delivery: &Value, properties: Value) -> Value {
    json!({
        "message_id": delivery["id"],
        "event_id": event["id"],
        "type": event["name"],
        "source": format!("/herald/{}", event["solution"].as_str().unwrap()),
        "correlation_id": event["correlation_id"],
        "dataschema": format!("{}/v1/catalog/events/{}/schema", base, event["name"].as_str().unwrap()),
        "properties": properties,
        "data": event["params"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_queue_a_filtered_topic_subscription_and_an_event_hub() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = emulator(dir.path(), None, 0).await;
    let test_app = TestApp::builder()
        .config("[server]\npublic_url = \"https://herald.example\"")
        .build()
        .await;
    let app = Api::of(&test_app);
    let conn = emu.connection_string();
    let queue = endpoint(app, json!({"name": "orders", "kind": "service_bus", "connection_string": conn, "entity": "orders"})).await;
    let topic = endpoint(app, json!({"name": "purchases-topic", "kind": "service_bus", "connection_string": conn, "entity": "purchases"})).await;
    let hub = endpoint(app, json!({"name": "purchases-hub", "kind": "event_hubs", "connection_string": conn, "entity": "purchases-hub"})).await;
    let promoted = json!({"properties": ["Total", "Currency"]});
    subscribe(app, json!({"name": "to-queue", "event": "contoso_CustomerPurchase", "endpoint": queue, "amqp": promoted})).await;
    subscribe(app, json!({"name": "to-topic", "event": "contoso_CustomerPurchase", "endpoint": topic, "amqp": promoted})).await;
    subscribe(
        app,
        json!({"name": "to-hub", "event": "contoso_CustomerPurchase", "endpoint": hub,
        "amqp": {"properties": ["Total", "Currency"], "partition_key": "CustomerId"}}),
    )
    .await;

    let big = send_purchase(app, 250.0).await;
    let small = send_purchase(app, 50.0).await;
    let mut by_endpoint: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let mut events = std::collections::HashMap::new();
    for id in [&big, &small] {
        let (_, event) = app.get(&format!("/v1/events/{id}")).await;
        for d in finished_deliveries(app, id).await {
            assert_eq!(d["status"], "succeeded", "delivery {d}");
            let props = json!({"Total": event["params"]["Total"], "Currency": "EUR"});
            let mut e = expected("https://herald.example", &event, &d, props);
            if d["endpoint_id"] == hub.as_str() {
                e["partition_key"] = event["params"]["CustomerId"].clone();
            }
            by_endpoint
                .entry(d["endpoint_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(e);
        }
        events.insert(id.clone(), event);
    }
    let of = |ep: &str| by_endpoint.get(ep).cloned().unwrap_or_default();
    let topic_all = of(&topic);
    let topic_big: Vec<Value> = topic_all
        .iter()
        .filter(|e| e["event_id"] == big.as_str())
        .cloned()
        .collect();
    assert_eq!(
        (
            of(&queue).len(),
            topic_all.len(),
            topic_big.len(),
            of(&hub).len()
        ),
        (2, 2, 1, 2)
    );
    let out = run_python(
        "read_azure.py",
        &json!({
            "connection_string": conn,
            "queues": [{"path": "orders", "expect": of(&queue)}],
            "subscriptions": [
                {"topic": "purchases", "subscription": "all", "expect": topic_all},
                {"topic": "purchases", "subscription": "big", "expect": topic_big},
            ],
            "hubs": [{"name": "purchases-hub", "expect": of(&hub)}],
        }),
    );
    assert_eq!(out.matches("OK ").count(), 4, "{out}");
    test_app.stop().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entity_and_a_wrong_key_dead_letter_with_the_brokers_reason_while_others_flow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = emulator(dir.path(), None, 0).await;
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}\"\n[webhooks]\nallow_networks = [\"127.0.0.0/8\"]\n",
            dir.path().join("herald.db").display()
        ),
    )
    .expect("config written");
    let mut herald = HeraldProcess::start(
        &dir.path().join("herald.toml"),
        dir.path().join("herald.log"),
        &[],
    );
    let http = reqwest::Client::new();
    let app = Api {
        http: &http,
        base: &herald.url,
    };
    let port = emu.amqp_addr().port();
    let good = endpoint(app, json!({"name": "good", "kind": "service_bus", "connection_string": emu.connection_string(), "entity": "orders"})).await;
    let missing = endpoint(app, json!({"name": "missing", "kind": "service_bus", "connection_string": emu.connection_string(), "entity": "no-such-queue"})).await;
    let wrong_key = "not-the-key-0123456789";
    let bad_key = endpoint(app, json!({"name": "bad-key", "kind": "service_bus", "namespace": format!("amqp://127.0.0.1:{port}"),
        "entity": "orders", "credential": {"type": "sas_key", "key_name": "RootManageSharedAccessKey", "key": wrong_key}})).await;
    let bad_hub = endpoint(app, json!({"name": "bad-hub", "kind": "event_hubs", "namespace": format!("amqp://127.0.0.1:{port}"),
        "entity": "purchases-hub", "credential": {"type": "sas_key", "key_name": "RootManageSharedAccessKey", "key": wrong_key}})).await;
    for (name, ep) in [
        ("s-good", &good),
        ("s-missing", &missing),
        ("s-bad-key", &bad_key),
        ("s-bad-hub", &bad_hub),
    ] {
        subscribe(
            app,
            json!({"name": name, "event": "contoso_CustomerPurchase", "endpoint": ep}),
        )
        .await;
    }
    // Secrets never come back from the API.
    let (_, listed) = app.get("/v1/endpoints").await;
    let text = listed.to_string();
    assert!(
        !text.contains(wrong_key) && !text.contains("SAS_KEY_VALUE"),
        "{text}"
    );
    assert!(text.contains("\"type\":\"sas_key\""), "{text}");

    let id = send_purchase(app, 120.0).await;
    let ds = finished_deliveries(app, &id).await;
    let status = |ep: &str| {
        let d = ds
            .iter()
            .find(|d| d["endpoint_id"] == ep)
            .expect("a delivery per endpoint");
        (
            d["status"].as_str().unwrap().to_owned(),
            d["last_error"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(status(&good).0, "succeeded");
    let (st, err) = status(&missing);
    assert_eq!(st, "dead_lettered");
    assert!(err.contains("amqp:not-found"), "{err}");
    for ep in [&bad_key, &bad_hub] {
        let (st, err) = status(ep);
        assert_eq!(st, "dead_lettered", "{err}");
        assert!(err.contains("unauthorized") || err.contains("401"), "{err}");
        assert!(!err.contains(wrong_key), "{err}");
    }
    assert_eq!(emu.peek("orders", 10).len(), 1);
    herald.kill();
    // Herald logged at debug level: neither the right key nor the wrong one is in its log.
    let log = std::fs::read_to_string(dir.path().join("herald.log")).expect("log");
    assert!(log.contains("DEBUG"), "debug logs were written");
    assert!(
        !log.contains(wrong_key) && !log.contains("SAS_KEY_VALUE"),
        "a key is in the log"
    );
    assert!(
        !log.contains("SharedAccessSignature sr="),
        "a SAS token is in the log"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_reconnects_after_the_emulator_restarts_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("emulator-data");
    let emu = emulator(dir.path(), Some(&data), 0).await;
    let port = emu.amqp_addr().port();
    let test_app = TestApp::start().await;
    let app = Api::of(&test_app);
    let conn = emu.connection_string();
    let queue = endpoint(app, json!({"name": "orders", "kind": "service_bus", "connection_string": conn, "entity": "orders"})).await;
    let hub = endpoint(app, json!({"name": "hub", "kind": "event_hubs", "connection_string": conn, "entity": "purchases-hub", "partition_id": "1"})).await;
    subscribe(
        app,
        json!({"name": "q", "event": "contoso_CustomerPurchase", "endpoint": queue}),
    )
    .await;
    subscribe(
        app,
        json!({"name": "h", "event": "contoso_CustomerPurchase", "endpoint": hub}),
    )
    .await;

    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(send_purchase(app, 10.0 + f64::from(i)).await);
    }
    wait_for(
        Duration::from_secs(30),
        "the first events on the queue",
        || async { (emu.peek("orders", 100).len() >= 10).then_some(()) },
    )
    .await;
    emu.shutdown().await;
    // While the emulator is down, more events are accepted.
    for i in 10..20 {
        ids.push(send_purchase(app, 10.0 + f64::from(i)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emu = emulator(dir.path(), Some(&data), port).await;
    for i in 20..30 {
        ids.push(send_purchase(app, 10.0 + f64::from(i)).await);
    }
    for id in &ids {
        for d in finished_deliveries(app, id).await {
            assert_eq!(d["status"], "succeeded", "{d}");
        }
    }
    let queued: std::collections::HashSet<String> = emu
        .peek("orders", 1000)
        .iter()
        .filter_map(|m| m.msg.system.message_id.clone())
        .collect();
    let (_, listed) = app
        .get(&format!("/v1/deliveries?endpoint_id={queue}&limit=1000"))
        .await;
    let sent: std::collections::HashSet<String> = listed
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 30);
    assert!(sent.is_subset(&queued), "every delivery is on the queue");
    assert!(emu.partition_len("purchases-hub", 1) >= 30);
    test_app.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn amqp_endpoints_and_options_are_checked() {
    let app = TestApp::start().await;
    let (status, body) = app
        .post("/v1/endpoints", &json!({"name": "x", "kind": "service_bus", "namespace": "ftp://x", "entity": "q", "credential": {"type": "default"}}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["parameter"], "namespace",
        "{body}"
    );
    let (status, body) = app
        .post("/v1/endpoints", &json!({"name": "x", "kind": "service_bus", "connection_string": "Endpoint=sb://x/;SharedAccessKey=topsecret", "entity": "q"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("topsecret"), "{body}");
    let (status, body) = app
        .post("/v1/endpoints", &json!({"name": "x", "kind": "event_hubs", "namespace": "contoso.servicebus.windows.net", "entity": "h", "url": "https://x"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["parameter"], "url", "{body}");
    let ep = endpoint(Api::of(&app), json!({"name": "sb", "kind": "service_bus", "namespace": "contoso.servicebus.windows.net", "entity": "q", "credential": {"type": "managed_identity"}})).await;
    let (status, body) = app
        .post("/v1/subscriptions", &json!({"event": "contoso_CustomerPurchase", "endpoint": ep, "amqp": {"properties": ["Totl"]}}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["parameter"], "amqp.properties",
        "{body}"
    );
    let (status, body) = app
        .post("/v1/subscriptions", &json!({"event": "contoso_CustomerPurchase", "endpoint": ep, "amqp": {"partition_key": "CustomerId"}}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"][0]["parameter"], "amqp.partition_key",
        "{body}"
    );
    subscribe(Api::of(&app), json!({"event": "contoso_CustomerPurchase", "endpoint": ep, "amqp": {"session_id": "CustomerId", "time_to_live": "1h"}})).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_from_a_parameter_reach_a_session_queue_in_order_per_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = emulator(dir.path(), None, 0).await;
    let test_app = TestApp::start().await;
    let app = Api::of(&test_app);
    let conn = emu.connection_string();
    // One in flight at a time, so Herald sends in the order it accepted.
    let carts = endpoint(app, json!({"name": "carts", "kind": "service_bus", "connection_string": conn, "entity": "carts", "max_concurrency": 1})).await;
    subscribe(app, json!({"event": "contoso_CustomerPurchase", "endpoint": carts, "amqp": {"session_id": "CustomerId"}})).await;
    let customers = [
        "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10",
        "0b5d3c1e-8a9f-4c2b-b7e6-1d2c3b4a5f60",
    ];
    let mut order: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for i in 0..6 {
        let customer = customers[i % 2];
        let mut body = purchase(f64::from(i as u32 + 1));
        body["CustomerId"] = json!(customer);
        let (status, ev) = app.post("/v1/events/contoso_CustomerPurchase", &body).await;
        assert_eq!(status, 202, "{ev}");
        let ds = finished_deliveries(app, ev["id"].as_str().expect("id")).await;
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0]["status"], "succeeded", "{}", ds[0]);
        order
            .entry(customer)
            .or_default()
            .push(ds[0]["id"].as_str().expect("id").to_owned());
    }
    let sessions: Vec<Value> = order
        .iter()
        .map(|(sid, ids)| json!({"queue": "carts", "session_id": sid, "expect": ids}))
        .collect();
    let out = run_python(
        "read_sessions.py",
        &json!({"connection_string": conn, "sessions": sessions}),
    );
    assert_eq!(out.matches("OK session").count(), 2, "{out}");
    test_app.stop().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_settlement_was_lost_is_sent_again_and_duplicate_detection_keeps_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emu = emulator(dir.path(), None, 0).await;
    let test_app = TestApp::start().await;
    let app = Api::of(&test_app);
    let conn = emu.connection_string();
    let q = endpoint(app, json!({"name": "dedup", "kind": "service_bus", "connection_string": conn, "entity": "deduplicated"})).await;
    subscribe(
        app,
        json!({"event": "contoso_CustomerPurchase", "endpoint": q}),
    )
    .await;
    emu.arm_faults(FaultPlan {
        lose_settlements: 1,
    });
    let id = send_purchase(app, 10.0).await;
    let ds = finished_deliveries(app, &id).await;
    assert_eq!(ds[0]["status"], "succeeded", "{}", ds[0]);
    assert_eq!(
        emu.duplicates_dropped("deduplicated"),
        1,
        "the lost settlement made Herald send the same message again"
    );
    assert_eq!(
        emu.peek("deduplicated", 10).len(),
        1,
        "the broker kept one copy"
    );
    let out = run_python(
        "read_sessions.py",
        &json!({"connection_string": conn, "queues": [{"queue": "deduplicated", "expect": [ds[0]["id"]]}]}),
    );
    assert!(out.contains("OK queue deduplicated: 1 messages"), "{out}");
    test_app.stop().await;
    emu.shutdown().await;
}
