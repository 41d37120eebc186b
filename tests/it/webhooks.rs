//! Signed webhooks end to end: received, verified by Herald's verifier and by the
//! `standardwebhooks` package from PyPI, rotation, and the `webhook verify` CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald::destinations::webhook::{verify, Secret, VerifyKey};
use serde_json::{json, Value};

use crate::support::receiver::Received;
use crate::support::{run_python, wait_for, Receiver, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn posted_events_reach_the_receiver_signed_and_verifiable_by_standardwebhooks() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    app.subscribe_webhook(
        "receiver",
        &receiver.url(),
        SECRET,
        "contoso_CustomerPurchase",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.send_purchase(10.0 + f64::from(i)).await);
    }
    wait_for(Duration::from_secs(10), "5 webhooks", || async {
        (receiver.received().len() >= 5).then_some(())
    })
    .await;

    let secret = VerifyKey::parse(SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut requests = Vec::new();
    for r in receiver.received() {
        assert_eq!(r.header("content-type"), "application/cloudevents+json");
        let body = r.json();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["type"], "contoso_CustomerPurchase");
        assert_eq!(body["source"], "/herald/contoso");
        assert!(body["dataschema"]
            .as_str()
            .unwrap()
            .ends_with("/v1/catalog/events/contoso_CustomerPurchase/schema"));
        assert!(ids.contains(&body["id"].as_str().unwrap().to_owned()));
        // webhook-id is the delivery id, as the event's deliveries show it. The result is
        // recorded a moment after the receiver answered (with the next batch's mark).
        let path = format!("/v1/events/{}", body["id"].as_str().unwrap());
        let event = wait_for(
            Duration::from_secs(5),
            "the delivery to be recorded",
            || async {
                let (_, event) = app.get(&path).await;
                (event["deliveries"][0]["status"] == "succeeded").then_some(event)
            },
        )
        .await;
        assert_eq!(
            event["deliveries"][0]["id"].as_str().unwrap(),
            r.header("webhook-id")
        );
        assert_eq!(event["deliveries"][0]["status"], "succeeded");
        verify(
            &secret,
            &r.header("webhook-id"),
            &r.header("webhook-timestamp"),
            &r.header("webhook-signature"),
            &r.body,
            Duration::from_secs(300),
            now,
        )
        .expect("Herald's own verifier accepts the request");
        requests.push(signed_request(&r));
    }
    let out = run_python_verifier(SECRET, &requests);
    assert!(out.contains("verified 5 requests"), "{out}");
    app.stop().await;
}

/// A received request's signature headers and body, as the Python verifiers take them.
pub(crate) fn signed_request(r: &Received) -> Value {
    json!({
        "headers": {
            "webhook-id": r.header("webhook-id"),
            "webhook-timestamp": r.header("webhook-timestamp"),
            "webhook-signature": r.header("webhook-signature"),
        },
        "body": String::from_utf8(r.body.to_vec()).unwrap(),
    })
}

/// Runs tests/python/verify_webhooks.py; panics unless every request verifies and a tampered one fails.
pub(crate) fn run_python_verifier(secret: &str, requests: &[Value]) -> String {
    run_python(
        "verify_webhooks.py",
        &json!({"secret": secret, "requests": requests}),
    )
}

#[tokio::test]
async fn during_rotation_both_secrets_sign_and_retiring_the_old_one_stops_it() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app
        .subscribe_webhook(
            "rotating",
            &receiver.url(),
            SECRET,
            "contoso_CustomerPurchase",
        )
        .await;
    let (status, added) = app
        .post(&format!("/v1/endpoints/{endpoint}/secrets"), &json!({}))
        .await;
    assert_eq!(status, 201);
    let new_secret = added["generated_secret"].as_str().unwrap().to_owned();
    assert_eq!(added["endpoint"]["secrets"].as_array().unwrap().len(), 2);

    app.send_purchase(1.0).await;
    let r = wait_for(Duration::from_secs(10), "a webhook", || async {
        receiver.received().first().cloned()
    })
    .await;
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for s in [SECRET, &new_secret] {
        let secret = VerifyKey::parse(s).unwrap();
        verify(
            &secret,
            &r.header("webhook-id"),
            &r.header("webhook-timestamp"),
            &r.header("webhook-signature"),
            &r.body,
            Duration::from_secs(300),
            now,
        )
        .unwrap();
    }

    let old_id = added["endpoint"]["secrets"][0]["id"].as_str().unwrap();
    let retired = app
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/endpoints/{endpoint}/secrets/{old_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 200);
    app.send_purchase(2.0).await;
    let r = wait_for(Duration::from_secs(10), "a second webhook", || async {
        receiver.received().get(1).cloned()
    })
    .await;
    assert_eq!(r.header("webhook-signature").split(' ').count(), 1);
    let old = VerifyKey::parse(SECRET).unwrap();
    assert!(verify(
        &old,
        &r.header("webhook-id"),
        &r.header("webhook-timestamp"),
        &r.header("webhook-signature"),
        &r.body,
        Duration::from_secs(300),
        now
    )
    .is_err());
    app.stop().await;
}

