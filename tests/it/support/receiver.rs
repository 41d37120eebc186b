//! A webhook receiver for tests: records every request and answers with a status that the
//! test can change while it runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: std::time::Instant,
    pub uri: axum::http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Statuses, bodies and content types for the next requests, in order; then
    /// `default_status`.
    script: std::collections::VecDeque<(u16, String, &'static str)>,
    default_status: u16,
    /// Headers of the default answer.
    default_headers: Vec<(String, String)>,
    /// How long each answer takes.
    delay: std::time::Duration,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
}

/// The receiver.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    /// Starts on 127.0.0.1, port 0, answering 204.
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address (to come back on the same port after `stop`).
    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            default_status: 204,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(inner.clone());
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
                .unwrap();
        });
        Receiver { inner, addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.answer_with(status, &[]);
    }

    /// Answers `status` with these headers from now on.
    pub fn answer_with(&self, status: u16, headers: &[(&str, &str)]) {
        let mut inner = self.inner.lock().unwrap();
        inner.default_status = status;
        inner.default_headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// Answers these statuses and bodies to the next requests, then the default.
    pub fn script(&self, answers: &[(u16, &str)]) {
        self.inner.lock().unwrap().script.extend(
            answers
                .iter()
                .map(|(s, b)| (*s, (*b).to_owned(), "text/plain")),
        );
    }

    /// Answers these statuses with these JSON bodies (`application/json`) to the next
    /// requests, then the default.
    pub fn script_json(&self, answers: &[(u16, Value)]) {
        self.inner.lock().unwrap().script.extend(
            answers
                .iter()
                .map(|(s, b)| (*s, b.to_string(), "application/json")),
        );
    }

    /// Takes `delay` to answer each request from now on.
    pub fn delay(&self, delay: std::time::Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// The most requests that were being answered at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    /// How many requests arrived (cheap: nothing is copied).
    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().received.len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Ids (CloudEvents `id`) of the events received at least once.
    pub fn event_ids(&self) -> std::collections::HashSet<String> {
        self.received()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let (status, body, content_type, delay, extra) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            at: std::time::Instant::now(),
            uri,
            headers,
            body,
        });
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        let (status, body, content_type, extra) = match inner.script.pop_front() {
            Some((status, body, content_type)) => (status, body, content_type, Vec::new()),
            None => (
                inner.default_status,
                String::new(),
                "text/plain",
                inner.default_headers.clone(),
            ),
        };
        (status, body, content_type, inner.delay, extra)
    };
    tokio::time::sleep(delay).await;
    inner.lock().unwrap().in_flight -= 1;
    let mut answer = axum::response::Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(axum::http::header::CONTENT_TYPE, content_type);
    for (name, value) in extra {
        answer = answer.header(name, value);
    }
    answer.body(axum::body::Body::from(body)).unwrap()
}
