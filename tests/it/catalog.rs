//! Catalog as code: validation messages, the CLI, the catalog routes and JSON Schemas.

use std::process::Command;

use crate::support::{run_python, TestApp};

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

const BROKEN: &str = r#"
[[solutions]]
unique_name = "contoso"
publisher_prefix = "contoso"

[[solutions]]
unique_name = "contoso"
publisher_prefix = "other"

[[categories]]
solution = "contoso"
name = "Sales"
events = ["contoso_A", "contoso_A"]

[[events]]
unique_name = "contoso_A"
solution = "contoso"
allowed_steps = "sync_and_async"
external = true
response_properties = [{ name = "X", type = "String" }]

[[events]]
unique_name = "fabrikam_B"
solution = "contoso"
allowed_steps = "async_only"

[[events]]
unique_name = "contoso_C"
solution = "contoso"
allowed_steps = "async_only"
parameters = [{ name = "When", type = "Timestamp" }, { name = "Size", type = "String", precision = 2 }]

[[events]]
unique_name = "contoso_C"
solution = "contoso"
allowed_steps = "async_only"
"#;

#[test]
fn catalog_validate_reports_every_problem_with_file_event_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.toml"), BROKEN).unwrap();
    let out = herald()
        .args(["catalog", "validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "broken.toml: solution \"contoso\": field `unique_name`: duplicate solution name",
        "event \"contoso_A\": field `allowed_steps`: an external event already happened elsewhere, so it must be `async_only`",
        "event \"contoso_A\": field `response_properties`: an external event cannot have response properties",
        "event \"fabrikam_B\": field `unique_name`: must start with the solution prefix \"contoso_\"",
        "event \"contoso_C\": field `parameters[0].type`: unknown type \"Timestamp\"; expected one of: Boolean, DateTime",
        "event \"contoso_C\": field `parameters[1].precision`: `precision` only applies to Money and Decimal parameters",
        "event \"contoso_C\": field `unique_name`: duplicate event name",
        "category \"Sales\": field `events[1]`: event \"contoso_A\" is cataloged twice",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn catalog_validate_reports_toml_syntax_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[solutions]]\nunique_name = \n",
    )
    .unwrap();
    let out = herald()
        .args(["catalog", "validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_demo_catalog_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/catalog");
    let out = herald()
        .args(["catalog", "validate", dir])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("valid (1 solution(s), 2 categor(y/ies), 2 cataloged event(s); plus Herald's built-in solution `herald`)"));
}

#[tokio::test]
async fn the_catalog_lists_solutions_categories_and_events_with_schemas() {
    let app = TestApp::start().await;
    let (status, catalog) = app.get("/v1/catalog").await;
    assert_eq!(status, 200);
    let contoso = &catalog["solutions"][0];
    assert_eq!(contoso["unique_name"], "contoso");
    let categories: Vec<&str> = contoso["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["Sales", "Finance"]);
    assert_eq!(
        contoso["categories"][0]["events"][0]["unique_name"],
        "contoso_CustomerPurchase"
    );

    let (status, event) = app
        .get("/v1/catalog/events/contoso_VendorPaymentPosted")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        event["schema"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        event["schema"]["required"],
        serde_json::json!(["VendorId", "Amount", "PaymentReference", "PostedOn"])
    );
    let (status, _) = app.get("/v1/catalog/events/contoso_Nope").await;
    assert_eq!(status, 404);

    // The schema (the CloudEvents dataschema) needs a key, as the catalog that lists it does;
    // it is valid draft 2020-12, and it agrees with Herald's own validation on a valid and an
    // invalid payload (checked by the `jsonschema` Python package, written by others).
    let (status, _) = app
        .get_public("/v1/catalog/events/contoso_CustomerPurchase/schema")
        .await;
    assert_eq!(status, 401);
    let (status, schema) = app
        .get("/v1/catalog/events/contoso_CustomerPurchase/schema")
        .await;
    assert_eq!(status, 200);
    let input = serde_json::json!({
        "schema": schema,
        "valid": [crate::support::purchase(12.5)],
        "invalid": [{"CustomerId": "x", "Total": 1, "PurchasedOn": "2026-11-22T10:30:00Z"}, {"Total": 1}],
    });
    run_python("check_schema.py", &input);
    app.stop().await;
}
