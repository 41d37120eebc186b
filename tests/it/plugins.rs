//! Plug-ins: the sandbox's limits on hand-written components, then plug-ins pushed over the
//! API and run as steps and asynchronous plug-ins over real sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::plugins::{Answer, Grants, Limit, Limits, PluginError, Sandbox, Version};

use crate::support::plugins::{self, component};

fn version(name: &str) -> Version {
    Version {
        name: name.into(),
        version: 1,
    }
}

async fn run(sandbox: &Sandbox, body: &str, input: &str) -> Result<Answer, PluginError> {
    let compiled = sandbox
        .compile(Arc::from(component(body)))
        .await
        .expect("test component compiles");
    sandbox
        .run(&compiled, &version("test"), input, Grants::default())
        .await
}

#[tokio::test]
async fn a_component_answers_and_refuses_through_the_wit_world() {
    let sandbox = Sandbox::new(Limits::default(), None).unwrap();
    assert_eq!(
        run(&sandbox, plugins::TRIVIAL, "{}").await.unwrap(),
        Answer::Ok("{}".into())
    );
    let input = r#"{"kind":"step","event":{"params":{"Total":42}}}"#;
    assert_eq!(
        run(&sandbox, plugins::ECHO, input).await.unwrap(),
        Answer::Ok(input.into())
    );
    assert_eq!(
        run(&sandbox, plugins::REFUSE, "{}").await.unwrap(),
        Answer::Refused("refused by the test component".into())
    );
    let stats = sandbox.statistics().of("test");
    assert_eq!(stats[0].executions, 3);
    assert_eq!(stats[0].failures, 0);
    assert!(stats[0].mean_fuel > 0, "{stats:?}");
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_its_budget_and_by_its_deadline() {
    // Fuel first: the default budget, with a deadline far enough that a machine busy with
    // other tests spends the budget first (the default 2 s raced it under heavy load).
    let limits = Limits {
        deadline: Duration::from_secs(120),
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, None).unwrap();
    let err = run(&sandbox, plugins::SPIN, "{}").await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Limit {
                limit: Limit::Fuel(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("test@1"), "{err}");
    assert!(err.to_string().contains("instruction budget"), "{err}");

    // With a budget too large to matter, the deadline stops it, on time.
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, None).unwrap();
    let started = Instant::now();
    let err = run(&sandbox, plugins::SPIN, "{}").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            PluginError::Limit {
                limit: Limit::Deadline(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "stopped after {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_looping_plugin_leaves_the_runtime_free_for_others() {
    // One thread: if the plug-in held it, the ticker below could not count.
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, None).unwrap();
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let err = run(&sandbox, plugins::SPIN, "{}").await.unwrap_err();
    ticker.abort();
    assert!(matches!(err, PluginError::Limit { .. }), "{err}");
    let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        ticks >= 5,
        "the runtime ran {ticks} times while the plug-in looped"
    );
}

#[tokio::test]
async fn a_plugin_that_allocates_without_bound_is_stopped_at_its_cap() {
    let limits = Limits {
        memory: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, None).unwrap();
    let err = run(&sandbox, plugins::HOG, "{}").await.unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Limit {
                limit: Limit::Memory(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("memory cap (8 MiB)"), "{err}");
    // The sandbox still serves others.
    assert_eq!(
        run(&sandbox, plugins::TRIVIAL, "{}").await.unwrap(),
        Answer::Ok("{}".into())
    );
}

#[tokio::test]
async fn a_trap_and_an_oversized_answer_are_refusals_naming_the_plugin() {
    let sandbox = Sandbox::new(Limits::default(), None).unwrap();
    let err = run(&sandbox, plugins::TRAP, "{}").await.unwrap_err();
    assert!(matches!(err, PluginError::Trapped { .. }), "{err}");
    assert!(
        err.to_string().starts_with("plug-in test@1 failed"),
        "{err}"
    );

    let limits = Limits {
        answer: 16,
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits, None).unwrap();
    let err = run(&sandbox, plugins::ECHO, &"x".repeat(100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::Limit {
                limit: Limit::Answer(16),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_and_core_modules_are_refused_with_a_reason() {
    let sandbox = Sandbox::new(Limits::default(), None).unwrap();
    let err = sandbox
        .compile(Arc::from(b"hello, world".to_vec()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a WebAssembly component"),
        "{err}"
    );
    let core = wat::parse_str("(module)").unwrap();
    let err = sandbox.compile(Arc::from(core)).await.unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    let no_handler = wat::parse_str("(component)").unwrap();
    let err = sandbox.compile(Arc::from(no_handler)).await.unwrap_err();
    assert!(
        err.to_string().contains("herald:plugin/handler@1.0.0"),
        "{err}"
    );
    let importer = wat::parse_str(
        r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func)))))"#,
    )
    .unwrap();
    let err = sandbox.compile(Arc::from(importer)).await.unwrap_err();
    assert!(err.to_string().contains("does not grant"), "{err}");
}

#[tokio::test]
async fn a_compiled_component_is_cached_on_disk_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Arc<[u8]> = Arc::from(component(plugins::TRIVIAL));
    let first = Sandbox::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
    let compiled = first.compile(bytes.clone()).await.unwrap();
    assert!(!compiled.from_disk);
    let again = first.compile(bytes.clone()).await.unwrap();
    assert!(Arc::ptr_eq(&compiled, &again), "compiled once per process");
    let second = Sandbox::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
    let loaded = second.compile(bytes).await.unwrap();
    assert!(loaded.from_disk);
    assert_eq!(
        second
            .run(&loaded, &version("cached"), "{}", Grants::default())
            .await
            .unwrap(),
        Answer::Ok("{}".into())
    );
}

// Over the API, with the store and the pipeline.

use serde_json::{json, Value};

use crate::support::{wait_for, Receiver, TestApp};

const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Sales"
events = ["contoso_PlaceOrder", "contoso_OrderNoted"]

[[events]]
unique_name = "contoso_PlaceOrder"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [
  { name = "OrderId", type = "Guid", required = true },
  { name = "Total", type = "Money", required = true },
]

[[events]]
unique_name = "contoso_OrderNoted"
solution = "contoso"
allowed_steps = "async_only"
parameters = [{ name = "Note", type = "String", required = true }]
"#;

/// The webhook signing secret of the tests' receivers.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Herald with `catalog` and `extra` configuration.
async fn app_with(catalog: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.toml"), catalog).unwrap();
    let path = dir.keep();
    TestApp::builder()
        .config(&format!("[catalog]\ndir = \"{}\"\n{extra}", path.display()))
        .build()
        .await
}

async fn app(extra: &str) -> TestApp {
    app_with(CATALOG, extra).await
}

async fn push(app: &TestApp, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = app
        .req(
            reqwest::Method::POST,
            &format!("/v1/plugins?name={name}&solution=contoso&description=test"),
        )
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `base` with the fields of `more`.
fn merged(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// Makes a plug-in endpoint `name` with the fields of `plugin` and a subscription to it with
/// the fields of `subscription`; answers the endpoint's id.
async fn plugin_endpoint(app: &TestApp, name: &str, plugin: Value, subscription: Value) -> String {
    let body = merged(json!({"name": name, "kind": "plugin"}), plugin);
    let (status, endpoint) = app.post("/v1/endpoints", &body).await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &merged(json!({"endpoint": id}), subscription),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    id
}

/// Makes a plug-in endpoint `name` running `plugin` and subscribes it to `event` (a step
/// when `mode` is `sync`).
async fn register(app: &TestApp, name: &str, plugin: Value, event: &str, mode: &str) -> String {
    let subscription = json!({"event": event, "mode": mode, "name": format!("{name}-sub")});
    plugin_endpoint(app, name, plugin, subscription).await
}

fn order() -> Value {
    json!({"OrderId": "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10", "Total": 10.0})
}

#[tokio::test]
async fn plugins_are_pushed_versioned_listed_and_removed_over_the_api() {
    let app = app("").await;
    let (status, body) = push(&app, "tiny", component(plugins::TRIVIAL)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"]["version"], 1);
    assert_eq!(
        body["version"]["exports"],
        json!(["herald:plugin/handler@1.0.0"])
    );
    // The same bytes again: the same version, nothing stored.
    let (status, body) = push(&app, "tiny", component(plugins::TRIVIAL)).await;
    assert_eq!((status, &body["created"]), (200, &json!(false)), "{body}");
    let (status, body) = push(&app, "tiny", component(plugins::ECHO)).await;
    assert_eq!(
        (status, &body["version"]["version"]),
        (201, &json!(2)),
        "{body}"
    );

    // What is not a component is refused, naming the field and the reason.
    let (status, body) = push(&app, "junk", b"MZ\x90\x00 not wasm".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["parameter"], "component");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a WebAssembly component"));
    let r = app
        .req(reqwest::Method::POST, "/v1/plugins?name=x")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    let (_, one) = app.get("/v1/plugins/tiny").await;
    assert_eq!(one["versions"].as_array().unwrap().len(), 2);
    assert_eq!(one["versions"][0]["version"], 2);
    assert_eq!(one["solution"], "contoso");
    let (status, _) = app.get("/v1/plugins/nothing-here").await;
    assert_eq!(status, 404);

    // Pinned to version 1; removing the plug-in is refused while it runs.
    let id = register(
        &app,
        "tiny-step",
        json!({"plugin": "tiny", "version": 1}),
        "contoso_PlaceOrder",
        "sync",
    )
    .await;
    let (_, list) = app.get("/v1/plugins").await;
    assert_eq!(list[0]["used_by"], json!(["tiny-step"]));
    let r = app
        .req(reqwest::Method::DELETE, "/v1/plugins/tiny")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // An endpoint naming a version that does not exist is refused.
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "bad", "kind": "plugin", "plugin": "tiny", "version": 9}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["details"][0]["parameter"]),
        (400, &json!("version")),
        "{body}"
    );
    let r = app
        .req(reqwest::Method::DELETE, &format!("/v1/endpoints/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = app
        .req(reqwest::Method::DELETE, "/v1/plugins/tiny")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, _) = app.get("/v1/plugins/tiny").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_plugin_step_cancels_the_event_with_its_message_and_a_runaway_one_fails_in_time() {
    let app = app("[plugins.limits]\nfuel = 1_000_000_000_000\ndeadline = \"300ms\"\n").await;
    push(&app, "veto", component(plugins::REFUSE)).await;
    push(&app, "spin", component(plugins::SPIN)).await;
    push(&app, "tiny", component(plugins::TRIVIAL)).await;

    register(
        &app,
        "ok-step",
        json!({"plugin": "tiny"}),
        "contoso_PlaceOrder",
        "sync",
    )
    .await;
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 202, "{body}");

    let veto = register(
        &app,
        "veto-step",
        json!({"plugin": "veto"}),
        "contoso_PlaceOrder",
        "sync",
    )
    .await;
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "cancelled_by_step");
    assert_eq!(body["error"]["message"], "refused by the test component");
    app.req(reqwest::Method::DELETE, &format!("/v1/endpoints/{veto}"))
        .send()
        .await
        .unwrap();

    register(
        &app,
        "spin-step",
        json!({"plugin": "spin"}),
        "contoso_PlaceOrder",
        "sync",
    )
    .await;
    let started = Instant::now();
    let (status, body) = app.post("/v1/events/contoso_PlaceOrder", &order()).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("spin@1") && message.contains("deadline"),
        "{message}"
    );
    // Nothing was stored, and Herald answers other requests.
    let (status, _) = app.get("/v1/plugins/spin").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_asynchronous_plugin_runs_per_delivery_and_a_refusal_is_a_retried_attempt() {
    let app = app("").await;
    push(&app, "tiny", component(plugins::TRIVIAL)).await;
    push(&app, "veto", component(plugins::REFUSE)).await;
    let ok = register(
        &app,
        "notes",
        json!({"plugin": "tiny", "config": "{\"to\": \"EUR\"}", "secure_config": "s3cr3t-config-value"}),
        "contoso_OrderNoted",
        "async",
    )
    .await;
    let refused = register(
        &app,
        "refusing",
        json!({"plugin": "veto"}),
        "contoso_OrderNoted",
        "async",
    )
    .await;
    let (status, event) = app
        .post("/v1/events/contoso_OrderNoted", &json!({"Note": "hello"}))
        .await;
    assert_eq!(status, 202, "{event}");
    let done = wait_for(Duration::from_secs(20), "the plug-in delivery", || async {
        let (_, list) = app
            .get(&format!("/v1/deliveries?endpoint_id={ok}&status=succeeded"))
            .await;
        list.as_array().filter(|l| !l.is_empty()).cloned()
    })
    .await;
    assert_eq!(done.len(), 1);
    // A refusal is a failed attempt: retried on the endpoint's schedule, with its reason.
    let retried = wait_for(
        Duration::from_secs(20),
        "the refusing plug-in's retries",
        || async {
            let (_, list) = app
                .get(&format!("/v1/deliveries?endpoint_id={refused}"))
                .await;
            list.as_array()
                .and_then(|l| l.first().cloned())
                .filter(|d| d["attempts"].as_u64() >= Some(2))
        },
    )
    .await;
    assert_eq!(retried["status"], "pending", "{retried}");
    assert_eq!(
        retried["last_error"],
        "plug-in veto@1 refused: refused by the test component"
    );

    // The secure configuration is in no answer.
    let (_, endpoint) = app.get(&format!("/v1/endpoints/{ok}")).await;
    assert_eq!(endpoint["plugin"]["secure_config"], true, "{endpoint}");
    assert_eq!(endpoint["plugin"]["config"], "{\"to\": \"EUR\"}");
    for path in [
        format!("/v1/endpoints/{ok}"),
        "/v1/endpoints".into(),
        "/v1/plugins".into(),
    ] {
        let (_, body) = app.get(&path).await;
        assert!(
            !body.to_string().contains("s3cr3t-config-value"),
            "{path}: {body}"
        );
    }
    let (_, stats) = app.get("/v1/plugins/tiny").await;
    assert!(
        stats["statistics"][0]["executions"].as_u64().unwrap() >= 1,
        "{stats}"
    );

    // The console's plug-ins page: versions, where each is used, statistics, the last failure.
    let cookie = crate::console::sign_in(&app, crate::support::ADMIN_KEY).await;
    let page = app
        .http
        .get(format!("{}/console/plugins", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for shown in [
        "tiny",
        "veto",
        "<code>notes</code>",
        "<code>refusing</code>",
    ] {
        assert!(html.contains(shown), "{shown} is not on the page");
    }
    assert!(html.contains("Failures / refusals"));
    let (_, veto) = app.get("/v1/plugins/veto").await;
    assert!(
        veto["statistics"][0]["refusals"].as_u64() >= Some(2),
        "{veto}"
    );
    assert_eq!(
        veto["statistics"][0]["failures"], 0,
        "a refusal is not a failure"
    );
    assert!(!html.contains("s3cr3t-config-value"));
}

// The examples of examples/plugins/, built from source by scripts/build-plugins.sh (which
// scripts/test.sh runs first) with ComponentizeJS and componentize-py.

const EXAMPLES_CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Sales"
events = ["contoso_CustomerPurchase", "contoso_VendorPaymentPosted", "contoso_Ping"]

[[events]]
unique_name = "contoso_CustomerPurchase"
solution = "contoso"
allowed_steps = "sync_and_async"
parameters = [
  { name = "CustomerId", type = "Guid", required = true },
  { name = "Total", type = "Money", required = true },
  { name = "Currency", type = "String", max_length = 3 },
]
response_properties = [{ name = "Quote", type = "Money" }]

[[events]]
unique_name = "contoso_VendorPaymentPosted"
solution = "contoso"
allowed_steps = "async_only"
parameters = [
  { name = "VendorId", type = "Guid", required = true },
  { name = "Amount", type = "Money", required = true },
]

[[events]]
unique_name = "contoso_Ping"
solution = "contoso"
allowed_steps = "async_only"
parameters = [{ name = "Note", type = "String" }]
"#;

const CUSTOMER: &str = "6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10";

/// Herald with the examples' catalog, compiling plug-ins once for every test into
/// `target/plugin-cache`.
async fn examples_app() -> TestApp {
    examples_app_with("").await
}

/// [`examples_app`] with `extra` configuration.
async fn examples_app_with(extra: &str) -> TestApp {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-cache");
    let extra = format!("[plugins]\ncache_dir = \"{}\"\n{extra}", cache.display());
    app_with(EXAMPLES_CATALOG, &extra).await
}

/// The example `name`, as scripts/build-plugins.sh built it.
fn example(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the examples with scripts/build-plugins.sh (scripts/test.sh does)",
            path.display()
        )
    })
}

