//! Sources: an application's PostgreSQL (a server the test starts itself, `wal_level =
//! logical`) read by logical replication. Row changes of a cataloged table arrive at webhooks
//! as the table's events, in the Dataverse format (message, `Target`, images) and in
//! CloudEvents; outbox rows become custom events; crashes of Herald and restarts of the
//! database lose nothing and store nothing twice.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

mod dataverse;
mod recovery;

use crate::support::postgres::SourceDb;
use crate::support::receiver::Received;
use crate::support::{wait_for, Receiver, TestApp};

/// The shop's catalog: the `contoso_order` table, read from source `app`.
pub const CATALOG: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[categories]]
solution = "contoso"
name = "Orders"
events = ["contoso_OrderNote"]

[[events]]
unique_name = "contoso_OrderNote"
solution = "contoso"
binding = "global"
allowed_steps = "async_only"
external = true

[[events.parameters]]
name = "OrderId"
type = "Guid"
required = true

[[events.parameters]]
name = "Note"
type = "String"
required = true
max_length = 20

[[tables]]
logical_name = "contoso_order"
solution = "contoso"
category = "Orders"
display_name = "Order"
primary_key = "contoso_orderid"
relation = "public.orders"
source = "app"

[[tables.columns]]
name = "contoso_orderid"
column = "id"
type = "Guid"

[[tables.columns]]
name = "contoso_status"
column = "status"
type = "String"

[[tables.columns]]
name = "contoso_total"
column = "total"
type = "Money"

[[tables.columns]]
name = "contoso_notes"
column = "notes"
type = "String"

[[tables.columns]]
name = "contoso_placedon"
column = "placed_on"
type = "DateTime"

# Not in the database until a test adds it while Herald streams.
[[tables.columns]]
name = "contoso_priority"
column = "priority"
type = "Integer"
"#;

/// The application's schema: orders (full replica identity: pre-images) and an outbox.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL, total numeric(12,2), notes text, placed_on timestamptz, internal text)",
    "CREATE TABLE outbox (id bigserial PRIMARY KEY, event_name text NOT NULL, params jsonb NOT NULL, correlation text)",
];

/// The configuration of Herald and of `herald source setup`: the catalog folder and source
/// `app` at `db`.
pub fn write_config(dir: &Path, db: &SourceDb, extra: &str) -> std::path::PathBuf {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(catalog.join("shop.toml"), CATALOG).unwrap();
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[catalog]
dir = "{catalog}"

[[sources]]
name = "app"
kind = "postgres"
url = "{url}"
retry_min = "100ms"
retry_max = "1s"

[[sources.outboxes]]
relation = "public.outbox"
solution = "contoso"
correlation_column = "correlation"
delete_stored = true
{extra}
"#,
            catalog = catalog.display(),
            url = db.url(),
        ),
    )
    .unwrap();
    config
}

/// Creates the schema and runs `herald source setup app --full-identity`; its output.
pub async fn set_up(db: &SourceDb, config: &Path) -> String {
    let pool = db.pool().await;
    for sql in SCHEMA {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["source", "setup", "app", "--full-identity", "--config"])
        .arg(config)
        .env("HERALD_ENCRYPTION_KEYS", crate::support::ENCRYPTION_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "setup: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

async fn endpoint(app: &TestApp, name: &str, receiver: &Receiver) -> String {
    let (status, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": name, "kind": "webhook", "url": receiver.url()}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    ep["endpoint"]["id"].as_str().unwrap().to_owned()
}

async fn subscribe(app: &TestApp, body: Value) {
    let (status, sub) = app.post("/v1/subscriptions", &body).await;
    assert_eq!(status, 201, "{body}: {sub}");
}

/// The value of `key` in a Dataverse `[{"key", "value"}]` list.
fn pair<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i["key"] == key))
        .map(|i| &i["value"])
        .unwrap_or(&Value::Null)
}

