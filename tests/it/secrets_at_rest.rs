//! Secrets at rest: the database file holds no endpoint secret (read byte by byte, WAL
//! included), a key rotation seals every row again under the new key, and a store whose rows
//! need a key that is not configured refuses to start, naming the key.

use std::sync::Arc;

use herald::store::sealing::KeyRing;
use herald::store::{open, StoreSettings, StoreUrl};
use serde_json::json;

use crate::support::TestApp;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEADER_VALUE: &str = "header-value-s3cret-9f2c";
const SAS_KEY: &str = "SASkeyS3cretValue0123456789abcdefABCDEF012=";
const CLIENT_SECRET: &str = "client-s3cret-7d41-value";

/// Every secret value as it could appear in storage: whole, and the parts an encoder might
/// write (the base64 part of a `whsec_` secret).
fn needles() -> Vec<&'static str> {
    vec![
        WEBHOOK_SECRET,
        &WEBHOOK_SECRET[6..],
        HEADER_VALUE,
        SAS_KEY,
        &SAS_KEY[..24],
        CLIENT_SECRET,
    ]
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_endpoint_secret_reaches_the_database_file() {
    let app = TestApp::start().await;
    let endpoints = [
        json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET,
               "auth": {"type": "HttpHeader", "values": {"x-api-key": HEADER_VALUE}}}),
        json!({"name": "queue", "kind": "service_bus", "entity": "orders",
               "connection_string": format!("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={SAS_KEY}")}),
        json!({"name": "hub", "kind": "event_hubs", "namespace": "contoso.servicebus.windows.net", "entity": "purchases",
               "credential": {"type": "client_secret", "tenant_id": "00000000-0000-0000-0000-000000000001",
                              "client_id": "00000000-0000-0000-0000-000000000002", "client_secret": CLIENT_SECRET}}),
    ];
    for body in &endpoints {
        let (status, answer) = app.post("/v1/endpoints", body).await;
        assert_eq!(status, 201, "{answer}");
    }
    // A rotation writes the row again, with two secrets.
    let (_, list) = app.get("/v1/endpoints").await;
    let hook = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "hook")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, rotated) = app
        .post(&format!("/v1/endpoints/{hook}/secrets"), &json!({}))
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new_secret = rotated["generated_secret"]
        .as_str()
        .expect("the new secret, shown once")
        .to_owned();

    let dir = app.stop().await;
    let mut bytes = Vec::new();
    for name in ["herald.db", "herald.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            bytes.extend(b);
        }
    }
    assert!(bytes.len() > 4096, "the database was read");
    for needle in needles()
        .into_iter()
        .chain([new_secret.as_str(), &new_secret[6..]])
    {
        assert!(
            !contains(&bytes, needle),
            "{needle:?} is in the database file"
        );
    }
    // The rows are there, sealed under the test key.
    assert!(contains(&bytes, "sealed:v1:test-1:"));
}

/// A store on `url` (SQLite or PostgreSQL) sealing with `lines`.
fn settings(base: &StoreSettings, lines: &[&str]) -> StoreSettings {
    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    StoreSettings {
        keys: Arc::new(KeyRing::parse(&lines).expect("keys")),
        ..base.clone()
    }
}

/// Runs `sql` straight on the database (as a database user without the key would), returning
/// the first column of each row.
async fn raw(base: &StoreSettings, sql: &str) -> Vec<String> {
    match &base.url {
        StoreUrl::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
        }
        StoreUrl::Postgres(url) => {
            let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            let options =
                options.options([("search_path", base.schema.as_deref().unwrap_or("public"))]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
        }
    }
}

async fn stored_settings(base: &StoreSettings) -> Vec<String> {
    raw(base, "SELECT settings FROM endpoints").await
}

pub async fn a_rotation_seals_every_row_again_and_a_missing_key_stops_the_start(
    t: crate::store_contract::TestStore,
) {
    let (k1, k2) = (KeyRing::generate_line(), KeyRing::generate_line());
    let id = |line: &str| line.split(':').next().unwrap().to_owned();
    let first = open(&settings(&t.settings, &[&k1])).await.unwrap();
    let ep = crate::store_contract::endpoint(first.as_ref(), "sealed").await;
    drop(first);
    let stored = stored_settings(&t.settings).await;
    assert!(stored
        .iter()
        .all(|s| s.starts_with(&format!("sealed:v1:{}:", id(&k1)))));
    assert!(stored.iter().all(|s| !s.contains("whsec_")), "{stored:?}");

    // Rotation: the new key first, the old one after it.
    let rotated = open(&settings(&t.settings, &[&k2, &k1])).await.unwrap();
    let back = rotated
        .records()
        .endpoint(ep.id)
        .await
        .unwrap()
        .unwrap()
        .settings;
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&ep.settings).unwrap(),
        "the settings come back whole"
    );
    drop(rotated);
    let stored = stored_settings(&t.settings).await;
    assert!(
        stored
            .iter()
            .all(|s| s.starts_with(&format!("sealed:v1:{}:", id(&k2)))),
        "sealed again under the new key: {stored:?}"
    );
    // The old key can go now.
    let only_new = open(&settings(&t.settings, &[&k2])).await.unwrap();
    assert!(only_new.records().endpoint(ep.id).await.unwrap().is_some());
    drop(only_new);
    // Without the key the rows need, the store does not open, and says which key.
    let other = KeyRing::generate_line();
    let err = match open(&settings(&t.settings, &[&other])).await {
        Ok(_) => panic!("a store whose key is missing opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&id(&k2)), "{err}");
    assert!(err.contains("sealed"), "{err}");
    assert!(
        !err.contains(k2.split(':').nth(1).unwrap()),
        "the key itself is never printed"
    );

    // Settings put in the clear into a sealed store (by someone without the key) are refused,
    // not sealed as if Herald had written them.
    let planted = r#"{"kind":"webhook","url":"https://attacker.example/hook","secrets":[]}"#;
    raw(
        &t.settings,
        &format!("UPDATE endpoints SET settings = '{planted}' RETURNING id"),
    )
    .await;
    let err = match open(&settings(&t.settings, &[&k2])).await {
        Ok(_) => panic!("a store with settings planted in the clear opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("in the clear"), "{err}");
}

mod contract {
    pub use super::a_rotation_seals_every_row_again_and_a_missing_key_stops_the_start;
    use crate::store_contract::{contract, postgres, sqlite};
    contract!(a_rotation_seals_every_row_again_and_a_missing_key_stops_the_start);
}
