//! Authentication, authorisation, the SSRF guard and secrets kept out of answers.

use std::sync::Arc;
use std::time::Duration;

use herald::destinations::webhook::{NetworkPolicy, WebhookClient};
use herald::destinations::{Destination, Outbound, Outcome};
use herald::model::{
    DeliveryId, Event, EventId, OutgoingEvent, Secret, SecretId, SigningSecret, SubscriptionId,
    WebhookSettings,
};
use serde_json::{json, Value};

use crate::support::{purchase, Receiver, TestApp};

/// SHA-256 of "hk_pos_key" and of "hk_fabrikam_key".
const POS_KEY: &str = "hk_pos_key";
const FABRIKAM_KEY: &str = "hk_fabrikam_key";

fn sha(key: &str) -> String {
    hex::encode(herald::auth::hash(key))
}

async fn app_with_scoped_keys() -> TestApp {
    TestApp::builder()
        .config(&format!(
            r#"
[[api_keys]]
name = "pos"
sha256 = "{}"
solutions = ["contoso"]

[[api_keys]]
name = "fabrikam"
sha256 = "{}"
solutions = ["fabrikam"]
"#,
            sha(POS_KEY),
            sha(FABRIKAM_KEY)
        ))
        .build()
        .await
}

#[tokio::test]
async fn missing_or_wrong_keys_are_401_and_events_of_other_solutions_404() {
    let app = app_with_scoped_keys().await;
    let url = format!("{}/v1/events/contoso_CustomerPurchase", app.url);
    let send = |key: Option<&str>| {
        let mut r = app.http.post(&url).json(&purchase(1.0));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(send(Some("hk_wrong")).await.unwrap().status(), 401);
    // Another solution's event is as unknown as one the catalog lacks.
    let r = send(Some(FABRIKAM_KEY)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no cataloged event called \"contoso_CustomerPurchase\""));
    assert_eq!(send(Some(POS_KEY)).await.unwrap().status(), 202);

    // A key without `admin` cannot manage endpoints, and every admin route needs a key.
    let r = app
        .http
        .get(format!("{}/v1/endpoints", app.url))
        .bearer_auth(POS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for (method, path) in [
        ("POST", "/v1/endpoints"),
        ("POST", "/v1/subscriptions"),
        ("POST", "/v1/dead-letters/replay"),
        ("GET", "/v1/deliveries"),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn webhook_urls_to_loopback_private_or_metadata_addresses_are_refused_at_registration() {
    let app = TestApp::builder()
        .config("[webhooks]\nallow_networks = []")
        .build()
        .await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.0.0.8/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "file:///etc/passwd",
    ] {
        let (status, body) = app
            .post(
                "/v1/endpoints",
                &json!({"name": "x", "kind": "webhook", "url": url}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(
            body["error"]["details"][0]["parameter"], "url",
            "{url}: {body}"
        );
    }
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "x", "kind": "webhook", "url": "http://169.254.169.254/"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a public address"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_send_to_a_name_resolving_to_loopback_is_refused_at_send_time() {
    // As after DNS rebinding: the URL was accepted once, now its name resolves to loopback.
    let receiver = Receiver::start().await;
    let client = WebhookClient::new(NetworkPolicy::default(), Duration::from_secs(5)).unwrap();
    let secret = SigningSecret {
        id: SecretId::new(),
        secret: Secret::generate(),
        created_at: time::OffsetDateTime::now_utc(),
    };
    for url in [
        format!("http://localhost:{}/hook", receiver.addr.port()),
        receiver.url(),
    ] {
        let destination = client.destination(WebhookSettings {
            url,
            secrets: vec![secret.clone()],
            timeout: None,
            auth: None,
            headers: Vec::new(),
            validation: Default::default(),
        });
        let event = OutgoingEvent::new(Event {
            id: EventId::new(),
            name: "contoso_CustomerPurchase".into(),
            solution: "contoso".into(),
            params: serde_json::Map::new(),
            correlation_id: "c".into(),
            caller: "test".into(),
            received_at: time::OffsetDateTime::now_utc(),
            depth: 1,
            pipeline: Default::default(),
            traceparent: None,
        });
        let message = Outbound {
            delivery_id: DeliveryId::new(),
            subscription_id: SubscriptionId::new(),
            format: Default::default(),
            event: &event,
            schema_url: String::new(),
            definition: None,
            organization: "herald",
            amqp: &Default::default(),
            stage: None,
            traceparent: None,
        };
        let outcome = Arc::new(destination)
            .send(&message, &mut Default::default())
            .await;
        assert!(
            matches!(&outcome, Outcome::Permanent { error, .. } if error.to_string().contains("not a public address")),
            "{outcome:?}"
        );
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn secrets_never_appear_in_api_answers() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let (status, created) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "gen", "kind": "webhook", "url": receiver.url()}),
        )
        .await;
    assert_eq!(status, 201);
    let generated = created["generated_secret"].as_str().unwrap().to_owned();
    assert!(
        Secret::parse(&generated).is_ok(),
        "a generated secret is whsec_ + base64"
    );
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, created2) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "given", "kind": "webhook", "url": receiver.url(), "secret": given}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(created2.get("generated_secret").is_none());
    assert!(!created2.to_string().contains(&given[6..]));
    let id = created["endpoint"]["id"].as_str().unwrap();
    for path in [
        "/v1/endpoints".to_owned(),
        format!("/v1/endpoints/{id}"),
        "/openapi.json".to_owned(),
    ] {
        let text = app
            .req(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains(&generated[6..]) && !text.contains(&given[6..]),
            "{path} shows a secret"
        );
    }
    app.stop().await;
}
