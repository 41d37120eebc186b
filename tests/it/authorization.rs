//! The authorization matrix, generated from the OpenAPI document: every operation it lists is
//! called by six callers (no key, a wrong key, a read-only key of `contoso`, an admin key of
//! `contoso`, an admin key of `fabrikam`, and an admin key of every solution) against
//! `fabrikam`'s resources, and the answer of each cell is written once below. An operation
//! the document lists without a row here fails the test, and so does a row for an operation
//! the document no longer lists.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{wait_for, Receiver, TestApp, ADMIN_KEY};

const READER: &str = "hk_matrix_contoso_reader";
const CONTOSO_ADMIN: &str = "hk_matrix_contoso_admin";
const FABRIKAM_ADMIN: &str = "hk_matrix_fabrikam_admin";

/// The callers, in the order of every row's answers.
const CALLERS: [Option<&str>; 6] = [
    None,
    Some("hk_matrix_wrong_key"),
    Some(READER),
    Some(CONTOSO_ADMIN),
    Some(FABRIKAM_ADMIN),
    Some(ADMIN_KEY),
];
const CALLER_NAMES: [&str; 6] = [
    "no key",
    "wrong key",
    "contoso reader",
    "contoso admin",
    "fabrikam admin",
    "admin of all",
];

/// What a cell expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Exactly this status.
    Is(u16),
    /// `200`, and nothing of fabrikam's in the body.
    Hidden,
    /// `200`, and fabrikam's resource in the body.
    Seen,
    /// `200`, and the first item of the batch answered this status.
    Item(u16),
    /// `200`, and this many dead letters replayed.
    Replayed(u64),
}
use Want::*;

/// One row: the operation as the document names it, its body (placeholders filled in), and
/// what each caller gets.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    want: [Want; 6],
}

const fn row(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    want: [Want; 6],
) -> Row {
    Row {
        method,
        path,
        body,
        want,
    }
}

const ENDPOINT_BODY: &str = r#"{"name": "{unique}", "kind": "webhook", "url": "{receiver}"}"#;
/// Stands for a component's bytes (`application/wasm`) as a body.
const COMPONENT_BODY: &str = "{component}";
const SUBSCRIPTION_BODY: &str = r#"{"event": "fabrikam_OrderShipped", "endpoint": "{endpoint}"}"#;

