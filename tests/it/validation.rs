//! The CloudEvents webhook abuse-protection handshake over real sockets: a receiver that
//! allows Herald's origin (at a rate), one that refuses and later allows, and one that grants
//! through the callback URL. Nothing is delivered before the grant, and waiting spends no
//! attempts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::support::{wait_for, TestApp};

/// How the receiver answers `OPTIONS`.
#[derive(Clone, Copy)]
enum Mode {
    /// `WebHook-Allowed-Origin` echoing the request's, with this `WebHook-Allowed-Rate`.
    Allow(Option<&'static str>),
    /// 405, as a server that does not take part.
    Refuse,
    /// 200 without headers: it will call back.
    Callback,
}

#[derive(Clone)]
struct Handshaker {
    url: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<(Method, HeaderMap, Instant)>>>,
}

impl Handshaker {
    async fn start(mode: Mode) -> Handshaker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let this = Handshaker {
            url,
            mode: Arc::new(Mutex::new(mode)),
            seen: Default::default(),
        };
        let state = this.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::any(move |method: Method, headers: HeaderMap| {
                let state = state.clone();
                async move { state.answer(method, headers) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        this
    }

    fn answer(&self, method: Method, headers: HeaderMap) -> axum::response::Response {
        let origin = headers
            .get("webhook-request-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen
            .lock()
            .unwrap()
            .push((method.clone(), headers, Instant::now()));
        if method != Method::OPTIONS {
            return StatusCode::NO_CONTENT.into_response();
        }
        match *self.mode.lock().unwrap() {
            Mode::Allow(rate) => {
                let mut answer = axum::response::Response::builder()
                    .status(200)
                    .header("Allow", "POST")
                    .header("WebHook-Allowed-Origin", origin);
                if let Some(rate) = rate {
                    answer = answer.header("WebHook-Allowed-Rate", rate);
                }
                answer.body(axum::body::Body::empty()).unwrap()
            }
            Mode::Refuse => StatusCode::METHOD_NOT_ALLOWED.into_response(),
            Mode::Callback => StatusCode::OK.into_response(),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self, method: Method) -> Vec<(HeaderMap, Instant)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| *m == method)
            .map(|(_, h, at)| (h.clone(), *at))
            .collect()
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn app() -> TestApp {
    TestApp::builder()
        .config("[webhooks]\norigin = \"herald.test\"")
        .build()
        .await
}

/// A webhook endpoint requiring the handshake, subscribed to purchases; its id.
async fn endpoint(app: &TestApp, url: &str, extra: Value) -> String {
    let mut body =
        json!({"name": "guarded", "kind": "webhook", "url": url, "validation": "cloudevents"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, ep) = app.post("/v1/endpoints", &body).await;
    assert_eq!(status, 201, "{ep}");
    let id = ep["endpoint"]["id"].as_str().unwrap().to_owned();
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "guarded", "event": "contoso_CustomerPurchase", "endpoint": id}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    id
}

/// A webhook endpoint without the handshake, subscribed to purchases.
async fn unguarded(app: &TestApp, url: &str) {
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "unguarded", "kind": "webhook", "url": url}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "unguarded", "event": "contoso_CustomerPurchase", "endpoint": ep["endpoint"]["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
}

async fn validation(app: &TestApp, endpoint: &str) -> Value {
    app.get(&format!("/v1/endpoints/{endpoint}/health")).await.1["validation"].clone()
}

#[tokio::test]
async fn a_receiver_that_allows_the_origin_gets_deliveries_with_it_at_the_rate_it_allowed() {
    let app = app().await;
    let receiver = Handshaker::start(Mode::Allow(Some("120"))).await;
    let endpoint = endpoint(
        &app,
        &receiver.url,
        json!({"rate_limit": {"per_second": 5}}),
    )
    .await;
    for i in 0..3 {
        app.send_purchase(f64::from(i)).await;
    }
    let posts = wait_for(Duration::from_secs(10), "three deliveries", || async {
        let posts = receiver.requests(Method::POST);
        (posts.len() >= 3).then_some(posts)
    })
    .await;
    let options = receiver.requests(Method::OPTIONS);
    assert_eq!(options.len(), 1, "one handshake for the endpoint");
    let (asked, asked_at) = &options[0];
    assert_eq!(header(asked, "webhook-request-origin"), "herald.test");
    // The endpoint's own limit, per minute.
    assert_eq!(header(asked, "webhook-request-rate"), "300");
    assert!(
        header(asked, "webhook-request-callback")
            .starts_with(&format!("{}/v1/webhook-validation/", app.url)),
        "{asked:?}"
    );
    assert!(
        posts.iter().all(|(_, at)| at > asked_at),
        "nothing before the grant"
    );
    for (h, _) in &posts {
        assert_eq!(
            header(h, "origin"),
            "herald.test",
            "the origin travels on every delivery"
        );
    }
    // The receiver allowed 120 a minute, fewer than the endpoint's 300: two a second.
    let span = posts[2].1.duration_since(posts[0].1);
    assert!(
        span >= Duration::from_millis(900),
        "three deliveries in {span:?}"
    );
    let v = validation(&app, &endpoint).await;
    assert_eq!(
        (v["state"].as_str(), v["allowed_per_minute"].as_u64()),
        (Some("granted"), Some(120)),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refusing_receiver_gets_nothing_until_it_allows_and_waiting_spends_no_attempts() {
    let app = app().await;
    let receiver = Handshaker::start(Mode::Refuse).await;
    let endpoint = endpoint(&app, &receiver.url, json!({})).await;
    let event = app.send_purchase(1.0).await;
    wait_for(Duration::from_secs(10), "the refusal", || async {
        (validation(&app, &endpoint).await["state"] == "refused").then_some(())
    })
    .await;
    let v = validation(&app, &endpoint).await;
    assert!(v["last_error"].as_str().unwrap().contains("405"), "{v}");
    // Asked again on the backoff and refused again: the dispatcher had its chance, and it
    // still sent nothing.
    wait_for(
        Duration::from_secs(10),
        "the handshake asked again",
        || async { (receiver.requests(Method::OPTIONS).len() >= 2).then_some(()) },
    )
    .await;
    assert!(
        receiver.requests(Method::POST).is_empty(),
        "no delivery without a grant"
    );
    let (_, e) = app.get(&format!("/v1/events/{event}")).await;
    assert_eq!(e["deliveries"][0]["attempts"], 0, "{e}");
    // Waiting (or leased for a moment while the handshake is asked again), never sent.
    assert!(
        matches!(
            e["deliveries"][0]["status"].as_str(),
            Some("pending" | "in_flight")
        ),
        "{e}"
    );
    // Asked again on the backoff, it allows: what waited is delivered.
    receiver.set(Mode::Allow(None));
    wait_for(
        Duration::from_secs(10),
        "the delivery after the grant",
        || async { (!receiver.requests(Method::POST).is_empty()).then_some(()) },
    )
    .await;
    assert!(receiver.requests(Method::OPTIONS).len() >= 2);
    let v = validation(&app, &endpoint).await;
    assert_eq!(v["state"], "granted", "{v}");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_grants_through_the_callback_url() {
    let app = app().await;
    let receiver = Handshaker::start(Mode::Callback).await;
    let endpoint = endpoint(&app, &receiver.url, json!({})).await;
    app.send_purchase(1.0).await;
    let asked = wait_for(Duration::from_secs(10), "the handshake", || async {
        receiver.requests(Method::OPTIONS).first().cloned()
    })
    .await;
    let callback = header(&asked.0, "webhook-request-callback");
    // A receiver that needs no handshake gets a later purchase: the dispatcher has leased and
    // sent since, and the guarded endpoint still got nothing.
    let other = Handshaker::start(Mode::Allow(None)).await;
    unguarded(&app, &other.url).await;
    app.send_purchase(2.0).await;
    wait_for(
        Duration::from_secs(10),
        "the later purchase elsewhere",
        || async { (!other.requests(Method::POST).is_empty()).then_some(()) },
    )
    .await;
    assert!(
        receiver.requests(Method::POST).is_empty(),
        "no delivery before the callback"
    );
    assert_eq!(validation(&app, &endpoint).await["state"], "requested");
    // A bad rate is refused with the header named; the callback needs no API key.
    let answer = reqwest::Client::new()
        .post(&callback)
        .header("WebHook-Allowed-Rate", "fast")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let answer = reqwest::Client::new()
        .get(&callback)
        .header("WebHook-Allowed-Rate", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let granted: Value = answer.json().await.unwrap();
    assert_eq!(granted["endpoint_id"], endpoint.as_str());
    wait_for(
        Duration::from_secs(10),
        "the delivery after the callback",
        || async { (!receiver.requests(Method::POST).is_empty()).then_some(()) },
    )
    .await;
    // A token grants once.
    let again = reqwest::get(&callback).await.unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(receiver.requests(Method::OPTIONS).len(), 1);
    app.stop().await;
}
