//! Signed webhooks end to end: received, verified by Herald's verifier and by the
//! `standardwebhooks` package from PyPI, rotation, and the `webhook verify` CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald::destinations::webhook::{verify, Secret};
use serde_json::{json, Value};

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

    let secret = Secret::parse(SECRET).unwrap();
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
        // webhook-id is the delivery id, as the event's deliveries show it.
        let (_, event) = app
            .get(&format!("/v1/events/{}", body["id"].as_str().unwrap()))
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
        requests.push(json!({
            "headers": {
                "webhook-id": r.header("webhook-id"),
                "webhook-timestamp": r.header("webhook-timestamp"),
                "webhook-signature": r.header("webhook-signature"),
            },
            "body": String::from_utf8(r.body.to_vec()).unwrap(),
        }));
    }
    let out = run_python_verifier(SECRET, &requests);
    assert!(out.contains("verified 5 requests"), "{out}");
    app.stop().await;
}

/// Runs tests/python/verify_webhooks.py; panics unless every request verifies and a tampered one fails.
fn run_python_verifier(secret: &str, requests: &[Value]) -> String {
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
        let secret = Secret::parse(s).unwrap();
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
    let old = Secret::parse(SECRET).unwrap();
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
    assert!(out.contains("no signature matches"));
    let (code, out) = run(body, now - 600);
    assert_eq!(code, Some(1));
    assert!(out.contains("beyond the tolerance"));
}
