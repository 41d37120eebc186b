//! The HTTP side port: health, entities with counts, peek and purge of any queue-like node
//! (dead letters included), faults to arm (`/faults`), and the webhook sink (`/sink/…`) with
//! its records and behaviour.

use crate::broker::eventhub::Position;
use crate::broker::handle::BrokerHandle;
use crate::broker::message::Stored;
use crate::broker::Address;
use crate::faults::{FaultPlan, Faults};
use crate::server::{codec::Value, message};
use crate::sink::{Behaviour, Sink};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// State of the side port.
#[derive(Clone)]
pub struct AppState {
    /// The broker.
    pub broker: BrokerHandle,
    /// The webhook sink.
    pub sink: Sink,
    /// Faults armed for testing.
    pub faults: Arc<Faults>,
}

/// The side port's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/entities", get(entities))
        .route("/messages/{*path}", get(peek).delete(purge))
        .route("/sink", axum::routing::any(sink_root))
        .route("/sink/{*path}", axum::routing::any(sink_path))
        .route("/sink-requests", get(sink_records).delete(sink_clear))
        .route("/sink-behaviour", put(sink_behaviour))
        .route("/faults", get(faults).put(arm_faults))
        .with_state(state)
}

async fn entities(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "entities": s.broker.with(|b, _| b.overview()) }))
}

#[derive(Deserialize)]
struct PeekQuery {
    #[serde(default)]
    from: i64,
    #[serde(default = "default_count")]
    count: usize,
}

fn default_count() -> usize {
    100
}

fn not_found(msg: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": msg }))).into_response()
}

/// A stored message shown as JSON: broker fields and a best-effort body.
fn show(s: &Stored) -> serde_json::Value {
    let body = message::sections(&s.msg.bare).ok().and_then(|sec| {
        sec.parts.iter().find_map(|(c, v)| match (c, v.inner()) {
            (Some(0x75), Value::Binary(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            (Some(0x77), Value::String(t)) => Some(t.clone()),
            (Some(0x77 | 0x76), other) => Some(format!("{other:?}")),
            _ => None,
        })
    });
    json!({
        "sequence_number": s.seq,
        "enqueued_time_ms": s.enqueued_ms,
        "delivery_count": s.delivery_count,
        "message_id": s.msg.system.message_id,
        "correlation_id": s.msg.system.correlation_id,
        "subject": s.msg.system.subject,
        "content_type": s.msg.system.content_type,
        "partition_key": s.msg.partition_key,
        "application_properties": s.msg.app,
        "dead_letter_reason": s.dead_letter.as_ref().map(|d| &d.0),
        "dead_letter_description": s.dead_letter.as_ref().map(|d| &d.1),
        "body": body,
    })
}

async fn peek(
    State(s): State<AppState>,
    Path(path): Path<String>,
    Query(q): Query<PeekQuery>,
) -> Response {
    let Ok(addr) = Address::parse(&path) else {
        return not_found(format!("invalid address {path}"));
    };
    if let Address::Partition(h, p) = &addr {
        let events = s.broker.with(|b, _| {
            let from = b.hub_index(h, *p as usize, Position::Sequence(q.from, true));
            b.hub_read(h, *p as usize, from, q.count)
        });
        let shown: Vec<_> = events
            .iter()
            .map(|e| {
                let st = Stored {
                    msg: e.msg.clone(),
                    seq: e.seq,
                    enqueued_ms: e.enqueued_ms,
                    delivery_count: 0,
                    expires_ms: None,
                    dead_letter: None,
                    deferred: false,
                };
                let mut v = show(&st);
                v["offset"] = json!(e.offset.to_string());
                v
            })
            .collect();
        return Json(json!({ "messages": shown })).into_response();
    }
    match s.broker.with(|b, _| {
        b.store_key(&addr)
            .map(|k| b.peek(&k, q.from, q.count, None))
    }) {
        Ok(msgs) => {
            Json(json!({ "messages": msgs.iter().map(show).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => not_found(e.to_string()),
    }
}

async fn purge(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    let Ok(addr) = Address::parse(&path) else {
        return not_found(format!("invalid address {path}"));
    };
    match s
        .broker
        .with(|b, _| b.store_key(&addr).map(|k| b.purge(&k)))
    {
        Ok(n) => Json(json!({ "purged": n })).into_response(),
        Err(e) => not_found(e.to_string()),
    }
}

async fn sink_root(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    sink_receive(&s.sink, "/", headers, body).await
}

async fn sink_path(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sink_receive(&s.sink, &format!("/{path}"), headers, body).await
}

async fn sink_receive(sink: &Sink, path: &str, headers: HeaderMap, body: Bytes) -> Response {
    let h = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (status, delay) = sink.receive(path, h, &body);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({ "status": status }))).into_response()
}

async fn faults(State(s): State<AppState>) -> Json<FaultPlan> {
    Json(s.faults.armed())
}

async fn arm_faults(State(s): State<AppState>, Json(plan): Json<FaultPlan>) -> Json<FaultPlan> {
    s.faults.arm(plan);
    Json(plan)
}

async fn sink_records(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "requests": s.sink.records() }))
}

async fn sink_clear(State(s): State<AppState>) -> StatusCode {
    s.sink.clear();
    StatusCode::NO_CONTENT
}

async fn sink_behaviour(State(s): State<AppState>, Json(b): Json<Behaviour>) -> Response {
    if StatusCode::from_u16(b.status).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "status must be 100..=999" })),
        )
            .into_response();
    }
    s.sink.set_behaviour(b.clone());
    Json(json!({ "behaviour": b })).into_response()
}
