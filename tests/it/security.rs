//! Authentication, authorisation, the SSRF guard and secrets kept out of answers.

use std::time::Duration;

use herald::destinations::network::NetworkPolicy;
use herald::destinations::webhook::WebhookClient;
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
        "http://[::127.0.0.1]/hook",
        "http://[2002:7f00:1::]/hook",
        "http://[64:ff9b:1::a00:1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[fec0::1]/hook",
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
        let outcome = send_one(&destination).await;
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

#[tokio::test]
async fn service_bus_and_event_hubs_namespaces_obey_the_network_policy() {
    let app = TestApp::builder()
        .config("[webhooks]\nallow_networks = []")
        .build()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = json!({"type": "sas_key", "key_name": "RootManageSharedAccessKey", "key": "a2V5"});
    for kind in ["service_bus", "event_hubs"] {
        for (field, given) in [
            (
                "namespace",
                json!({"namespace": format!("amqp://127.0.0.1:{port}"), "credential": key}),
            ),
            (
                "namespace",
                json!({"namespace": "sb://169.254.169.254", "credential": key}),
            ),
            (
                "namespace",
                json!({"namespace": "localhost", "credential": key}),
            ),
            (
                "namespace",
                json!({"namespace": "sb://[::ffff:0:7f00:1]", "credential": key}),
            ),
            (
                "connection_string",
                json!({"connection_string": format!(
                "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true")}),
            ),
        ] {
            let mut input = json!({"name": "amqp", "kind": kind, "entity": "orders"});
            input
                .as_object_mut()
                .unwrap()
                .extend(given.as_object().unwrap().clone());
            let (status, body) = app.post("/v1/endpoints", &input).await;
            assert_eq!(status, 400, "{kind} {given}: {body}");
            assert_eq!(body["error"]["details"][0]["parameter"], field, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("not a public address"),
                "{body}"
            );
        }
    }
    never_connected(&listener).await;
    app.stop().await;
}

#[tokio::test]
async fn an_amqp_namespace_that_now_resolves_to_loopback_is_refused_before_connecting() {
    // As after DNS rebinding: settings accepted once, whose host now resolves to loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = WebhookClient::new(NetworkPolicy::default(), Duration::from_secs(5)).unwrap();
    let destinations = herald::destinations::Destinations::new(client);
    for (i, host) in ["localhost", "127.0.0.1"].into_iter().enumerate() {
        let settings = herald::model::AzureSettings {
            host: host.into(),
            port: Some(port),
            emulator: true,
            entity: "orders".into(),
            credential: herald::model::AzureCredential::SasKey {
                key_name: "k".into(),
                key: herald::model::SecretString::new("a2V5"),
            },
            partition_id: None,
        };
        for settings in [
            herald::model::DestinationSettings::ServiceBus(settings.clone()),
            herald::model::DestinationSettings::EventHubs(settings),
        ] {
            let endpoint = herald::model::Endpoint {
                id: herald::model::EndpointId::new(),
                name: format!("amqp-{i}"),
                settings,
                max_concurrency: None,
                rate_limit: None,
                created_at: time::OffsetDateTime::now_utc(),
                updated_at: time::OffsetDateTime::now_utc(),
                owners: Vec::new(),
            };
            let outcome = send_one(destinations.get(&endpoint).as_ref()).await;
            assert!(
                matches!(&outcome, Outcome::Permanent { error, .. } if error.to_string().contains("not a public address")),
                "{host}: {outcome:?}"
            );
        }
    }
    never_connected(&listener).await;
}