/// The matrix. Out of scope is answered as absent (404, or 400 naming the unknown event
/// where it is a field of the body); a key that may not administer is 403 before anything
/// is looked up.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    row("get", "/healthz", None, [Is(200), Is(200), Is(200), Is(200), Is(200), Is(200)]),
    row("get", "/readyz", None, [Is(200), Is(200), Is(200), Is(200), Is(200), Is(200)]),
    row("get", "/metrics", None, [Is(200), Is(200), Is(200), Is(200), Is(200), Is(200)]),
    // The catalog, as the key may see it.
    row("get", "/v1/catalog", None, [Is(401), Is(401), Hidden, Hidden, Seen, Seen]),
    row("get", "/v1/catalog/events/{unique_name}", None, [Is(401), Is(401), Is(404), Is(404), Is(200), Is(200)]),
    row("get", "/v1/catalog/events/{unique_name}/schema", None, [Is(401), Is(401), Is(404), Is(404), Is(200), Is(200)]),
    // Events.
    row("post", "/v1/events/{event}", Some(r#"{"OrderId": "o-1"}"#), [Is(401), Is(401), Is(404), Is(404), Is(202), Is(202)]),
    row("post", "/v1/events:batch", Some(r#"{"events": [{"event": "fabrikam_OrderShipped", "params": {"OrderId": "o-2"}}]}"#), [Is(401), Is(401), Item(404), Item(404), Item(202), Item(202)]),
    row("get", "/v1/events/{event}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    // Endpoints: fabrikam's is tied to fabrikam by its maker and its subscription.
    row("post", "/v1/endpoints", Some(ENDPOINT_BODY), [Is(401), Is(401), Is(403), Is(201), Is(201), Is(201)]),
    row("get", "/v1/endpoints", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/v1/endpoints/{id}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("put", "/v1/endpoints/{id}", Some(ENDPOINT_BODY), [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("delete", "/v1/endpoints/{id}", None, [Is(401), Is(401), Is(403), Is(404), Is(204), Is(204)]),
    row("post", "/v1/endpoints/{id}/secrets", Some("{}"), [Is(401), Is(401), Is(403), Is(404), Is(201), Is(201)]),
    row("delete", "/v1/endpoints/{id}/secrets/{secret_id}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    // Receivers fetch the public keys without a key.
    row("get", "/v1/endpoints/{id}/public-keys", None, [Is(200), Is(200), Is(200), Is(200), Is(200), Is(200)]),
    row("get", "/v1/endpoints/{id}/health", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("post", "/v1/endpoints/{id}/disable", Some("{}"), [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("post", "/v1/endpoints/{id}/enable", Some("{}"), [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    // The handshake's callback: the token is the credential.
    row("get", "/v1/webhook-validation/{token}", None, [Is(404), Is(404), Is(404), Is(404), Is(404), Is(404)]),
    row("post", "/v1/webhook-validation/{token}", None, [Is(404), Is(404), Is(404), Is(404), Is(404), Is(404)]),
    // Plug-ins: fabrikam's belongs to fabrikam; a push names its solution.
    row("post", "/v1/plugins", Some(COMPONENT_BODY), [Is(401), Is(401), Is(403), Is(400), Is(201), Is(201)]),
    row("get", "/v1/plugins", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/v1/plugins/{name}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("delete", "/v1/plugins/{name}", None, [Is(401), Is(401), Is(403), Is(404), Is(204), Is(204)]),
    // Sources: those whose every solution the key covers.
    row("get", "/v1/sources", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/v1/sources/{name}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    // A Dataverse environment's posts carry the source's key, never an API key.
    row("post", "/v1/sources/{name}/events", Some(r#"{"MessageName": "Create"}"#), [Is(401), Is(401), Is(401), Is(401), Is(401), Is(401)]),
    // Subscriptions.
    row("post", "/v1/subscriptions", Some(SUBSCRIPTION_BODY), [Is(401), Is(401), Is(403), Is(400), Is(201), Is(201)]),
    row("get", "/v1/subscriptions", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/v1/subscriptions/{id}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("put", "/v1/subscriptions/{id}", Some(SUBSCRIPTION_BODY), [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("delete", "/v1/subscriptions/{id}", None, [Is(401), Is(401), Is(403), Is(404), Is(204), Is(204)]),
    // Deliveries.
    row("get", "/v1/deliveries", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/v1/deliveries/{id}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
    row("post", "/v1/deliveries/{id}/retry", None, [Is(401), Is(401), Is(403), Is(404), Is(202), Is(202)]),
    row("post", "/v1/dead-letters/replay", Some(r#"{"endpoint_id": "{endpoint}"}"#), [Is(401), Is(401), Is(403), Replayed(0), Replayed(1), Replayed(1),]),
    // Flows: any key of the solution may subscribe a flow.
    row("post", "/v1/flows/subscriptions", Some(r#"{"event": "fabrikam_OrderShipped", "notificationUrl": "{receiver}"}"#), [Is(401), Is(401), Is(400), Is(400), Is(201), Is(201)]),
    row("post", "/v1/flows/events/{unique_name}/subscriptions", Some(r#"{"notificationUrl": "{receiver}"}"#), [Is(401), Is(401), Is(404), Is(404), Is(201), Is(201)]),
    row("delete", "/v1/flows/subscriptions/{id}", None, [Is(401), Is(401), Is(404), Is(404), Is(204), Is(204)]),
    row("get", "/v1/flows/events", None, [Is(401), Is(401), Hidden, Hidden, Seen, Seen]),
    row("get", "/v1/flows/events/{unique_name}/schema", None, [Is(401), Is(401), Is(404), Is(404), Is(200), Is(200)]),
    row("get", "/v1/flows/catalog", None, [Is(401), Is(401), Hidden, Hidden, Seen, Seen]),
    row("get", "/v1/flows/connector.json", None, [Is(401), Is(401), Hidden, Hidden, Seen, Seen]),
    // The Dataverse routes.
    row("post", "/api/data/v9.2/{unique_name}", Some(r#"{"OrderId": "o-3"}"#), [Is(401), Is(401), Is(404), Is(404), Is(204), Is(204)]),
    row("get", "/api/data/v9.2/asyncoperations", None, [Is(401), Is(401), Is(403), Hidden, Seen, Seen]),
    row("get", "/api/data/v9.2/{unique_name}", None, [Is(401), Is(401), Is(403), Is(404), Is(200), Is(200)]),
];

const FABRIKAM_CATALOG: &str = r#"
[[solutions]]
unique_name = "fabrikam"
publisher_prefix = "fabrikam"

[[categories]]
solution = "fabrikam"
name = "Orders"
events = ["fabrikam_OrderShipped"]

[[events]]
unique_name = "fabrikam_OrderShipped"
solution = "fabrikam"
binding = "global"
allowed_steps = "async_only"
external = true

[[events.parameters]]
name = "OrderId"
type = "String"
required = true

[[categories]]
solution = "fabrikam"
name = "Data"

# A table read from a database that is not there: its source stays down, and is listed.
[[tables]]
logical_name = "fabrikam_shipment"
solution = "fabrikam"
category = "Data"
primary_key = "fabrikam_shipmentid"
source = "fabrikam_db"

[[tables.columns]]
name = "fabrikam_shipmentid"
type = "Guid"
"#;

/// Fabrikam's resources, made by fabrikam's admin: an endpoint (with a signing secret) and
/// its subscription, an event whose delivery was dead-lettered, and a flow subscription.
struct Fabrikam {
    endpoint: String,
    secret: String,
    subscription: String,
    event: String,
    delivery: String,
    flow: String,
    plugin: String,
}

async fn call(
    app: &TestApp,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let method: Method = method.to_uppercase().parse().unwrap();
    let mut r = app.http.request(method, format!("{}{path}", app.url));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    match body {
        Some(COMPONENT_BODY) => {
            r = r.header("content-type", "application/wasm").body(
                crate::support::plugins::component(crate::support::plugins::TRIVIAL),
            );
        }
        Some(b) => {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        None => {}
    }
    let answer = r.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

async fn made(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, text) = call(
        app,
        Some(FABRIKAM_ADMIN),
        "post",
        path,
        Some(&body.to_string()),
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "making {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap()
}

impl Fabrikam {
    async fn make(app: &TestApp, receiver: &Receiver, n: u32) -> Fabrikam {
        let endpoint = made(
            app,
            "/v1/endpoints",
            json!({"name": format!("fabrikam-{n}"), "kind": "webhook", "url": receiver.url()}),
        )
        .await;
        let endpoint_id = endpoint["endpoint"]["id"].as_str().unwrap().to_owned();
        let subscription = made(
            app,
            "/v1/subscriptions",
            json!({"event": "fabrikam_OrderShipped", "endpoint": endpoint_id}),
        )
        .await;
        let event = made(
            app,
            "/v1/events/fabrikam_OrderShipped",
            json!({"OrderId": "o"}),
        )
        .await;
        let event_id = event["id"].as_str().unwrap().to_owned();
        // The receiver answers 400: the delivery is a dead letter at its first attempt.
        let delivery = wait_for(Duration::from_secs(20), "a dead letter", || async {
            let (_, text) = call(
                app,
                Some(FABRIKAM_ADMIN),
                "get",
                &format!("/v1/deliveries?event_id={event_id}&status=dead_lettered"),
                None,
            )
            .await;
            let list: Value = serde_json::from_str(&text).ok()?;
            list[0]["id"].as_str().map(str::to_owned)
        })
        .await;
        // Two secrets, so one can be retired.
        made(
            app,
            &format!("/v1/endpoints/{endpoint_id}/secrets"),
            json!({}),
        )
        .await;
        let flow = made(
            app,
            "/v1/flows/subscriptions",
            json!({"event": "fabrikam_OrderShipped", "notificationUrl": receiver.url()}),
        )
        .await;
        let plugin = format!("fabrikam-plugin-{n}");
        let (status, text) = call(
            app,
            Some(FABRIKAM_ADMIN),
            "post",
            &format!("/v1/plugins?name={plugin}&solution=fabrikam"),
            Some(COMPONENT_BODY),
        )
        .await;
        assert_eq!(status, 201, "pushing a plug-in: {text}");
        Fabrikam {
            plugin,
            secret: endpoint["endpoint"]["secrets"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            endpoint: endpoint_id,
            subscription: subscription["id"].as_str().unwrap().to_owned(),
            event: event_id,
            delivery,
            flow: flow["id"].as_str().unwrap().to_owned(),
        }
    }

    /// `path` with its parameters naming these resources.
    fn path(&self, method: &str, path: &str) -> String {
        let delivery_uuid = self.delivery.trim_start_matches("msg_");
        let named = match (method, path) {
            ("get", "/v1/events/{event}") => self.event.clone(),
            ("get", "/api/data/v9.2/{unique_name}") => {
                format!("asyncoperations({})", uuid_of(delivery_uuid))
            }
            _ => "fabrikam_OrderShipped".to_owned(),
        };
        let id = if path.starts_with("/v1/subscriptions") {
            &self.subscription
        } else if path.starts_with("/v1/deliveries") {
            &self.delivery
        } else if path.starts_with("/v1/flows/subscriptions") {
            &self.flow
        } else {
            &self.endpoint
        };
        // Lists are read whole, so the resource is on them when it is seen.
        let query = match (method, path) {
            ("post", "/v1/plugins") => "?solution=fabrikam&name=pushed-{unique}",
            (_, "/v1/deliveries") => "?limit=1000",
            (_, "/api/data/v9.2/asyncoperations") => "?$top=1000",
            _ => "",
        };
        let path = format!("{path}{query}");
        path.replace("{event}", &named)
            .replace("{unique_name}", &named)
            .replace("{id}", id)
            .replace("{secret_id}", &self.secret)
            .replace("{token}", "no-such-token")
            .replace(
                "{name}",
                if path.starts_with("/v1/sources") {
                    "fabrikam_db"
                } else {
                    &self.plugin
                },
            )
    }

    /// Removes what these resources deliver to, so the next ones' events fan out no wider.
    async fn remove(&self, app: &TestApp) {
        for path in [
            format!("/v1/flows/subscriptions/{}", self.flow),
            format!("/v1/endpoints/{}", self.endpoint),
        ] {
            call(app, Some(ADMIN_KEY), "delete", &path, None).await;
        }
    }

    /// What of fabrikam's a body may show.
    fn markers(&self) -> [&str; 7] {
        [
            "fabrikam",
            &self.endpoint,
            &self.subscription,
            &self.event,
            &self.delivery,
            &self.flow,
            &self.plugin,
        ]
    }
}

/// A delivery id's UUID in its hyphenated form (Dataverse's system job id).
fn uuid_of(id: &str) -> String {
    match uuid::Uuid::parse_str(id) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => id.to_owned(),
    }
}

/// Herald with the catalogs of `contoso` and `fabrikam` and the matrix's keys.
async fn two_solutions() -> (TestApp, tempfile::TempDir) {
    let catalog = tempfile::tempdir().unwrap();
    std::fs::write(
        catalog.path().join("contoso.toml"),
        include_str!("../../catalog/contoso.toml"),
    )
    .unwrap();
    std::fs::write(catalog.path().join("fabrikam.toml"), FABRIKAM_CATALOG).unwrap();
    let sha = |k: &str| hex::encode(herald::auth::hash(k));
    let app = TestApp::builder()
        .config(&format!(
            r#"
[catalog]
dir = "{dir}"

# Every row sends a wrong key: the matrix is not about their throttle (tests/it/edge.rs is).
[server]
wrong_keys_per_minute = 0

[[sources]]
name = "fabrikam_db"
kind = "postgres"
url = "postgres://herald@127.0.0.1:1/nowhere"
retry_min = "5s"

[[api_keys]]
name = "contoso-reader"
sha256 = "{reader}"
solutions = ["contoso"]

[[api_keys]]
name = "contoso-admin"
sha256 = "{contoso}"
solutions = ["contoso"]
admin = true

[[api_keys]]
name = "fabrikam-admin"
sha256 = "{fabrikam}"
solutions = ["fabrikam"]
admin = true
"#,
            dir = catalog.path().display(),
            reader = sha(READER),
            contoso = sha(CONTOSO_ADMIN),
            fabrikam = sha(FABRIKAM_ADMIN),
        ))
        .build()
        .await;
    (app, catalog)
}

#[tokio::test]
async fn every_operation_answers_each_caller_as_the_matrix_says() {
    let (app, _catalog) = two_solutions().await;
    let receiver = Receiver::start().await;
    receiver.answer(400);

    // Every operation of the document has a row, and every row an operation.
    let (_, doc) = call(&app, Some(ADMIN_KEY), "get", "/openapi.json", None).await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let rows: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let unlisted: Vec<_> = documented.difference(&rows).collect();
    assert!(
        unlisted.is_empty(),
        "operations without a row in the authorization matrix: {unlisted:?}"
    );
    let stale: Vec<_> = rows.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "rows of operations the document does not list: {stale:?}"
    );

    let shared = Fabrikam::make(&app, &receiver, 0).await;
    let mut made = 0;
    let mut wrong = Vec::new();
    for row in MATRIX {
        for (i, key) in CALLERS.iter().enumerate() {
            let want = row.want[i];
            // A change that is meant to succeed gets resources of its own, so the cells
            // after it find theirs as they were.
            let fresh = row.method != "get" && matches!(want, Is(200..=299) | Replayed(1..));
            let own = if fresh {
                made += 1;
                Some(Fabrikam::make(&app, &receiver, made).await)
            } else {
                None
            };
            let fabrikam = own.as_ref().unwrap_or(&shared);
            made += 1;
            let body = row.body.map(|b| {
                b.replace("{unique}", &format!("made-{made}"))
                    .replace("{receiver}", &receiver.url())
                    .replace("{endpoint}", &fabrikam.endpoint)
            });
            let path = fabrikam
                .path(row.method, row.path)
                .replace("{unique}", &format!("made-{made}"));
            let (status, text) = call(&app, *key, row.method, &path, body.as_deref()).await;
            let shows = fabrikam.markers().iter().any(|m| text.contains(m));
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(own) = &own {
                own.remove(&app).await;
            }
            let ok = match want {
                Is(code) => status == code,
                Hidden => status == 200 && !shows,
                Seen => status == 200 && shows,
                Item(code) => status == 200 && answer[0]["status"] == code,
                Replayed(n) => status == 200 && answer["replayed"] == n,
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {}: wanted {want:?}, got {status} {}",
                    row.method.to_uppercase(),
                    row.path,
                    CALLER_NAMES[i],
                    text.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells of the authorization matrix are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn an_endpoint_shared_by_two_solutions_is_seen_by_each_and_changed_only_by_a_key_of_both() {
    let (app, _catalog) = two_solutions().await;
    let receiver = Receiver::start().await;
    receiver.answer(400);
    let fabrikam = Fabrikam::make(&app, &receiver, 1).await;
    let as_key = |key: &'static str, method: &'static str, path: String, body: Option<Value>| {
        let app = &app;
        async move {
            let body = body.map(|b| b.to_string());
            call(app, Some(key), method, &path, body.as_deref()).await.0
        }
    };
    let endpoint = format!("/v1/endpoints/{}", fabrikam.endpoint);
    // Contoso's admin cannot tie its events to fabrikam's endpoint, nor subscribe Herald's
    // operational events of every solution.
    let subscribe = |event: &str, endpoint: &str| json!({"event": event, "endpoint": endpoint});
    assert_eq!(
        as_key(
            CONTOSO_ADMIN,
            "post",
            "/v1/subscriptions".into(),
            Some(subscribe("contoso_CustomerPurchase", &fabrikam.endpoint))
        )
        .await,
        400
    );
    assert_eq!(as_key(CONTOSO_ADMIN, "post", "/v1/subscriptions".into(), Some(json!({"category": "Operations", "solution": "herald", "endpoint": fabrikam.endpoint}))).await, 400);
    // The admin of every solution ties a contoso event to it: now both see it, neither
    // alone may change it.
    assert_eq!(
        as_key(
            ADMIN_KEY,
            "post",
            "/v1/subscriptions".into(),
            Some(subscribe("contoso_CustomerPurchase", &fabrikam.endpoint))
        )
        .await,
        201
    );
    for key in [CONTOSO_ADMIN, FABRIKAM_ADMIN] {
        assert_eq!(as_key(key, "get", endpoint.clone(), None).await, 200);
        let put = json!({"name": "taken-over", "kind": "webhook", "url": receiver.url()});
        assert_eq!(as_key(key, "put", endpoint.clone(), Some(put)).await, 403);
        assert_eq!(
            as_key(key, "post", format!("{endpoint}/disable"), Some(json!({}))).await,
            403
        );
        assert_eq!(
            as_key(key, "post", format!("{endpoint}/secrets"), Some(json!({}))).await,
            403
        );
        assert_eq!(as_key(key, "delete", endpoint.clone(), None).await, 403);
    }
    // Each sees its own subscription to it, not the other's.
    let (_, list) = call(&app, Some(CONTOSO_ADMIN), "get", "/v1/subscriptions", None).await;
    assert!(!list.contains(&fabrikam.subscription) && list.contains("contoso_CustomerPurchase"));
    assert_eq!(
        as_key(ADMIN_KEY, "delete", endpoint.clone(), None).await,
        204
    );
}
