//! `herald demo`: Herald on embedded defaults (SQLite in a data folder, the demo catalog),
//! a built-in webhook receiver that verifies every signature, and subscriptions of both
//! demo events to it, so a first `curl` shows the whole path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;

use crate::api::model::{EndpointInput, EndpointKind, SubscriptionInput};
use crate::config::Config;
use crate::destinations::webhook::{verify, Secret};

/// Options of `herald demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder for the SQLite store and the demo's key and secret.
    #[arg(long, default_value = "herald-data")]
    data_dir: PathBuf,
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logs("warn,herald=info");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let api_key = match std::env::var("HERALD_API_KEY") {
        Ok(key) if !key.is_empty() => key,
        _ => remembered(
            &args.data_dir.join("demo-api-key"),
            crate::auth::generate_key,
        )?,
    };
    let secret = remembered(&args.data_dir.join("demo-webhook-secret"), || {
        Secret::generate().expose()
    })?;

    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let sink_secret =
        Secret::parse(&secret).context("the demo's saved webhook secret is damaged; delete it")?;
    tokio::spawn(async move {
        let app = axum::Router::new()
            .route("/webhook", axum::routing::post(receive))
            .with_state(sink_secret);
        let _ = axum::serve(sink, app).await;
    });

    let mut config = Config::load(None, Config::env())?;
    config.server.listen = args.listen;
    config.store.url = format!("sqlite://{}", args.data_dir.join("herald.db").display());
    config.api_key = Some(api_key.clone());
    // The demo's receiver runs on this machine.
    config.webhooks.allow_networks = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
    config.endpoints.push(EndpointInput {
        name: "demo-receiver".into(),
        kind: EndpointKind::Webhook,
        url: Some(format!("http://{sink_addr}/webhook")),
        secret: Some(secret),
        timeout: Some(Duration::from_secs(10)),
        max_concurrency: None,
        auth: None,
        ..Default::default()
    });
    for (name, event) in [
        ("demo-purchases", "contoso_CustomerPurchase"),
        ("demo-payments", "contoso_VendorPaymentPosted"),
    ] {
        config.subscriptions.push(SubscriptionInput {
            name: Some(name.into()),
            event: Some(event.into()),
            category: None,
            solution: None,
            endpoint: "demo-receiver".into(),
            format: Default::default(),
            filter: Default::default(),
            enabled: None,
            rank: None,
            mode: Default::default(),
            amqp: Default::default(),
            stage: None,
        });
    }
    let catalog = crate::server::load_catalog(&config)?;
    let running = crate::server::start(config, catalog, None).await?;
    let url = format!("http://{}", running.addr);
    println!(
        r#"
Herald demo is running.

  API            {url}   (OpenAPI: {url}/openapi.json, metrics: {url}/metrics)
  API key        {api_key}
  Store          {store}
  Webhook sink   http://{sink_addr}/webhook (verifies every signature and prints what it gets)

Send a purchase:

  curl -sS -X POST {url}/v1/events/contoso_CustomerPurchase \
    -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \
    -d '{{"CustomerId":"6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10","Total":42.50,"Currency":"EUR","PurchasedOn":"2026-11-22T10:30:00Z","Items":["SKU-1","SKU-2"]}}'

Then see it and its deliveries:  curl -sS {url}/v1/events/<id> -H "Authorization: Bearer {api_key}"
Press Ctrl-C to stop.
"#,
        store = args.data_dir.join("herald.db").display(),
    );
    crate::cli::shutdown_signal().await;
    running.stop().await;
    Ok(())
}

/// A value kept in a file of the data folder, made by `make` the first time.
fn remembered(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().to_owned());
    }
    let value = make();
    std::fs::write(path, &value).with_context(|| format!("writing {}", path.display()))?;
    Ok(value)
}

/// The demo's webhook receiver: verifies the signature as any receiver should, then prints.
async fn receive(State(secret): State<Secret>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verdict = verify(
        &secret,
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
        &body,
        Duration::from_secs(300),
        now,
    );
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match verdict {
        Ok(()) => {
            println!(
                "webhook received, signature valid: {} {} data={}",
                event["type"].as_str().unwrap_or("?"),
                get("webhook-id"),
                event["data"]
            );
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            println!("webhook refused: {e}");
            StatusCode::UNAUTHORIZED
        }
    }
}