fn by_message<'a>(received: &'a [Received], message: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["MessageName"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_changes_arrive_with_their_message_target_and_images_in_both_formats() {
    let db = SourceDb::start();
    let dir = tempfile::tempdir().unwrap();
    // A Dataverse source too: Herald's own Dataverse-format deliveries read back through it.
    let config = write_config(
        dir.path(),
        &db,
        r#"
[[sources]]
name = "crm"
kind = "dataverse"
solution = "contoso"
auth = { type = "http_header", name = "x-crm-key", value = "crm-key-1f0e" }
"#,
    );
    let setup = set_up(&db, &config).await;
    assert!(setup.contains("slot herald_app created"), "{setup}");
    assert!(
        setup.contains("public.orders: replica identity set to FULL"),
        "{setup}"
    );
    let app = TestApp::builder()
        .config(&std::fs::read_to_string(&config).unwrap())
        .build()
        .await;

    let (dataverse, cloudevents, with_images) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let dv = endpoint(&app, "dataverse", &dataverse).await;
    let ce = endpoint(&app, "cloudevents", &cloudevents).await;
    let img = endpoint(&app, "images", &with_images).await;
    subscribe(
        &app,
        json!({"event": "contoso_order_Create", "endpoint": dv, "format": "dataverse",
        "row": {"images": [{"kind": "post"}]}}),
    )
    .await;
    subscribe(&app, json!({"event": "contoso_order_Update", "endpoint": dv, "format": "dataverse",
        "row": {"filtering_attributes": ["contoso_status"],
                "images": [{"kind": "pre", "name": "Before", "attributes": ["contoso_status"]}, {"kind": "post"}]}})).await;
    subscribe(
        &app,
        json!({"event": "contoso_order_Delete", "endpoint": dv, "format": "dataverse",
        "row": {"images": [{"kind": "pre"}]}}),
    )
    .await;
    subscribe(&app, json!({"category": "Orders", "endpoint": ce})).await;
    subscribe(
        &app,
        json!({"event": "contoso_order_Update", "endpoint": img,
        "row": {"images": [{"kind": "pre"}, {"kind": "post"}]}}),
    )
    .await;
    // What the registration rules refuse, each naming its field.
    for (body, field) in [
        (
            json!({"event": "contoso_order_Create", "endpoint": dv, "row": {"images": [{"kind": "pre"}]}}),
            "row.images[0].kind",
        ),
        (
            json!({"event": "contoso_order_Delete", "endpoint": dv, "row": {"filtering_attributes": ["contoso_status"]}}),
            "row.filtering_attributes",
        ),
        (
            json!({"event": "contoso_order_Update", "endpoint": dv, "row": {"filtering_attributes": ["internal"]}}),
            "row.filtering_attributes[0]",
        ),
        (
            json!({"event": "contoso_OrderNote", "endpoint": dv, "row": {"images": [{"kind": "post"}]}}),
            "row",
        ),
    ] {
        let (status, answer) = app.post("/v1/subscriptions", &body).await;
        assert_eq!(
            (status, answer["error"]["details"][0]["parameter"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }

    let id = uuid::Uuid::new_v4().to_string();
    let (second, third) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let pool = db.pool().await;
    for sql in [
        format!("INSERT INTO orders VALUES ('{id}', 'new', 10.50, 'first', '2026-12-07 10:00:00+00', 'hidden')"),
        format!("UPDATE orders SET status = 'paid' WHERE id = '{id}'"),
        format!("UPDATE orders SET notes = 'changed' WHERE id = '{id}'"),
        format!("DELETE FROM orders WHERE id = '{id}'"),
        // One transaction, two rows: one correlation id.
        format!("BEGIN; INSERT INTO orders (id, status) VALUES ('{second}', 'new'); INSERT INTO orders (id, status) VALUES ('{third}', 'new'); COMMIT"),
    ] {
        sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
    }

    // Dataverse: Create, the Update of the status (not the one of the notes), Delete, and the
    // two creates of the last transaction.
    wait_for(
        Duration::from_secs(30),
        "5 Dataverse deliveries",
        || async { (dataverse.count() >= 5).then_some(()) },
    )
    .await;
    let got = dataverse.received();
    let create = by_message(&got, "Create")
        .into_iter()
        .find(|r| r.json()["PrimaryEntityId"] == id.as_str())
        .expect("the first row's Create");
    let c = create.json();
    assert_eq!(create.header("x-ms-dynamics-request-name"), "Create");
    assert_eq!(create.header("x-ms-dynamics-entity-name"), "contoso_order");
    assert_eq!(c["PrimaryEntityName"], "contoso_order");
    assert_eq!(c["Mode"], 1);
    assert_eq!(c["Stage"], 40);
    let target = pair(&c["InputParameters"], "Target");
    assert!(
        target["__type"].as_str().unwrap().starts_with("Entity:"),
        "{target}"
    );
    assert_eq!(target["LogicalName"], "contoso_order");
    assert_eq!(target["Id"], id.as_str());
    assert_eq!(pair(&target["Attributes"], "contoso_status"), "new");
    assert_eq!(pair(&target["Attributes"], "contoso_total")["Value"], 10.5);
    assert!(pair(&target["Attributes"], "contoso_total")["__type"]
        .as_str()
        .unwrap()
        .starts_with("Money:"));
    assert_eq!(
        pair(&target["Attributes"], "contoso_placedon"),
        "/Date(1796637600000)/"
    );
    assert_eq!(
        pair(&target["Attributes"], "internal"),
        &Value::Null,
        "an unexposed column stays out"
    );
    assert_eq!(c["PreEntityImages"], json!([]));
    let post = pair(&c["PostEntityImages"], "PostImage");
    assert_eq!(post["Id"], id.as_str());
    assert_eq!(pair(&post["Attributes"], "contoso_notes"), "first");

    let updates = by_message(&got, "Update");
    assert_eq!(
        updates.len(),
        1,
        "the notes' update changes no filtering attribute"
    );
    let u = updates[0].json();
    assert_eq!(u["PrimaryEntityId"], id.as_str());
    let target = pair(&u["InputParameters"], "Target");
    let keys: Vec<&str> = target["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["contoso_orderid", "contoso_status"],
        "Target holds the key and what changed"
    );
    assert_eq!(pair(&target["Attributes"], "contoso_status"), "paid");
    let before = pair(&u["PreEntityImages"], "Before");
    assert_eq!(
        before["Attributes"],
        json!([{"key": "contoso_status", "value": "new"}])
    );
    let after = pair(&u["PostEntityImages"], "PostImage");
    assert_eq!(pair(&after["Attributes"], "contoso_status"), "paid");
    assert_eq!(pair(&after["Attributes"], "contoso_notes"), "first");

    let delete = by_message(&got, "Delete");
    assert_eq!(delete.len(), 1);
    let d = delete[0].json();
    let target = pair(&d["InputParameters"], "Target");
    assert!(
        target["__type"]
            .as_str()
            .unwrap()
            .starts_with("EntityReference:"),
        "{target}"
    );
    assert_eq!(
        (target["Id"].as_str(), target["LogicalName"].as_str()),
        (Some(id.as_str()), Some("contoso_order"))
    );
    let before = pair(&d["PreEntityImages"], "PreImage");
    assert_eq!(pair(&before["Attributes"], "contoso_notes"), "changed");
    assert_eq!(d["PostEntityImages"], json!([]));

    // CloudEvents: every change, target in data; the transaction's two rows share a
    // correlation id, the others have their own.
    wait_for(
        Duration::from_secs(30),
        "6 CloudEvents deliveries",
        || async { (cloudevents.count() >= 6).then_some(()) },
    )
    .await;
    let events: Vec<Value> = cloudevents.received().iter().map(Received::json).collect();
    let mut types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "contoso_order_Create",
            "contoso_order_Create",
            "contoso_order_Create",
            "contoso_order_Delete",
            "contoso_order_Update",
            "contoso_order_Update"
        ]
    );
    let of = |row: &str| {
        events
            .iter()
            .find(|e| e["data"]["target"]["contoso_orderid"] == row)
            .unwrap()
    };
    assert_eq!(of(&second)["correlationid"], of(&third)["correlationid"]);
    let correlations: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["correlationid"].as_str().unwrap())
        .collect();
    assert_eq!(correlations.len(), 5, "one per source transaction");
    assert!(
        events.iter().all(|e| e["data"].get("preImage").is_none()),
        "no images registered"
    );
    assert_eq!(
        events
            .iter()
            .find(|e| e["type"] == "contoso_order_Delete")
            .unwrap()["data"]["target"],
        json!({"contoso_orderid": id})
    );

    // CloudEvents with images: both updates, each with its row before and after.
    wait_for(Duration::from_secs(30), "2 updates with images", || async {
        (with_images.count() >= 2).then_some(())
    })
    .await;
    let notes = with_images
        .received()
        .iter()
        .map(Received::json)
        .find(|e| e["data"]["target"].get("contoso_notes").is_some())
        .expect("the notes' update");
    assert_eq!(
        notes["data"]["target"],
        json!({"contoso_orderid": id, "contoso_notes": "changed"})
    );
    assert_eq!(notes["data"]["preImage"]["contoso_notes"], "first");
    assert_eq!(notes["data"]["postImage"]["contoso_notes"], "changed");
    assert_eq!(notes["data"]["postImage"]["contoso_status"], "paid");

    // The Dataverse-format deliveries read back, through the Dataverse route, as the events
    // they were: the same message, target and images.
    for delivered in [updates[0], delete[0]] {
        let context = delivered.json();
        let original = format!(
            "evt_{}",
            context["OperationId"].as_str().unwrap().replace('-', "")
        );
        let (_, first) = app.get(&format!("/v1/events/{original}")).await;
        let answer = app
            .http
            .post(format!("{}/v1/sources/crm/events", app.url))
            .header("x-crm-key", "crm-key-1f0e")
            .json(&context)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let taken: Value = answer.json().await.unwrap();
        let (_, again) = app
            .get(&format!("/v1/events/{}", taken["id"].as_str().unwrap()))
            .await;
        assert_eq!(again["name"], first["name"]);
        assert_eq!(
            again["params"], first["params"],
            "{first} read back as {again}"
        );
        assert_eq!(again["correlation_id"], first["correlation_id"]);
        // The images it carried are those the subscription registered (the pre-image with
        // its one attribute for the update).
        let registered = |image: &str| first["images"][image].clone();
        match first["name"].as_str().unwrap() {
            "contoso_order_Update" => {
                assert_eq!(again["images"]["pre"], json!({"contoso_status": "new"}));
                assert_eq!(again["images"]["post"], registered("post"));
                assert_eq!(again["images"]["changed"], first["images"]["changed"]);
            }
            _ => assert_eq!(again["images"]["pre"], registered("pre")),
        }
    }

    // The source says where it is.
    let (_, sources) = app.get("/v1/sources/app").await;
    let sources = json!([sources]);
    assert_eq!(sources[0]["name"], "app");
    assert_eq!(sources[0]["state"], "streaming");
    assert!(sources[0]["changes"].as_u64().unwrap() >= 6, "{sources}");
    assert!(sources[0]["position"].is_string(), "{sources}");
    assert!(
        !sources.to_string().contains("postgres@"),
        "no URL is shown: {sources}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_become_events_invalid_ones_are_recorded_and_columns_added_while_streaming_arrive(
) {
    let db = SourceDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, "");
    set_up(&db, &config).await;
    // The URL sealed for the configuration file (`herald source seal`), as an operator keeps it.
    let mut seal = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["source", "seal", "--config"])
        .arg(&config)
        .env("HERALD_ENCRYPTION_KEYS", crate::support::ENCRYPTION_KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut seal.stdin.take().unwrap(), db.url().as_bytes()).unwrap();
    let sealed = seal.wait_with_output().unwrap();
    assert!(sealed.status.success());
    let sealed = String::from_utf8(sealed.stdout).unwrap().trim().to_owned();
    assert!(
        sealed.starts_with("sealed:v1:") && !sealed.contains("postgres"),
        "{sealed}"
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&db.url(), &sealed);
    let app = TestApp::builder().config(&text).build().await;
    let (notes, refused, orders) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let ep = endpoint(&app, "notes", &notes).await;
    subscribe(
        &app,
        json!({"event": "contoso_OrderNote", "endpoint": ep, "format": "params"}),
    )
    .await;
    let ep = endpoint(&app, "refused", &refused).await;
    subscribe(
        &app,
        json!({"event": "herald_SourceRowRefused", "endpoint": ep, "format": "params"}),
    )
    .await;
    let ep = endpoint(&app, "orders", &orders).await;
    subscribe(
        &app,
        json!({"event": "contoso_order_Create", "endpoint": ep, "format": "params"}),
    )
    .await;

    let pool = db.pool().await;
    let order = uuid::Uuid::new_v4().to_string();
    // The order and its event in one transaction; then a row no event could be.
    sqlx::raw_sql(&format!(
        "BEGIN;
         INSERT INTO orders (id, status) VALUES ('{order}', 'new');
         INSERT INTO outbox (event_name, params, correlation) VALUES ('contoso_OrderNote', '{{\"OrderId\": \"{order}\", \"Note\": \"gift wrap\"}}', 'checkout-7');
         COMMIT;
         INSERT INTO outbox (event_name, params) VALUES ('contoso_OrderNote', '{{\"OrderId\": \"{order}\", \"Note\": \"far longer than twenty characters\"}}');
         INSERT INTO outbox (event_name, params, correlation) VALUES ('herald_EndpointDisabled', '{{}}', '');"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let note = wait_for(
        Duration::from_secs(30),
        "the outbox row's event",
        || async { notes.received().first().cloned() },
    )
    .await;
    assert_eq!(note.json(), json!({"OrderId": order, "Note": "gift wrap"}));
    wait_for(
        Duration::from_secs(30),
        "the refused rows, recorded",
        || async { (refused.count() >= 2).then_some(()) },
    )
    .await;
    let refusals: Vec<Value> = refused.received().iter().map(Received::json).collect();
    // An outbox speaks for its own solution only (and a bad correlation id does not stop
    // the refusal from being recorded).
    let other = refusals
        .iter()
        .find(|r| r["EventName"] == "herald_EndpointDisabled")
        .unwrap();
    assert!(
        other["Reason"]
            .as_str()
            .unwrap()
            .contains("belongs to solution \"herald\""),
        "{other}"
    );
    let refusal = refusals
        .iter()
        .find(|r| r["EventName"] == "contoso_OrderNote")
        .unwrap()
        .clone();
    assert_eq!(refusal["SourceName"], "app");
    assert_eq!(refusal["EventName"], "contoso_OrderNote");
    let reason = refusal["Reason"].as_str().unwrap();
    assert!(reason.contains("Note") && reason.contains("20"), "{reason}");
    assert!(
        refusal["Parameters"]
            .as_str()
            .unwrap()
            .contains("far longer"),
        "{refusal}"
    );
    assert!(
        refusal["Position"]
            .as_str()
            .unwrap()
            .starts_with("pg:app:herald_app:"),
        "{refusal}"
    );
    assert_eq!(notes.count(), 1, "the refused row made no event");
    // Both rows are gone from the outbox once stored (the refused one is recorded).
    wait_for(Duration::from_secs(30), "an empty outbox", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;

    // A column added while Herald streams: rows before it lack it, rows after carry it.
    sqlx::raw_sql(&format!(
        "ALTER TABLE orders ADD COLUMN priority int;
         INSERT INTO orders (id, status, priority) VALUES ('{}', 'new', 3);",
        uuid::Uuid::new_v4()
    ))
    .execute(&pool)
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), "both creates", || async {
        (orders.count() >= 2).then_some(())
    })
    .await;
    let creates: Vec<Value> = orders
        .received()
        .iter()
        .map(|r| r.json()["target"].clone())
        .collect();
    let first = creates
        .iter()
        .find(|t| t["contoso_orderid"] == order.as_str())
        .unwrap();
    assert!(first.get("contoso_priority").is_none(), "{first}");
    let second = creates
        .iter()
        .find(|t| t["contoso_orderid"] != order.as_str())
        .unwrap();
    assert_eq!(second["contoso_priority"], 3);
    let (_, sources) = app.get("/v1/sources/app").await;
    assert_eq!(sources["refused"], 2, "{sources}");
    // The command line asks the running Herald.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["source", "status", "app", "--url", &app.url])
        .env("HERALD_API_KEY", crate::support::ADMIN_KEY)
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (printed["name"].as_str(), printed["state"].as_str()),
        (Some("app"), Some("streaming"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_without_the_rights_prints_the_sql_an_owner_runs() {
    let db = SourceDb::start();
    let pool = db.pool().await;
    for sql in SCHEMA {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    sqlx::query("CREATE ROLE clerk LOGIN")
        .execute(&pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("postgres://postgres@", "postgres://clerk@");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["source", "setup", "app", "--config"])
        .arg(&config)
        .env("HERALD_ENCRYPTION_KEYS", crate::support::ENCRYPTION_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run this as a database owner"), "{stderr}");
    assert!(
        stderr.contains(
            r#"CREATE PUBLICATION "herald_app" FOR TABLE "public"."orders", "public"."outbox";"#
        ),
        "{stderr}"
    );
    // Nothing was made.
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(slots, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_value_an_update_leaves_alone_is_in_the_images_but_not_the_target() {
    let db = SourceDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, "");
    set_up(&db, &config).await;
    let app = TestApp::builder()
        .config(&std::fs::read_to_string(&config).unwrap())
        .build()
        .await;
    let receiver = Receiver::start().await;
    let ep = endpoint(&app, "hook", &receiver).await;
    subscribe(
        &app,
        json!({"event": "contoso_order_Update", "endpoint": ep, "format": "params",
            "row": {"images": [{"kind": "pre"}, {"kind": "post"}]}}),
    )
    .await;
    let pool = db.pool().await;
    let id = uuid::Uuid::new_v4();
    // About 64 KB of text that does not compress: PostgreSQL keeps it out of line (TOAST),
    // and an update that leaves it alone does not send it again.
    sqlx::raw_sql(&format!(
        "INSERT INTO orders (id, status, notes)
           SELECT '{id}', 'new', string_agg(md5(i::text || random()::text), '') FROM generate_series(1, 2000) AS i;
         UPDATE orders SET status = 'paid' WHERE id = '{id}';"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let notes: String = sqlx::query_scalar("SELECT notes FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    let update = wait_for(Duration::from_secs(30), "the update", || async {
        receiver.received().first().map(Received::json)
    })
    .await;
    assert_eq!(
        update["target"],
        json!({"contoso_orderid": id.to_string(), "contoso_status": "paid"})
    );
    assert_eq!(
        update["postImage"]["contoso_notes"].as_str(),
        Some(notes.as_str())
    );
    assert_eq!(
        update["preImage"]["contoso_notes"].as_str(),
        Some(notes.as_str())
    );
    assert_eq!(update["preImage"]["contoso_status"], "new");
    app.stop().await;
}
