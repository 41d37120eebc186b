//! `herald demo`: Herald on embedded defaults (SQLite in a data folder, the demo catalog),
//! the local emulator in-process (Service Bus queue and topic, an event hub), a built-in
//! webhook receiver that verifies every signature, and subscriptions of both demo events to
//! all four, so a first `curl` shows the whole path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;

use crate::config::Config;
use crate::destinations::azure::eventhubs::EventHubsInput;
use crate::destinations::azure::servicebus::ServiceBusInput;
use crate::destinations::kinds::DestinationInput;
use crate::destinations::webhook::{verify, Secret, VerifyKey, WebhookInput};
use crate::registry::{EndpointInput, SubscriptionInput};

/// Options of `herald demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder for the SQLite store, the emulator's messages and the demo's key and secret.
    #[arg(long, default_value = "herald-data")]
    data_dir: PathBuf,
    /// AMQP port of the local emulator; when it is taken (say, by RabbitMQ), a free one is used.
    #[arg(long, default_value_t = 5672)]
    emulator_port: u16,
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

    let sink_addr = start_receiver(&secret).await?;
    let emulator = start_emulator(&args).await?;
    let conn = emulator.connection_string();

    let mut config = Config::load(None, Config::env())?;
    config.server.listen = args.listen;
    config.store.url = crate::store::StoreUrl::Sqlite(args.data_dir.join("herald.db"));
    config.api_key = Some(api_key.clone());
    // The demo's receiver runs on this machine.
    config.webhooks.allow_networks = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
    declare(&mut config, sink_addr, secret, &conn);
    let keys = if config.encryption_keys.0.is_empty() {
        crate::store::sealing::key_file(&args.data_dir.join("herald.db"))
            .display()
            .to_string()
    } else {
        "encryption_keys (HERALD_ENCRYPTION_KEYS)".to_owned()
    };
    let catalog = crate::server::load_catalog(&config)?;
    let running = crate::server::start(config, catalog, None).await?;
    let url = format!("http://{}", running.addr);
    // A one-time link that signs the demo's full-access key in to the console.
    let link = crate::api::console::sign_in_link(
        running.state.store.as_ref(),
        crate::auth::hash(&api_key),
    )
    .await?;
    let console = format!("{url}/console/sign-in/{link}");
    print_instructions(
        &url,
        &console,
        &api_key,
        &args,
        sink_addr,
        &conn,
        emulator.http_addr(),
        &keys,
    );
    crate::server::shutdown_signal().await;
    running.stop().await;
    emulator.shutdown().await;
    Ok(())
}

/// Starts the demo's webhook receiver on a free loopback port; returns its address.
async fn start_receiver(secret: &str) -> anyhow::Result<std::net::SocketAddr> {
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let sink_secret =
        Secret::parse(secret).context("the demo's saved webhook secret is damaged; delete it")?;
    tokio::spawn(async move {
        let app = axum::Router::new()
            .route("/webhook", axum::routing::post(receive))
            .with_state(sink_secret);
        let _ = axum::serve(sink, app).await;
    });
    Ok(sink_addr)
}

/// The demo's endpoints (its receiver, a queue, a topic, an event hub) and a subscription of
/// both demo events to each.
fn declare(config: &mut Config, sink_addr: std::net::SocketAddr, secret: String, conn: &str) {
    config.endpoints.push(EndpointInput::new(
        "demo-receiver",
        DestinationInput::Webhook(WebhookInput {
            url: Some(format!("http://{sink_addr}/webhook")),
            secret: Some(secret),
            timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        }),
    ));
    for (name, entity) in [("demo-queue", QUEUE), ("demo-topic", TOPIC)] {
        config.endpoints.push(EndpointInput::new(
            name,
            DestinationInput::ServiceBus(ServiceBusInput {
                connection_string: Some(conn.to_owned()),
                entity: Some(entity.into()),
                ..Default::default()
            }),
        ));
    }
    config.endpoints.push(EndpointInput::new(
        "demo-hub",
        DestinationInput::EventHubs(EventHubsInput {
            connection_string: Some(conn.to_owned()),
            entity: Some(HUB.into()),
            ..Default::default()
        }),
    ));
    for (event, promoted) in [
        ("contoso_CustomerPurchase", ["Total", "Currency"]),
        ("contoso_VendorPaymentPosted", ["Amount", "VendorId"]),
    ] {
        for endpoint in ["demo-receiver", "demo-queue", "demo-topic", "demo-hub"] {
            let amqp = match endpoint {
                "demo-receiver" => Default::default(),
                _ => crate::model::AmqpOptions {
                    properties: promoted.iter().map(|p| p.to_string()).collect(),
                    ..Default::default()
                },
            };
            config.subscriptions.push(SubscriptionInput {
                name: Some(format!("{endpoint}-{event}")),
                event: Some(event.into()),
                category: None,
                solution: None,
                endpoint: endpoint.into(),
                format: Default::default(),
                filter: Default::default(),
                enabled: None,
                rank: None,
                mode: Default::default(),
                amqp,
                transform: None,
                stage: None,
                row: Default::default(),
            });
        }
    }
}

