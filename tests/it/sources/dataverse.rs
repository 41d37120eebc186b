//! A Dataverse environment as a source: what its webhook service endpoint posts, shaped as
//! Microsoft documents it (the `RemoteExecutionContext` of a Create, an Update with images, a
//! Delete, a custom API message), becomes the matching cataloged event; a wrong key is
//! refused; and Herald's own Dataverse-format deliveries read back as the events they were.

use serde_json::{json, Value};

use super::CATALOG;
use crate::support::{wait_for, Receiver, TestApp};

const KEY: &str = "dv-key-6b1f0c0a9e4d4f3a";
const CONTRACTS: &str = "http://schemas.microsoft.com/xrm/2011/Contracts";

/// Herald with the shop's catalog (its table read from no database) and Dataverse source `crm`.
pub async fn with_crm(extra: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.toml"),
        CATALOG.replace("source = \"app\"\n", ""),
    )
    .unwrap();
    let app = TestApp::builder()
        .config(&format!(
            r#"
[catalog]
dir = "{}"

[[sources]]
name = "crm"
kind = "dataverse"
solution = "contoso"
auth = {{ type = "webhook_key", key = "{KEY}" }}
{extra}
"#,
            dir.path().display()
        ))
        .build()
        .await;
    (app, dir)
}

fn entity(id: &str, attributes: Value) -> Value {
    json!({
        "__type": format!("Entity:{CONTRACTS}"),
        "Attributes": attributes,
        "EntityState": null,
        "FormattedValues": [],
        "Id": id,
        "KeyAttributes": [],
        "LogicalName": "contoso_order",
        "RelatedEntities": [],
        "RowVersion": null,
    })
}

/// A context as Dataverse posts it for `message` on `contoso_order`.
fn context(
    message: &str,
    request: &str,
    id: &str,
    inputs: Value,
    pre: Value,
    post: Value,
) -> Value {
    json!({
        "BusinessUnitId": "174df04e-3468-e611-80e0-c4346bb5980c",
        "CorrelationId": "7b0c3b09-b304-4388-b945-1d5248562f40",
        "Depth": 1,
        "InitiatingUserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "InitiatingUserId": "f5478924-a0fe-461c-ab4f-f2380ada9227",
        "InputParameters": inputs,
        "IsExecutingOffline": false,
        "IsInTransaction": false,
        "IsOfflinePlayback": false,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": "/Date(1796637600000)/",
        "OperationId": uuid::Uuid::new_v4().to_string(),
        "OrganizationId": "c2a6b6f1-2f0b-4e0e-9d2a-1f6f6d0c0e11",
        "OrganizationName": "contoso",
        "OutputParameters": [],
        "OwningExtension": {"Id": "e1f0c0a9-0000-0000-0000-000000000001", "KeyAttributes": [], "LogicalName": "sdkmessageprocessingstep", "Name": "order step", "RowVersion": null},
        "ParentContext": null,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "PrimaryEntityId": id,
        "PrimaryEntityName": if message.starts_with("contoso_") { "none" } else { "contoso_order" },
        "RequestId": request,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": 40,
        "UserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "UserId": "f5478924-a0fe-461c-ab4f-f2380ada9227",
    })
}

