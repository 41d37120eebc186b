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
    // Fuel first: the default budget is spent long before the deadline.
    let sandbox = Sandbox::new(Limits::default(), None).unwrap();
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

use crate::support::{wait_for, TestApp};

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

async fn app(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.toml"), CATALOG).unwrap();
    let path = dir.keep();
    TestApp::builder()
        .config(&format!("[catalog]\ndir = \"{}\"\n{extra}", path.display()))
        .build()
        .await
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

/// Makes a plug-in endpoint `name` running `plugin` and subscribes it to `event` (a step
/// when `mode` is `sync`).
async fn register(app: &TestApp, name: &str, plugin: Value, event: &str, mode: &str) -> String {
    let mut body = json!({"name": name, "kind": "plugin"});
    body.as_object_mut()
        .unwrap()
        .extend(plugin.as_object().unwrap().clone());
    let (status, endpoint) = app.post("/v1/endpoints", &body).await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"event": event, "endpoint": id, "mode": mode, "name": format!("{name}-sub")}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    id
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
}