/// Prints where everything is and how to try it.
#[allow(clippy::too_many_arguments)]
fn print_instructions(
    url: &str,
    console: &str,
    api_key: &str,
    args: &DemoArgs,
    sink_addr: std::net::SocketAddr,
    conn: &str,
    emulator_http: std::net::SocketAddr,
    keys: &str,
) {
    println!(
        r#"
Herald demo is running.

  Console        {console}
                 (signs you in once, within ten minutes; then sign in with the API key)
  API            {url}   (OpenAPI: {url}/openapi.json, metrics: {url}/metrics)
  API key        {api_key}
  Store          {store}
  Secrets        endpoint secrets are encrypted in the store with the key in {keys}
  Webhook sink   http://{sink_addr}/webhook (verifies every signature and prints what it gets)
  Emulator       {conn}
                 Service Bus queue "{QUEUE}", topic "{TOPIC}" (subscription "all"), event hub "{HUB}"
                 look inside: curl -sS http://{emulator_http}/entities

Send a purchase:

  curl -sS -X POST {url}/v1/events/contoso_CustomerPurchase \
    -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \
    -d '{{"CustomerId":"6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10","Total":42.50,"Currency":"EUR","PurchasedOn":"2026-11-22T10:30:00Z","Items":["SKU-1","SKU-2"]}}'

Then see it and its deliveries:  curl -sS {url}/v1/events/<id> -H "Authorization: Bearer {api_key}"

Read the queue, the topic subscription and the event hub with the official Azure SDKs
(pip install azure-servicebus azure-eventhub):

python3 - <<'PY'
import threading
from azure.servicebus import ServiceBusClient
from azure.eventhub import EventHubConsumerClient
CONN = "{conn}"
with ServiceBusClient.from_connection_string(CONN) as sb:
    for name, receiver in [("queue", sb.get_queue_receiver("{QUEUE}", max_wait_time=3)),
                           ("topic", sb.get_subscription_receiver("{TOPIC}", "all", max_wait_time=3))]:
        with receiver:
            for m in receiver.receive_messages(max_message_count=20):
                print(name, m.subject, m.message_id, dict(m.application_properties), str(m))
                receiver.complete_message(m)
hub = EventHubConsumerClient.from_connection_string(CONN, consumer_group="$Default", eventhub_name="{HUB}")
def on_event(ctx, e):
    if e: print("hub", ctx.partition_id, e.message_id, e.body_as_str())
threading.Timer(5, hub.close).start()  # read for five seconds
hub.receive(on_event=on_event, starting_position="-1")
PY

Press Ctrl-C to stop.
"#,
        store = args.data_dir.join("herald.db").display(),
    );
}

/// The demo's Service Bus queue, topic and event hub (built into the emulator).
const QUEUE: &str = "herald-events";
const TOPIC: &str = "herald-topic";
const HUB: &str = "herald-hub";

/// Starts the local emulator in-process, keeping its messages in the data folder: on
/// `--emulator-port` (5672, like Microsoft's emulators), or on a free port when that is taken.
async fn start_emulator(args: &DemoArgs) -> anyhow::Result<local_emulator::RunningEmulator> {
    let builder = local_emulator::Emulator::builder()
        .amqp_port(args.emulator_port)
        .http_port(0)
        .data_dir(args.data_dir.join("emulator"));
    match builder.clone().start().await {
        Ok(e) => Ok(e),
        Err(local_emulator::StartError::PortInUse { port, .. }) if port == args.emulator_port => {
            let e = builder.amqp_port(0).start().await?;
            println!(
                "AMQP port {port} is taken (RabbitMQ?); the emulator listens on {} instead.",
                e.amqp_addr().port()
            );
            Ok(e)
        }
        Err(e) => Err(e.into()),
    }
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
        &VerifyKey::Secret(secret),
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
