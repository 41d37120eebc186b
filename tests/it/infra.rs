//! The configuration `infra/main.bicep` gives Herald on Azure is one Herald accepts: its
//! Service Bus and Event Hubs endpoints and subscriptions are created at start-up.

use crate::support::TestApp;

/// The TOML lines of `var heraldConfig = join([...], '\n')`, with every `${…}` replaced.
fn deployed_config() -> String {
    let bicep = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/main.bicep"))
        .expect("infra/main.bicep");
    let start = bicep
        .find("var heraldConfig = join([")
        .expect("the heraldConfig variable");
    let body = &bicep[start..];
    let end = body.find("], '\\n')").expect("the end of the join");
    body[..end]
        .lines()
        .skip(1)
        .map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix('\'')
                .and_then(|l| l.strip_suffix('\''))
                .unwrap_or(l);
            let mut out = String::new();
            let mut rest = l;
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let j = rest[i..].find('}').expect("closing brace") + i;
                out.push_str("deployed");
                rest = &rest[j + 1..];
            }
            out.push_str(rest);
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_configuration_infra_deploys_is_accepted_with_its_endpoints_and_subscriptions() {
    let toml = deployed_config();
    assert!(toml.contains("managed_identity"), "{toml}");
    let app = TestApp::builder().config(&toml).build().await;
    let (_, endpoints) = app.get("/v1/endpoints").await;
    let kinds: Vec<&str> = endpoints
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "service_bus").count(),
        2,
        "{endpoints}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "event_hubs").count(),
        1,
        "{endpoints}"
    );
    assert!(endpoints
        .to_string()
        .contains("\"type\":\"managed_identity\""));
    let (_, subs) = app.get("/v1/subscriptions").await;
    assert_eq!(subs.as_array().expect("subscriptions").len(), 4, "{subs}");
    app.stop().await;
}
