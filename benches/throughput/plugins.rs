//! Plug-ins under load: SQLite ingest of the purchase event (open to synchronous steps)
//! through one pre-operation plug-in step — a trivial hand-written component, the JavaScript
//! `echo` (answers `{}`), the JavaScript example (`currency`, converting EUR to USD) and the
//! Python example (`quote`, at post-operation) — beside ingest with no step and with one
//! webhook step that accepts (beside `echo`) or changes `Currency` (beside `currency`: the
//! same work after the answer), all in one run. Then the sandbox alone, in this process: first-use compile time, loading the
//! compiled form from the disk cache, a fresh instance's first call, and a warm call; and
//! Herald's peak RSS while 32 connections run the JavaScript step.
//!
//! The components come from `scripts/build-plugins.sh` (target/plugins/).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::serve;
use crate::{ms, wrk, Table, CONNECTIONS, EVENT};

/// The frame of the hand-written test components (tests/plugins/).
const FRAME: &str = include_str!("../../tests/plugins/component.wat.in");

/// The trivial component: answers `{}`.
fn trivial() -> Vec<u8> {
    wat::parse_str(FRAME.replace("@HANDLE@", "(call $ok (i32.const 16) (i32.const 2))"))
        .expect("the trivial component parses")
}

/// An example built by scripts/build-plugins.sh.
fn example(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/plugins/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-plugins.sh first",
            path.display()
        )
    })
}

/// Pushes `bytes` as plug-in `name`, answering how long the push (checking and compiling)
/// took.
async fn push(h: &Herald, name: &str, bytes: Vec<u8>) -> Duration {
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(h.url(&format!("/v1/plugins?name={name}&solution=contoso")))
        .bearer_auth(KEY)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .expect("Herald answers");
    assert!(r.status().is_success(), "push {name}: {}", r.status());
    started.elapsed()
}

/// What a step is, for one load.
enum Step {
    None,
    Webhook(std::net::SocketAddr),
    Plugin {
        name: &'static str,
        config: &'static str,
        stage: &'static str,
    },
}

/// Runs the phase.
pub async fn plugins(t: &mut Table, load_for: Duration, bare_http: f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    // The Python example answers the response property `Quote`.
    let catalog = crate::steps::catalog(
        dir.path(),
        "\nresponse_properties = [{ name = \"Quote\", type = \"Money\" }]",
    );
    let accepts = serve(axum::Router::new().route(
        "/step",
        axum::routing::post(|| async { StatusCode::NO_CONTENT }),
    ))
    .await;
    let changes = serve(axum::Router::new().route(
        "/step",
        axum::routing::post(|| async {
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"parameters":{"Currency":"USD"}}"#,
            )
        }),
    ))
    .await;
    let loads = [
        ("SQLite ingest, no step", Step::None),
        (
            "SQLite ingest through a webhook step that accepts",
            Step::Webhook(accepts),
        ),
        (
            "SQLite ingest through a webhook step that changes Currency",
            Step::Webhook(changes),
        ),
        (
            "SQLite ingest through a trivial plug-in step",
            Step::Plugin {
                name: "trivial",
                config: "",
                stage: "pre_operation",
            },
        ),
        (
            "SQLite ingest through the smallest JavaScript step (echo)",
            Step::Plugin {
                name: "echo",
                config: "",
                stage: "pre_operation",
            },
        ),
        (
            "SQLite ingest through the JavaScript step (currency)",
            Step::Plugin {
                name: "currency",
                config: r#"{"rates": {"EUR": 1.08}, "to": "USD"}"#,
                stage: "pre_operation",
            },
        ),
        (
            "SQLite ingest through the Python step (quote)",
            Step::Plugin {
                name: "quote",
                config: r#"{"margin": 0.1}"#,
                stage: "post_operation",
            },
        ),
    ];
    let mut no_step = None;
    let mut webhooks = Vec::new();
    for (i, (label, step)) in loads.iter().enumerate() {
        let store = StoreAt::Sqlite(dir.path().join(format!("plugins-{i}.db")));
        let h = Herald::start_with(
            dir.path(),
            &store,
            &format!(
                "[catalog]\ndir = \"{}\"\n[plugins]\ncache_dir = \"{}\"",
                catalog.display(),
                dir.path().join("plugin-cache").display()
            ),
        );
        let mut compile = None;
        match step {
            Step::None => {}
            Step::Webhook(at) => {
                h.post(
                    "/v1/endpoints",
                    json!({"name": "step", "kind": "webhook", "url": format!("http://{at}/step")}),
                )
                .await;
            }
            Step::Plugin { name, config, .. } => {
                let bytes = if *name == "trivial" {
                    trivial()
                } else {
                    example(name)
                };
                compile = Some(push(&h, name, bytes).await);
                h.post(
                    "/v1/endpoints",
                    json!({"name": "step", "kind": "plugin", "plugin": name, "config": config}),
                )
                .await;
            }
        }
        if !matches!(step, Step::None) {
            let stage = match step {
                Step::Plugin { stage, .. } => *stage,
                _ => "pre_operation",
            };
            h.post(
                "/v1/subscriptions",
                json!({"name": "step", "event": "contoso_CustomerPurchase", "endpoint": "step",
                       "mode": "sync", "stage": stage, "format": "params"}),
            )
            .await;
        }
        let run = wrk::post(&h.url(EVENT), KEY, CONNECTIONS, load_for);
        t.load(
            &format!("{label} / bare handler"),
            &run,
            bare_http,
            h.memory().0,
        );
        match step {
            Step::None => no_step = Some(run.rate()),
            Step::Webhook(_) => webhooks.push(run.rate()),
            Step::Plugin { name, .. } => {
                let base = no_step.expect("the no-step load runs first");
                t.line(format!(
                    "| {label} / ingest with no step | {:.0} / {base:.0} req/s | {:.3}× | |",
                    run.rate(),
                    run.rate() / base
                ));
                // Each plug-in beside the webhook step doing the same: accepting, or changing a
                // parameter (the currency step; the Python step sets a response property).
                let (hook, what) = match *name {
                    "currency" => (webhooks.get(1), "the webhook step that changes Currency"),
                    _ => (webhooks.first(), "the webhook step that accepts"),
                };
                if let Some(hook) = hook {
                    t.line(format!(
                        "| {label} / {what} | {:.0} / {hook:.0} req/s | {:.3}× | |",
                        run.rate(),
                        run.rate() / hook
                    ));
                }
                let stats: Value = reqwest::Client::new()
                    .get(h.url(&format!("/v1/plugins/{name}")))
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .expect("Herald answers")
                    .json()
                    .await
                    .expect("statistics");
                let s = &stats["statistics"][0];
                t.line(format!(
                    "| {name}: one execution in Herald (p50 / p99 of the latest 1,024), mean fuel | {:.3} / {:.3} ms, {} fuel; push (check and compile) {:.0} ms | | |",
                    s["p50_ms"].as_f64().unwrap_or(0.0),
                    s["p99_ms"].as_f64().unwrap_or(0.0),
                    s["mean_fuel"],
                    ms(compile.unwrap_or_default()),
                ));
            }
        }
        h.stop();
    }
    sandbox_alone(t).await;
}