#[test]
fn the_verify_command_accepts_a_genuine_request_and_refuses_a_tampered_one() {
    let secret = Secret::parse(SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = br#"{"specversion":"1.0"}"#;
    let signature = herald::destinations::webhook::sign([&secret], "msg_1", now, body);
    let run = |body: &[u8], timestamp: i64| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "webhook",
                "verify",
                "--secret",
                SECRET,
                "--id",
                "msg_1",
                "--signature",
                &signature,
            ])
            .args(["--timestamp", &timestamp.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(body, now);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(br#"{"specversion":"2.0"}"#, now);
    assert_eq!(code, Some(1));
    assert!(out.contains("no v1 signature matches"), "{out}");
    let (code, out) = run(body, now - 600);
    assert_eq!(code, Some(1));
    assert!(out.contains("beyond the tolerance"));
}

#[tokio::test]
async fn v1a_signatures_verify_with_the_published_public_keys_through_a_rotation() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let (status, created) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "asym", "kind": "webhook", "url": receiver.url(), "signing": "both"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    // The shared secret is shown once; the ed25519 secret key never is, only its public key.
    let shared = created["generated_secret"].as_str().unwrap().to_owned();
    assert!(shared.starts_with("whsec_"), "{created}");
    let secrets = created["endpoint"]["secrets"].as_array().unwrap().clone();
    assert_eq!(
        secrets
            .iter()
            .map(|s| s["scheme"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["v1", "v1a"]
    );
    assert!(!created.to_string().contains("whsk_"), "{created}");
    let first_key = secrets[1]["public_key"].as_str().unwrap().to_owned();
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "asym", "event": "contoso_CustomerPurchase", "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    for i in 0..3 {
        app.send_purchase(f64::from(i)).await;
    }
    let got = wait_for(Duration::from_secs(10), "3 webhooks", || async {
        let got = receiver.received();
        (got.len() >= 3).then_some(got)
    })
    .await;
    let as_json = |got: &[Received]| -> Vec<Value> { got.iter().map(signed_request).collect() };
    let keys_url = format!("{}/v1/endpoints/{endpoint}/public-keys", app.url);
    // The script fetches the keys from this Herald, which runs on this test's thread.
    let python = |input: Value| async move {
        tokio::task::spawn_blocking(move || run_python("verify_v1a.py", &input))
            .await
            .unwrap()
    };
    let out =
        python(json!({"public_keys_url": keys_url, "requests": as_json(&got), "secret": shared}))
            .await;
    assert!(out.contains("verified 3 v1a requests"), "{out}");
    assert!(
        out.contains("verified 3 v1 requests with standardwebhooks"),
        "{out}"
    );

    // Rotation: a second ed25519 key signs beside the first until the first is retired.
    let (status, added) = app
        .post(
            &format!("/v1/endpoints/{endpoint}/secrets"),
            &json!({"scheme": "v1a"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert!(added.get("generated_secret").is_none(), "{added}");
    let (status, published) = app
        .http
        .get(&keys_url)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "public keys need no credentials");
    let published: Value = published.json().await.unwrap();
    assert_eq!(
        published["keys"].as_array().unwrap().len(),
        2,
        "{published}"
    );
    app.send_purchase(9.0).await;
    let r = wait_for(Duration::from_secs(10), "a fourth webhook", || async {
        receiver.received().get(3).cloned()
    })
    .await;
    let versions: Vec<String> = r
        .header("webhook-signature")
        .split(' ')
        .map(|s| s.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(versions, ["v1", "v1a", "v1a"]);
    // Either key alone verifies it (a receiver still holding only the old one, or only the new).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for key in published["keys"].as_array().unwrap() {
        let key = VerifyKey::parse(key["public_key"].as_str().unwrap()).unwrap();
        verify(
            &key,
            &r.header("webhook-id"),
            &r.header("webhook-timestamp"),
            &r.header("webhook-signature"),
            &r.body,
            Duration::from_secs(300),
            now,
        )
        .expect("each published key verifies during the overlap");
    }
    let first_id = secrets[1]["id"].as_str().unwrap();
    let retired = app
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/endpoints/{endpoint}/secrets/{first_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(retired.status(), 200);
    app.send_purchase(10.0).await;
    let r = wait_for(Duration::from_secs(10), "a fifth webhook", || async {
        receiver.received().get(4).cloned()
    })
    .await;
    let old = VerifyKey::parse(&first_key).unwrap();
    assert_eq!(
        verify(
            &old,
            &r.header("webhook-id"),
            &r.header("webhook-timestamp"),
            &r.header("webhook-signature"),
            &r.body,
            Duration::from_secs(300),
            time::OffsetDateTime::now_utc().unix_timestamp(),
        ),
        Err(herald::destinations::webhook::VerifyError::NoMatch("v1a"))
    );
    let out = python(json!({"public_keys_url": keys_url, "requests": as_json(&[r])})).await;
    assert!(out.contains("verified 1 v1a requests"), "{out}");
    app.stop().await;
}

#[test]
fn the_verify_command_checks_v1a_signatures_with_a_public_key() {
    let secret = Secret::generate_for(herald::model::Scheme::V1a);
    let public = secret.public_key().unwrap().to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = br#"{"specversion":"1.0"}"#;
    let signature = herald::destinations::webhook::sign([&secret], "msg_1", now, body);
    let run = |key: &str, body: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["webhook", "verify", "--secret", key, "--id", "msg_1"])
            .args(["--signature", &signature, "--timestamp", &now.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&public, body);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("v1a (ed25519)"), "{out}");
    let (code, out) = run(&public, br#"{"specversion":"2.0"}"#);
    assert_eq!(
        (code, out.contains("no v1a signature matches")),
        (Some(1), true),
        "{out}"
    );
    let (code, out) = run(SECRET, body);
    assert_eq!(
        (code, out.contains("no v1 signature matches")),
        (Some(1), true),
        "{out}"
    );
    let (code, out) = run("whpk_short", body);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--secret"), "{out}");
}

#[tokio::test]
async fn static_headers_travel_with_every_request_and_secret_values_stay_write_only() {
    let app = TestApp::start().await;
    let receiver = Receiver::start().await;
    let body = json!({"name": "headed", "kind": "webhook", "url": receiver.url(), "secret": SECRET,
        "headers": [{"name": "X-Tenant", "value": "acme"}, {"name": "X-Api-Key", "value": "s3cr3t-value", "secret": true}]});
    let (status, created) = app.post("/v1/endpoints", &body).await;
    assert_eq!(status, 201, "{created}");
    assert!(!created.to_string().contains("s3cr3t-value"), "{created}");
    assert_eq!(
        created["endpoint"]["headers"],
        json!([{"name": "X-Tenant", "value": "acme", "secret": false}, {"name": "X-Api-Key", "secret": true}])
    );
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    // On update, a secret header given without a value keeps it.
    let replaced = app
        .req(reqwest::Method::PUT, &format!("/v1/endpoints/{endpoint}"))
        .json(&json!({"name": "headed", "kind": "webhook", "url": receiver.url(),
            "headers": [{"name": "X-Tenant", "value": "contoso"}, {"name": "X-Api-Key", "secret": true}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let (status, sub) = app
        .post(
            "/v1/subscriptions",
            &json!({"name": "headed", "event": "contoso_CustomerPurchase", "endpoint": endpoint}),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    app.send_purchase(1.0).await;
    let r = wait_for(Duration::from_secs(10), "a webhook", || async {
        receiver.received().first().cloned()
    })
    .await;
    assert_eq!(r.header("x-tenant"), "contoso");
    assert_eq!(r.header("x-api-key"), "s3cr3t-value");
    // Headers Herald sets itself, and malformed ones, are refused with the field named.
    for (headers, field) in [
        (
            json!([{"name": "webhook-signature", "value": "x"}]),
            "headers[0].name",
        ),
        (
            json!([{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]),
            "headers[1].name",
        ),
        (
            json!([{"name": "X-B", "value": "bad\nvalue"}]),
            "headers[0].value",
        ),
        (json!([{"name": "X-C", "secret": true}]), "headers[0].value"),
    ] {
        let (status, err) = app
            .post(
                "/v1/endpoints",
                &json!({"name": "bad", "kind": "webhook", "url": receiver.url(), "headers": headers}),
            )
            .await;
        assert_eq!(status, 400, "{err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    app.stop().await;
}