async fn push_example(app: &TestApp, name: &str) {
    let (status, body) = push(app, name, example(name)).await;
    assert!(
        status == 201 || status == 200,
        "pushing {name}: {status} {body}"
    );
}

fn purchase(total: f64, currency: &str) -> Value {
    json!({"CustomerId": CUSTOMER, "Total": total, "Currency": currency})
}

/// Makes a plug-in endpoint `name` running `plugin` as a step of the purchase at `stage`.
async fn step(app: &TestApp, name: &str, plugin: Value, stage: &str) {
    let subscription = json!({"event": "contoso_CustomerPurchase", "mode": "sync",
                              "stage": stage, "name": format!("{name}-step")});
    plugin_endpoint(app, name, plugin, subscription).await;
}

#[tokio::test]
async fn the_javascript_and_python_steps_change_the_event_and_answer_the_caller() {
    let app = examples_app().await;
    push_example(&app, "currency").await;
    push_example(&app, "quote").await;
    step(
        &app,
        "currency",
        json!({"plugin": "currency", "config": r#"{"rates": {"USD": 0.92, "GBP": 1.17}, "to": "EUR"}"#}),
        "pre_operation",
    )
    .await;
    step(
        &app,
        "quote",
        json!({"plugin": "quote", "config": r#"{"margin": 0.1}"#}),
        "post_operation",
    )
    .await;

    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &purchase(100.0, "USD"),
        )
        .await;
    // An event with response properties is answered when its steps have run: 200.
    assert_eq!(status, 200, "{body}");
    // The JavaScript step converted the total; the Python step quoted on the converted one.
    assert_eq!(body["response"], json!({"Quote": 101.2}), "{body}");
    let (_, event) = app
        .get(&format!("/v1/events/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(event["params"]["Total"].as_f64(), Some(92.0), "{event}");
    assert_eq!(event["params"]["Currency"], "EUR");
    assert_eq!(event["changes"][0]["step"], "currency-step");

    // A currency the step has no rate for cancels the event with the plug-in's message.
    let (status, body) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(5.0, "JPY"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "cancelled_by_step");
    assert_eq!(body["error"]["message"], "unknown currency JPY");

    // The same steps on the Dataverse route: the converted event, then the cancel as a
    // plug-in's exception (0x80040265), as Dataverse answers.
    let (status, body) = app
        .post(
            "/api/data/v9.2/contoso_CustomerPurchase",
            &purchase(50.0, "GBP"),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    if status == 200 {
        assert_eq!(body["Quote"], json!(64.35), "{body}");
    }
    let (status, body) = app
        .post(
            "/api/data/v9.2/contoso_CustomerPurchase",
            &purchase(5.0, "JPY"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "0x80040265");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown currency JPY"),
        "{body}"
    );

    let (_, stats) = app.get("/v1/plugins/currency").await;
    assert_eq!(stats["statistics"][0]["executions"], 4, "{stats}");
}

#[tokio::test]
async fn the_enrich_step_reaches_its_allowed_host_and_nothing_else() {
    let app = examples_app().await;
    let crm = Crm::start().await;
    push_example(&app, "enrich").await;
    let url = format!("{}/customers/", crm.url);
    step(
        &app,
        "enrich",
        json!({"plugin": "enrich", "config": json!({"url": url}).to_string(), "allowed_hosts": ["127.0.0.1"]}),
        "pre_operation",
    )
    .await;
    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &purchase(10.0, "EUR"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, event) = app
        .get(&format!("/v1/events/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(event["shared_variables"]["tier"], "gold", "{event}");
    assert_eq!(crm.hits(), 1);

    // A host the registration does not list, and the cloud metadata address even when listed
    // (the network policy refuses link-local addresses), are never reached.
    for (config, hosts, refused) in [
        (
            json!({"url": url}),
            json!(["crm.contoso.example"]),
            "127.0.0.1",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            json!(["169.254.169.254"]),
            "169.254.169.254",
        ),
    ] {
        let (_, list) = app.get("/v1/endpoints").await;
        let id = list[0]["id"].as_str().unwrap().to_owned();
        let r = app
            .req(reqwest::Method::PUT, &format!("/v1/endpoints/{id}"))
            .json(
                &json!({"name": "enrich", "kind": "plugin", "plugin": "enrich",
                          "config": config.to_string(), "allowed_hosts": hosts}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let (status, body) = app
            .post(
                "/v1/events/contoso_CustomerPurchase",
                &purchase(10.0, "EUR"),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("enrichment failed: refused"),
            "{message}"
        );
        assert!(message.contains(refused), "{message}");
    }
    assert_eq!(crm.hits(), 1, "nothing more reached the CRM");
}

/// A CRM answering `GET /customers/{id}` with `{"tier": "gold"}`, counting its requests.
struct Crm {
    url: String,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Crm {
    async fn start() -> Crm {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().route(
            "/customers/{id}",
            axum::routing::get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    axum::Json(json!({"tier": "gold"}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Crm { url, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn plugins_emit_events_and_a_chain_of_relays_stops_at_depth_8() {
    let app = examples_app().await;
    push_example(&app, "follow-up").await;
    push_example(&app, "relay").await;
    let pings = Receiver::start().await;
    let payments = Receiver::start().await;
    app.subscribe_webhook("pings", &pings.url(), SECRET, "contoso_Ping")
        .await;
    app.subscribe_webhook(
        "payments",
        &payments.url(),
        SECRET,
        "contoso_VendorPaymentPosted",
    )
    .await;
    register(
        &app,
        "follow-up",
        json!({"plugin": "follow-up"}),
        "contoso_CustomerPurchase",
        "async",
    )
    .await;
    let relay = register(
        &app,
        "relay",
        json!({"plugin": "relay", "config": r#"{"event": "contoso_Ping"}"#}),
        "contoso_Ping",
        "async",
    )
    .await;

    // The Python plug-in raises the vendor payment of a purchase.
    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &purchase(42.5, "EUR"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = wait_for(Duration::from_secs(30), "the emitted payment", || async {
        payments.received().first().cloned()
    })
    .await;
    assert_eq!(got.json()["data"]["Amount"], json!(42.5), "{}", got.json());
    assert_eq!(got.header("herald-depth"), "2");

    // A relay that raises the event it handles: depths 1 to 8 are stored and delivered, the
    // ninth is refused, and the refusal is the relay's error.
    let (status, _) = app
        .post("/v1/events/contoso_Ping", &json!({"Note": "loop"}))
        .await;
    assert_eq!(status, 202);
    let refused = wait_for(
        Duration::from_secs(60),
        "the relay's refusal at depth 8",
        || async {
            let (_, list) = app
                .get(&format!("/v1/deliveries?endpoint_id={relay}&limit=100"))
                .await;
            list.as_array()?
                .iter()
                .find(|d| {
                    d["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("depth"))
                })
                .cloned()
        },
    )
    .await;
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("relaying to contoso_Ping was refused"),
        "{refused}"
    );
    let depths = wait_for(Duration::from_secs(30), "eight pings delivered", || async {
        let depths: std::collections::BTreeSet<String> = pings
            .received()
            .iter()
            .map(|r| r.header("herald-depth"))
            .collect();
        (depths.len() == 8).then_some(depths)
    })
    .await;
    assert_eq!(
        depths.into_iter().collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5", "6", "7", "8"]
    );
}

#[tokio::test]
async fn a_transformation_reshapes_what_a_subscription_sends_or_drops_it() {
    let app = examples_app().await;
    push_example(&app, "chat-card").await;
    let teams = Receiver::start().await;
    let (endpoint, _) = app
        .subscribe_webhook("plain", &teams.url(), SECRET, "contoso_VendorPaymentPosted")
        .await;
    // The transformation of another subscription to the same receiver.
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "teams", "event": "contoso_CustomerPurchase", "endpoint": endpoint,
                    "transform": {"plugin": "chat-card", "config": r#"{"min_total": 10}"#}}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["transform"]["plugin"], "chat-card", "{sub}");

    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &purchase(42.5, "EUR"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let card = wait_for(Duration::from_secs(20), "the card", || async {
        teams.received().first().cloned()
    })
    .await;
    let json = card.json();
    assert_eq!(json["type"], "message", "{json}");
    let content = &json["attachments"][0]["content"];
    assert_eq!(content["type"], "AdaptiveCard");
    assert_eq!(content["body"][0]["text"], "contoso_CustomerPurchase");
    // Signed over what was sent, as every delivery.
    assert!(card.header("webhook-signature").starts_with("v1,"));
    let (_, deliveries) = app
        .get(&format!(
            "/v1/deliveries?event_id={}",
            body["id"].as_str().unwrap()
        ))
        .await;
    let id = deliveries[0]["id"].as_str().unwrap();
    assert_eq!(deliveries[0]["status"], "succeeded");

    // Below the minimum: dropped, recorded as done with why, and nothing sent.
    let (_, small) = app
        .post("/v1/events/contoso_CustomerPurchase", &purchase(2.0, "EUR"))
        .await;
    let dropped = wait_for(Duration::from_secs(20), "the dropped delivery", || async {
        let (_, list) = app
            .get(&format!(
                "/v1/deliveries?event_id={}",
                small["id"].as_str().unwrap()
            ))
            .await;
        list.as_array()?
            .first()
            .filter(|d| d["status"] == "succeeded")
            .cloned()
    })
    .await;
    let (_, detail) = app
        .get(&format!(
            "/v1/deliveries/{}",
            dropped["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        detail
            .to_string()
            .contains("dropped by the transformation chat-card"),
        "{detail}"
    );
    // A later event to the plain subscription arrives after the dropped one would have.
    app.post(
        "/v1/events/contoso_VendorPaymentPosted",
        &json!({"VendorId": CUSTOMER, "Amount": 1.0}),
    )
    .await;
    wait_for(Duration::from_secs(20), "the plain delivery", || async {
        (teams.count() == 2).then_some(())
    })
    .await;
    assert_ne!(id, dropped["id"].as_str().unwrap());
    let r = app
        .req(reqwest::Method::DELETE, "/v1/plugins/chat-card")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        409,
        "a plug-in that transforms a subscription stays"
    );
}

/// Runs `herald` with `args` against `app`; answers its exit status and output.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_URL", &app.url)
        .env("HERALD_API_KEY", crate::support::ADMIN_KEY)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// The command line blocks a thread while Herald answers it on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_pushes_lists_and_removes_plugins_and_writes_new_ones() {
    let app = app("").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.wasm");
    std::fs::write(&file, component(plugins::TRIVIAL)).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let (ok, out) = cli(
        &app,
        &[
            "plugin",
            "push",
            "--name",
            "tiny",
            "--solution",
            "contoso",
            &file,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"created\": true"), "{out}");
    let (ok, out) = cli(&app, &["plugin", "list"]);
    assert!(ok && out.contains("\"tiny\""), "{out}");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not a component").unwrap();
    let (ok, out) = cli(
        &app,
        &[
            "plugin",
            "push",
            "--name",
            "junk",
            "--solution",
            "contoso",
            garbage.to_str().unwrap(),
        ],
    );
    assert!(!ok && out.contains("not a WebAssembly component"), "{out}");
    let (ok, out) = cli(&app, &["plugin", "remove", "tiny"]);
    assert!(ok, "{out}");
    let (ok, _) = cli(&app, &["plugin", "get", "tiny"]);
    assert!(!ok);

    // A new plug-in to start from: the WIT world and a source in each language.
    for (lang, source) in [("js", "plugin.js"), ("python", "app.py")] {
        let target = dir.path().join(lang);
        let (ok, out) = cli(
            &app,
            &["plugin", "new", "--lang", lang, target.to_str().unwrap()],
        );
        assert!(ok, "{out}");
        assert!(target.join(source).exists());
        let wit = std::fs::read_to_string(target.join("wit/plugin.wit")).unwrap();
        assert!(wit.contains("package herald:plugin@1.0.0;"));
        let (ok, out) = cli(
            &app,
            &["plugin", "new", "--lang", lang, target.to_str().unwrap()],
        );
        assert!(!ok && out.contains("exists already"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_pushed_to_one_instance_runs_on_the_other_and_a_pinned_step_keeps_its_own() {
    use crate::support::process::{post, HeraldProcess};
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(
        catalog.join("contoso.toml"),
        CATALOG.replace(
            "allowed_steps = \"async_only\"",
            "allowed_steps = \"sync_and_async\"",
        ),
    )
    .unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nschema = \"t_{}\"\n[catalog]\ndir = \"{}\"\n",
            uuid::Uuid::new_v4().simple(),
            catalog.display()
        ),
    )
    .unwrap();
    let env = [
        ("HERALD_STORE_URL", crate::support::pg_url()),
        ("RUST_LOG", "debug".to_owned()),
    ];
    let nodes: Vec<HeraldProcess> = (0..2)
        .map(|i| HeraldProcess::start(&config, dir.path().join(format!("herald-{i}.log")), &env))
        .collect();
    let http = reqwest::Client::new();
    let push_to = |url: &str, bytes: Vec<u8>| {
        http.post(format!("{url}/v1/plugins?name=gate&solution=contoso"))
            .bearer_auth(crate::support::ADMIN_KEY)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
    };
    assert_eq!(
        push_to(&nodes[0].url, component(plugins::TRIVIAL))
            .await
            .unwrap()
            .status(),
        201
    );
    // One step follows the latest version, one is pinned to version 1.
    for (name, event, version) in [
        ("latest", "contoso_PlaceOrder", None),
        ("pinned", "contoso_OrderNoted", Some(1)),
    ] {
        let (status, body) = post(
            &http,
            &nodes[0].url,
            "/v1/endpoints",
            json!({"name": name, "kind": "plugin", "plugin": "gate", "version": version}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(
            &http,
            &nodes[0].url,
            "/v1/subscriptions",
            json!({"event": event, "endpoint": name, "mode": "sync"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let order = order();
    let note = json!({"Note": "n"});
    // The other instance runs version 1 once it has heard of the steps.
    wait_for(
        Duration::from_secs(10),
        "the steps on the second instance",
        || async {
            let (status, _) = post(
                &http,
                &nodes[1].url,
                "/v1/events/contoso_PlaceOrder",
                order.clone(),
            )
            .await;
            (status == 202).then_some(())
        },
    )
    .await;

    // Version 2 refuses. Pushed to the first instance, the second runs it within a second.
    assert_eq!(
        push_to(&nodes[0].url, component(plugins::REFUSE))
            .await
            .unwrap()
            .status(),
        201
    );
    let pushed = std::time::Instant::now();
    wait_for(
        Duration::from_secs(1),
        "version 2 on the second instance",
        || async {
            let (status, body) = post(
                &http,
                &nodes[1].url,
                "/v1/events/contoso_PlaceOrder",
                order.clone(),
            )
            .await;
            (status == 400 && body["error"]["code"] == "cancelled_by_step").then_some(())
        },
    )
    .await;
    eprintln!(
        "version 2 ran on the other instance {:?} after its push",
        pushed.elapsed()
    );
    // The pinned step still runs version 1 on both instances.
    for node in &nodes {
        let (status, body) = post(
            &http,
            &node.url,
            "/v1/events/contoso_OrderNoted",
            note.clone(),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }

    // A secure configuration reaches the plug-in and no log line of either instance.
    const SECURE: &str = "s3cr3t-plugin-configuration-9f1c";
    let (status, body) = post(&http, &nodes[0].url, "/v1/endpoints",
        json!({"name": "holder", "kind": "plugin", "plugin": "gate", "version": 1, "secure_config": SECURE})).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(SECURE));
    let (status, body) = post(
        &http,
        &nodes[0].url,
        "/v1/subscriptions",
        json!({"event": "contoso_OrderNoted", "endpoint": "holder"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_for(
        Duration::from_secs(10),
        "the subscription on the second instance",
        || async {
            let (_, body) = post(
                &http,
                &nodes[1].url,
                "/v1/events/contoso_OrderNoted",
                note.clone(),
            )
            .await;
            (body["deliveries"] == 1).then_some(())
        },
    )
    .await;
    let holder = wait_for(
        Duration::from_secs(20),
        "the secure plug-in's delivery",
        || async {
            let list: serde_json::Value = http
                .get(format!("{}/v1/deliveries?status=succeeded", nodes[1].url))
                .bearer_auth(crate::support::ADMIN_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            list.as_array()?.first().cloned()
        },
    )
    .await;
    assert!(!holder.to_string().contains(SECURE));
    for i in 0..2 {
        let log = std::fs::read_to_string(dir.path().join(format!("herald-{i}.log"))).unwrap();
        assert!(log.contains("DEBUG"), "the log is at debug level");
        assert!(
            !log.contains(SECURE),
            "instance {i} logged the secure configuration"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_s_execution_is_a_span_with_the_lines_it_logged() {
    let otlp = crate::support::otlp::OtlpReceiver::start().await;
    let app = examples_app_with(&format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nexport_interval = \"100ms\"",
        otlp.url()
    ))
    .await;
    push_example(&app, "currency").await;
    step(
        &app,
        "currency",
        json!({"plugin": "currency", "config": r#"{"rates": {"USD": 0.5}, "to": "EUR"}"#}),
        "pre_operation",
    )
    .await;
    let (status, body) = app
        .post(
            "/v1/events/contoso_CustomerPurchase",
            &purchase(10.0, "USD"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let span = wait_for(Duration::from_secs(20), "the plug-in's span", || async {
        otlp.spans()
            .into_iter()
            .find(|s| s.name == "plugin currency@1")
    })
    .await;
    assert_eq!(span.attributes["herald.plugin"], "currency");
    assert_eq!(span.attributes["herald.stage"], "pre_operation");
    // The parent ends after the step, so it may come in a later export.
    let parent = wait_for(
        Duration::from_secs(20),
        "the step's parent span",
        || async {
            otlp.spans()
                .into_iter()
                .find(|s| s.span_id == span.parent_id)
        },
    )
    .await;
    assert_eq!(parent.name, "herald.validate");
    let (name, line) = &span.events[0];
    assert_eq!(name, "plugin.log");
    assert_eq!(line["level"], "info");
    assert!(line["message"].contains("10 USD is 5 EUR"), "{line:?}");
}