/// The sandbox in this process, on the JavaScript and Python examples: compile, load from the
/// disk cache, a fresh instance's first call, a warm call.
async fn sandbox_alone(t: &mut Table) {
    use herald::plugins::{Grants, Limits, Sandbox, Version};
    let input = r#"{"kind":"step","stage":"pre_operation","plugin":{"name":"x","version":1},"config":"{\"rates\":{\"EUR\":1.08},\"to\":\"USD\",\"margin\":0.1}","secure_config":null,"event":{"id":"evt_1","name":"contoso_CustomerPurchase","solution":"contoso","time":"2026-12-07T10:00:00Z","correlation_id":"c","depth":1,"params":{"Total":42.5,"Currency":"EUR"},"shared_variables":{}}}"#;
    for name in ["currency", "quote"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes: Arc<[u8]> = Arc::from(example(name));
        let version = Version {
            name: name.into(),
            version: 1,
        };
        let cold =
            Sandbox::new(Limits::default(), Some(dir.path().to_path_buf())).expect("sandbox");
        let started = Instant::now();
        let compiled = cold.compile(bytes.clone()).await.expect("compiles");
        let compile = started.elapsed();
        let cached =
            Sandbox::new(Limits::default(), Some(dir.path().to_path_buf())).expect("sandbox");
        let started = Instant::now();
        let loaded = cached.compile(bytes).await.expect("loads");
        let load = started.elapsed();
        assert!(loaded.from_disk);
        let started = Instant::now();
        cached
            .run(&loaded, &version, input, Grants::default())
            .await
            .expect("runs");
        let fresh = started.elapsed();
        let mut warm = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            cold.run(&compiled, &version, input, Grants::default())
                .await
                .expect("runs");
            warm.push(started.elapsed());
        }
        warm.sort();
        t.line(format!(
            "| {name} ({:.1} MB): compile {:.0} ms, from the disk cache {:.0} ms, fresh instance and first call {:.2} ms, warm call p50 {:.3} ms p99 {:.3} ms | | | |",
            compiled_size(name),
            ms(compile),
            ms(load),
            ms(fresh),
            ms(warm[warm.len() / 2]),
            ms(warm[warm.len() * 99 / 100]),
        ));
    }
}

fn compiled_size(name: &str) -> f64 {
    example(name).len() as f64 / 1e6
}