async fn post(app: &TestApp, query: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/v1/sources/crm/events{query}", app.url))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn dataverse_posts_become_their_cataloged_events_and_a_wrong_key_is_refused() {
    let (app, _dir) = with_crm("").await;
    let receiver = Receiver::start().await;
    let (_, ep) = app
        .post(
            "/v1/endpoints",
            &json!({"name": "hook", "kind": "webhook", "url": receiver.url()}),
        )
        .await;
    let ep = ep["endpoint"]["id"].as_str().unwrap().to_owned();
    for (event, row) in [
        (
            "contoso_order_Create",
            json!({"images": [{"kind": "post"}]}),
        ),
        (
            "contoso_order_Update",
            json!({"images": [{"kind": "pre"}, {"kind": "post"}]}),
        ),
        ("contoso_order_Delete", json!({"images": [{"kind": "pre"}]})),
        ("contoso_OrderNote", json!({})),
    ] {
        let (status, sub) = app
            .post(
                "/v1/subscriptions",
                &json!({"event": event, "endpoint": ep, "format": "params", "row": row}),
            )
            .await;
        assert_eq!(status, 201, "{sub}");
    }
    let id = "80a2c641-4c79-e611-80df-c4346baca9e4";
    let created = entity(
        id,
        json!([
            {"key": "contoso_orderid", "value": id},
            {"key": "contoso_status", "value": "new"},
            {"key": "contoso_total", "value": {"__type": format!("Money:{CONTRACTS}"), "Value": 42.5}},
            {"key": "contoso_placedon", "value": "/Date(1796637600000)/"},
            {"key": "ownerid", "value": {"__type": format!("EntityReference:{CONTRACTS}"), "Id": "f5478924-a0fe-461c-ab4f-f2380ada9227", "KeyAttributes": [], "LogicalName": "systemuser", "Name": null, "RowVersion": null}},
        ]),
    );
    let create = context(
        "Create",
        "11111111-1111-4111-8111-111111111111",
        id,
        json!([{"key": "Target", "value": created}]),
        json!([]),
        json!([{"key": "AsynchronousStepPrimaryName", "value": created}]),
    );
    let before = entity(
        id,
        json!([{"key": "contoso_orderid", "value": id}, {"key": "contoso_status", "value": "new"}]),
    );
    let after = entity(
        id,
        json!([{"key": "contoso_orderid", "value": id}, {"key": "contoso_status", "value": "paid"}, {"key": "contoso_total", "value": {"__type": format!("Money:{CONTRACTS}"), "Value": 42.5}}]),
    );
    let update = context(
        "Update",
        "22222222-2222-4222-8222-222222222222",
        id,
        json!([{"key": "Target", "value": entity(id, json!([
            {"key": "contoso_status", "value": "paid"},
            {"key": "modifiedon", "value": "/Date(1796641200000)/"},
            {"key": "contoso_orderid", "value": id},
        ]))}]),
        json!([{"key": "PreImage", "value": before}]),
        json!([{"key": "PostImage", "value": after}]),
    );
    let delete = context(
        "Delete",
        "33333333-3333-4333-8333-333333333333",
        id,
        json!([{"key": "Target", "value": {"__type": format!("EntityReference:{CONTRACTS}"), "Id": id, "KeyAttributes": [], "LogicalName": "contoso_order", "Name": null, "RowVersion": null}}]),
        json!([{"key": "PreImage", "value": after}]),
        json!([]),
    );
    let note = context(
        "contoso_OrderNote",
        "44444444-4444-4444-8444-444444444444",
        "00000000-0000-0000-0000-000000000000",
        json!([{"key": "OrderId", "value": id}, {"key": "Note", "value": "gift wrap"}]),
        json!([]),
        json!([]),
    );

    // Refused: no key, a wrong one, another source's name; nothing is stored.
    for (query, body) in [("", &create), ("?code=wrong", &create), ("?code=", &create)] {
        let (status, answer) = post(&app, query, body).await;
        assert_eq!(status, 401, "{query}: {answer}");
    }
    let r = app
        .http
        .post(format!("{}/v1/sources/nope/events?code={KEY}", app.url))
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let long = context(
        "contoso_OrderNote",
        "55555555-5555-4555-8555-555555555555",
        "00000000-0000-0000-0000-000000000000",
        json!([{"key": "OrderId", "value": id}, {"key": "Note", "value": "far longer than twenty characters"}]),
        json!([]),
        json!([]),
    );
    let (status, answer) = post(&app, &format!("?code={KEY}"), &long).await;
    assert_eq!(
        (status, answer["error"]["details"][0]["parameter"].as_str()),
        (400, Some("Note")),
        "{answer}"
    );
    let (status, answer) = post(&app, &format!("?code={KEY}"), &json!({"hello": "world"})).await;
    assert_eq!(
        (status, answer["error"]["details"][0]["parameter"].as_str()),
        (400, Some("MessageName")),
        "{answer}"
    );

    let mut names = Vec::new();
    for body in [&create, &update, &delete, &note] {
        let (status, answer) = post(&app, &format!("?code={KEY}"), body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["replayed"], false);
        names.push(answer["event"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        names,
        [
            "contoso_order_Create",
            "contoso_order_Update",
            "contoso_order_Delete",
            "contoso_OrderNote"
        ]
    );
    // Dataverse retries a post it got no answer to: the same request is stored once.
    let (_, again) = post(&app, &format!("?code={KEY}"), &update).await;
    assert_eq!(again["replayed"], true);

    wait_for(
        std::time::Duration::from_secs(20),
        "four deliveries",
        || async { (receiver.count() >= 4).then_some(()) },
    )
    .await;
    let bodies: Vec<Value> = receiver.received().iter().map(|r| r.json()).collect();
    let find = |test: &dyn Fn(&Value) -> bool| bodies.iter().find(|b| test(b)).unwrap().clone();
    let c = find(&|b| b["postImage"].is_object() && b["preImage"].is_null());
    assert_eq!(
        c["target"],
        json!({"contoso_orderid": id, "contoso_status": "new", "contoso_total": 42.5, "contoso_placedon": "2026-12-07T10:00:00Z"})
    );
    let u = find(&|b| b["postImage"].is_object() && b["preImage"].is_object());
    assert_eq!(
        u["target"],
        json!({"contoso_status": "paid", "contoso_orderid": id}),
        "unexposed attributes stay out"
    );
    assert_eq!(
        u["preImage"],
        json!({"contoso_orderid": id, "contoso_status": "new"})
    );
    assert_eq!(u["postImage"]["contoso_status"], "paid");
    let d = find(&|b| b["preImage"].is_object() && b.get("postImage").is_none());
    assert_eq!(d["target"], json!({"contoso_orderid": id}));
    let n = find(&|b| b.get("Note").is_some());
    assert_eq!(n, json!({"OrderId": id, "Note": "gift wrap"}));
    let (_, view) = app.get("/v1/sources/crm").await;
    assert_eq!(
        (
            view["state"].as_str(),
            view["changes"].as_u64(),
            view["replayed"].as_u64()
        ),
        (Some("listening"), Some(4), Some(1)),
        "{view}"
    );
    app.stop().await;
}
