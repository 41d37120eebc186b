//! Synchronous steps under load: SQLite ingest of the purchase event (made `sync_and_async`)
//! through one pre-operation step — one that only accepts (`204`), then one that changes a
//! parameter (`200` with `{"parameters": {"Currency": "USD"}}`, so the event is validated
//! again and the change recorded) — beside the bare handler. The step is a bare axum handler
//! in this process; no asynchronous subscription, so the figure is the request path alone.

use std::path::Path;
use std::time::Duration;

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::herald::{Herald, StoreAt, KEY};
use crate::receiver::serve;
use crate::{wrk, Table, CONNECTIONS, EVENT};

/// What the step answers.
#[derive(Clone, Copy)]
enum Step {
    Accepts,
    Changes,
}

/// The demo catalog with the purchase event open to synchronous steps, with `extra` lines in
/// its definition, written into `dir`.
pub fn catalog(dir: &Path, extra: &str) -> std::path::PathBuf {
    let demo = include_str!("../../catalog/contoso.toml");
    let open = demo.replacen(
        "allowed_steps = \"async_only\"\nexternal = true",
        &format!("allowed_steps = \"sync_and_async\"{extra}"),
        1,
    );
    assert_ne!(open, demo, "the demo catalog's purchase event is external");
    let at = dir.join("catalog");
    std::fs::create_dir_all(&at).expect("catalog dir");
    std::fs::write(at.join("contoso.toml"), open).expect("catalog written");
    at
}

/// A step receiver answering as `step` does.
async fn step_receiver(step: Step) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/step",
        axum::routing::post(move || async move {
            match step {
                Step::Accepts => (
                    StatusCode::NO_CONTENT,
                    [(header::CONTENT_TYPE, "text/plain")],
                    "",
                ),
                Step::Changes => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"parameters":{"Currency":"USD"}}"#,
                ),
            }
        }),
    );
    serve(app).await
}

/// Runs the phase.
pub async fn steps(t: &mut Table, load_for: Duration, bare_http: f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = catalog(dir.path(), "");
    let mut accepting = None;
    for (step, label) in [
        (
            Step::Accepts,
            "SQLite ingest through a step that accepts / bare handler",
        ),
        (
            Step::Changes,
            "SQLite ingest through a step that changes Currency / bare handler",
        ),
    ] {
        let at = step_receiver(step).await;
        let store = StoreAt::Sqlite(dir.path().join(format!("steps-{}.db", label.len())));
        let h = Herald::start_with(
            dir.path(),
            &store,
            &format!("[catalog]\ndir = \"{}\"", catalog.display()),
        );
        h.post(
            "/v1/endpoints",
            json!({"name": "step", "kind": "webhook", "url": format!("http://{at}/step")}),
        )
        .await;
        h.post(
            "/v1/subscriptions",
            json!({"name": "step", "event": "contoso_CustomerPurchase", "endpoint": "step",
                   "mode": "sync", "stage": "pre_operation", "format": "params"}),
        )
        .await;
        let run = wrk::post(&h.url(EVENT), KEY, CONNECTIONS, load_for);
        t.load(label, &run, bare_http, h.memory().0);
        match accepting {
            None => accepting = Some(run.rate()),
            Some(base) => t.line(format!(
                "| SQLite ingest, step that changes / step that accepts | {:.0} / {base:.0} req/s | {:.3}× | |",
                run.rate(),
                run.rate() / base
            )),
        }
        h.stop();
    }
}
