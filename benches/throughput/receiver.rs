//! The receiving side: a bare webhook receiver that counts what it is sent (and, while a
//! probe runs, notes when each event arrived), and the bare signed sender that is the
//! baseline of delivery: the same receiver, posted to with no store and no queue between.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use herald::destinations::webhook::{sign, Secret};

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    count: Arc<AtomicU64>,
    probing: Arc<AtomicBool>,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Receiver {
    /// Starts one on a port of its own.
    pub async fn start() -> Receiver {
        let count = Arc::new(AtomicU64::new(0));
        let probing = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let (c, p, a) = (count.clone(), probing.clone(), arrivals.clone());
        let app = axum::Router::new().route(
            "/hook/{n}",
            axum::routing::post(move |body: Bytes| {
                let (c, p, a) = (c.clone(), p.clone(), a.clone());
                async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    if p.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) {
                            if let Some(id) = doc["id"].as_str() {
                                a.lock().unwrap().insert(id.to_owned(), at);
                            }
                        }
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let addr = serve(app).await;
        Receiver {
            addr,
            count,
            probing,
            arrivals,
        }
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `n` requests were received (or `limit` passed); when the last arrived.
    pub async fn wait_for(&self, n: u64, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while self.received() < n {
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Some(Instant::now())
    }

    /// Notes arrival times of events by their CloudEvents id from now on.
    pub fn probe(&self, on: bool) {
        self.arrivals.lock().unwrap().clear();
        self.probing.store(on, Ordering::Relaxed);
    }

    /// When the event `id` arrived, if it did.
    pub fn arrival(&self, id: &str) -> Option<Instant> {
        self.arrivals.lock().unwrap().get(id).copied()
    }
}

/// Serves `app` on a port of its own; its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// The baseline of delivery: `total` Standard Webhooks-signed CloudEvents (the body Herald
/// sends for a purchase) posted to the receiver by reqwest, `in_flight` at a time. Returns
/// requests per second.
pub async fn bare_sender(receiver: &Receiver, total: u64, in_flight: usize) -> f64 {
    let http = reqwest::Client::new();
    let secret = Secret::generate();
    let body = Bytes::from(format!(
        r#"{{"specversion":"1.0","id":"evt_0123456789abcdef0123456789abcdef","source":"/herald/contoso","type":"contoso_CustomerPurchase","time":"2026-11-22T10:30:00Z","datacontenttype":"application/json","dataschema":"http://127.0.0.1/v1/catalog/events/contoso_CustomerPurchase/schema","correlationid":"c","data":{}}}"#,
        crate::wrk::PURCHASE
    ));
    let url = format!("http://{}/hook/0", receiver.addr);
    let next = Arc::new(AtomicU64::new(0));
    let before = receiver.received();
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (http, body, url, next, secret) = (
                http.clone(),
                body.clone(),
                url.clone(),
                next.clone(),
                secret.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let id = format!("dlv_{}", uuid::Uuid::new_v4().simple());
                    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
                    let signature = sign([&secret], &id, ts, &body);
                    let r = http
                        .post(&url)
                        .header("content-type", "application/cloudevents+json")
                        .header("webhook-id", id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", signature)
                        .body(body.clone())
                        .send()
                        .await;
                    assert!(r.is_ok_and(|r| r.status().is_success()));
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("sender");
    }
    (receiver.received() - before) as f64 / started.elapsed().as_secs_f64()
}