#[tokio::test]
async fn the_smaller_holes_are_closed() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let webhook = |extra: Value| {
        let mut e = json!({"name": "small", "kind": "webhook", "url": receiver.url()});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let refused = |body: &Value, field: &str| body["error"]["details"][0]["parameter"] == field;
    // A timeout past half the lease, a rate that never sends, a header Herald sets, a name
    // that forges log lines.
    for (extra, field) in [
        (json!({"timeout": "61s"}), "timeout"),
        (json!({"timeout": "0s"}), "timeout"),
        (
            json!({"rate_limit": {"per_second": 1e-300}}),
            "rate_limit.per_second",
        ),
        (
            json!({"auth": {"type": "HttpHeader", "values": {"Host": "evil.example"}}}),
            "auth",
        ),
        (
            json!({"auth": {"type": "HttpHeader", "values": {"Content-Type": "text/plain"}}}),
            "auth",
        ),
        (json!({"name": "two\nlines"}), "name"),
    ] {
        let (status, body) = app.post("/v1/endpoints", &webhook(extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert!(refused(&body, field), "{extra}: {body}");
    }
    let (status, body) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "bad\u{1b}[31m", "kind": "webhook", "url": receiver.url()}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Write-only values stay with the host they were given for.
    let (status, made) = app
        .post(
            "/v1/endpoints",
            &webhook(json!({
                "url": format!("{}?code=s3cret", receiver.url()),
                "auth": {"type": "HttpHeader", "values": {"Authorization": "Bearer t0ken"}},
                "headers": [{"name": "X-Key", "value": "k3y", "secret": true}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let id = made["endpoint"]["id"].as_str().unwrap().to_owned();
    // The query is masked in the API's view, and giving that view back keeps it.
    let shown = made["endpoint"]["url"].as_str().unwrap().to_owned();
    assert!(!shown.contains("s3cret") && shown.contains('?'), "{shown}");
    let (_, list) = app.get("/v1/endpoints").await;
    assert!(!list.to_string().contains("s3cret"), "{list}");
    let put = |body: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            let r = app
                .req(reqwest::Method::PUT, &format!("/v1/endpoints/{id}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = put(json!({"name": "small", "kind": "webhook", "url": shown})).await;
    assert_eq!(status, 200, "{body}");
    let moved = format!("http://localhost:{}/hook", receiver.addr.port());
    let (status, body) = put(json!({"name": "small", "kind": "webhook", "url": moved})).await;
    assert_eq!(status, 400, "{body}");
    assert!(refused(&body, "auth"), "{body}");
    let (status, body) = put(json!({"name": "small", "kind": "webhook", "url": moved,
        "auth": {"type": "HttpHeader", "values": {"Authorization": "Bearer other"}}}))
    .await;
    assert!(status == 400 && refused(&body, "headers"), "{body}");
    let (status, body) = put(json!({"name": "small", "kind": "webhook", "url": moved,
        "auth": {"type": "HttpHeader", "values": {"Authorization": "Bearer other"}},
        "headers": [{"name": "X-Key", "value": "other", "secret": true}]}))
    .await;
    assert_eq!(status, 200, "{body}");

    // A Service Bus endpoint moved to another namespace gives its credential again.
    let (status, sb) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "sb", "kind": "service_bus", "namespace": "amqp://127.0.0.1:5999", "entity": "q",
                "credential": {"type": "sas_key", "key_name": "k", "key": "a2V5"}}),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    let sb_id = sb["endpoint"]["id"].as_str().unwrap();
    let r = app
        .req(reqwest::Method::PUT, &format!("/v1/endpoints/{sb_id}"))
        .json(&json!({"name": "sb", "kind": "service_bus", "namespace": "amqp://127.0.0.2:5999", "entity": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(refused(&body, "credential"), "{body}");

    // Bodies: a key given twice, GUIDs and date-times in other spellings.
    let r = app
        .req(reqwest::Method::POST, "/v1/events/contoso_CustomerPurchase")
        .header("content-type", "application/json")
        .body(r#"{"CustomerId":"6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10","Total":1,"Total":2,"PurchasedOn":"2026-11-22T10:30:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("given twice"));
    for (field, value) in [
        (
            "CustomerId",
            json!("urn:uuid:6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10"),
        ),
        (
            "CustomerId",
            json!("{6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10}"),
        ),
        ("PurchasedOn", json!("2026-11-22 10:30:00Z")),
        ("PurchasedOn", json!("2016-12-31T23:59:60Z")),
        ("PurchasedOn", json!("0000-01-01T00:00:00Z")),
    ] {
        let mut body = purchase(1.0);
        body[field] = value.clone();
        let (status, answer) = app.post("/v1/events/contoso_CustomerPurchase", &body).await;
        assert_eq!(status, 400, "{field} = {value}: {answer}");
        assert_eq!(
            answer["error"]["details"][0]["parameter"], field,
            "{answer}"
        );
    }

    // The store file is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let dir = app.stop().await;
    let mode = std::fs::metadata(dir.path().join("herald.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "herald.db is {mode:o}");
}

#[tokio::test]
async fn webhooks_never_go_through_a_proxy_from_the_environment_and_short_keys_are_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}\"\n[webhooks]\nallow_networks = [\"127.0.0.0/8\"]\n",
            dir.path().join("herald.db").display()
        ),
    )
    .unwrap();
    let env: Vec<(&str, String)> = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"]
        .into_iter()
        .map(|k| (k, proxy_url.clone()))
        .collect();
    let herald = crate::support::process::HeraldProcess::start(
        &dir.path().join("herald.toml"),
        dir.path().join("herald.log"),
        &env,
    );
    let receiver = Receiver::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (status, ep) = crate::support::process::post(
        &http,
        &herald.url,
        "/v1/endpoints",
        json!({"name": "direct", "kind": "webhook", "url": receiver.url()}),
    )
    .await;
    assert_eq!(status, 201, "{ep}");
    let (status, _) = crate::support::process::post(
        &http,
        &herald.url,
        "/v1/subscriptions",
        json!({"event": "contoso_CustomerPurchase", "endpoint": ep["endpoint"]["id"]}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = crate::support::process::post(
        &http,
        &herald.url,
        "/v1/events/contoso_CustomerPurchase",
        purchase(3.0),
    )
    .await;
    assert_eq!(status, 202);
    crate::support::wait_for(Duration::from_secs(20), "the delivery", || async {
        (receiver.count() > 0).then_some(())
    })
    .await;
    never_connected(&proxy).await;
    let log = std::fs::read_to_string(&herald.log).unwrap();
    assert!(
        log.contains("api_key is short"),
        "no warning of the short test key"
    );
}

/// Sends a purchase through `destination` as a delivery would; its outcome.
async fn send_one(destination: &dyn Destination) -> Outcome {
    let event = OutgoingEvent::new(Event {
        id: EventId::new(),
        name: herald::model::EventName::parse("contoso_CustomerPurchase").unwrap(),
        solution: "contoso".into(),
        params: serde_json::Map::new(),
        correlation_id: "c".into(),
        caller: "test".into(),
        received_at: time::OffsetDateTime::now_utc(),
        depth: 1,
        pipeline: Default::default(),
        traceparent: None,
        images: None,
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
        reshaped: None,
        row: &Default::default(),
    };
    destination.send(&message, &mut Default::default()).await
}

/// Asserts that nothing connected to `listener` before: the first connection it takes is
/// one made now (a positive marker, not a wait for something not to happen).
async fn never_connected(listener: &tokio::net::TcpListener) {
    let ours = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (_, peer) = listener.accept().await.unwrap();
    assert_eq!(
        peer,
        ours.local_addr().unwrap(),
        "something connected before"
    );
}
