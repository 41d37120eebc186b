//! The command line: `serve`, `demo`, `catalog validate`, `config example`, `keys`,
//! `events send`, `deliveries …`, `webhook verify` and `webhook secret`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::destinations::webhook::{verify, Secret};

/// Herald: cataloged business events delivered to Azure Service Bus, Event Hubs and signed webhooks.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service.
    Serve {
        /// Configuration file (TOML); HERALD_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Runs Herald on embedded defaults with the demo catalog and a built-in webhook receiver.
    Demo(crate::demo::DemoArgs),
    /// Works with catalogs.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Prints the commented example configuration (every default).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Makes API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Asks a running Herald whether it is ready (`GET /readyz`); exits non-zero if not. Used
    /// by the container image's HEALTHCHECK.
    Health {
        /// Herald's base URL.
        #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Sends events to a running Herald.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Inspects and retries deliveries of a running Herald.
    Deliveries {
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Webhook signatures, for receivers.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Checks a catalog folder and prints every problem; exits non-zero if there is one.
    Validate {
        /// The folder of catalog TOML files.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the example configuration.
    Example,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Prints a new random API key and its SHA-256 (put only the hash in the configuration).
    Generate,
    /// Prints the SHA-256 of a key (read from standard input when not given).
    Hash {
        /// The key.
        key: Option<String>,
    },
}

/// Where a running Herald is and how to authenticate.
#[derive(Debug, Args)]
struct Remote {
    /// Herald's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Sends one event.
    Send {
        #[command(flatten)]
        remote: Remote,
        /// The event's unique name.
        name: String,
        /// Its parameters as a JSON object (read from standard input when not given).
        #[arg(long)]
        data: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Shows an event with its deliveries.
    Get {
        #[command(flatten)]
        remote: Remote,
        /// The event id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// Lists deliveries.
    List {
        #[command(flatten)]
        remote: Remote,
        /// pending, in_flight, succeeded, dead_lettered or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only deliveries to this endpoint id.
        #[arg(long)]
        endpoint: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Shows one delivery with its attempts.
    Get {
        #[command(flatten)]
        remote: Remote,
        /// The delivery id.
        id: String,
    },
    /// Sends a dead-lettered delivery again.
    Retry {
        #[command(flatten)]
        remote: Remote,
        /// The delivery id.
        id: String,
    },
    /// Replays dead letters.
    Replay {
        #[command(flatten)]
        remote: Remote,
        /// Only to this endpoint id.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only of this event name.
        #[arg(long)]
        event: Option<String>,
        /// Only events accepted at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only events accepted before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Tells whether a request is genuine; the body is read from standard input.
    Verify {
        /// The endpoint's secret, whsec_….
        #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The webhook-id header.
        #[arg(long)]
        id: String,
        /// The webhook-timestamp header.
        #[arg(long)]
        timestamp: String,
        /// The webhook-signature header.
        #[arg(long)]
        signature: String,
        /// Largest accepted distance between the timestamp and now.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        tolerance: Duration,
    },
    /// Prints a new signing secret.
    Secret,
}

/// Runs a command; the exit code says how it went.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Catalog {
            command: CatalogCommand::Validate { dir },
        } => return validate(&dir),
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", crate::config::EXAMPLE);
            Ok(())
        }
        Command::Keys { command } => keys(command),
        Command::Events { command } => events(command).await,
        Command::Health { url } => health(&url).await,
        Command::Deliveries { command } => deliveries(command).await,
        Command::Webhook {
            command: WebhookCommand::Secret,
        } => {
            println!("{}", Secret::generate().expose());
            Ok(())
        }
        Command::Webhook {
            command:
                WebhookCommand::Verify {
                    secret,
                    id,
                    timestamp,
                    signature,
                    tolerance,
                },
        } => return webhook_verify(&secret, &id, &timestamp, &signature, tolerance),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    crate::telemetry::init_logs("info,herald=info");
    let config = Config::load(config.as_deref(), Config::env())?;
    let catalog = crate::server::load_catalog(&config)?;
    let running = crate::server::start(config, catalog, None).await?;
    // On standard output, for scripts and supervisors that started Herald on port 0.
    println!("listening on http://{}", running.addr);
    let stop = running.shutdown_token();
    tokio::select! {
        _ = crate::server::shutdown_signal() => tracing::info!("shutting down"),
        _ = stop.cancelled() => {}
    }
    running.stop().await;
    Ok(())
}

fn validate(dir: &std::path::Path) -> ExitCode {
    match crate::catalog::load_dir(dir) {
        Ok(catalog) => {
            let events: usize = catalog.categories().iter().map(|c| c.events.len()).sum();
            println!(
                "{}: valid ({} solution(s), {} categor(y/ies), {} cataloged event(s))",
                dir.display(),
                catalog.solutions().len(),
                catalog.categories().len(),
                events
            );
            ExitCode::SUCCESS
        }
        Err(crate::catalog::CatalogError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found in {}", problems.len(), dir.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => {
            let key = crate::auth::generate_key();
            println!("key:    {key}");
            println!("sha256: {}", hex::encode(crate::auth::hash(&key)));
        }
        KeysCommand::Hash { key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s.trim().to_owned()
                }
            };
            println!("{}", hex::encode(crate::auth::hash(&key)));
        }
    }
    Ok(())
}

fn webhook_verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    tolerance: Duration,
) -> ExitCode {
    let secret = match Secret::parse(secret) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --secret: {e}");
            return ExitCode::from(2);
        }
    };
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("error: reading the body from standard input: {e}");
        return ExitCode::from(2);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match verify(&secret, id, timestamp, signature, &body, tolerance, now) {
        Ok(()) => {
            println!("valid: the request was signed with this secret");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("invalid: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn call(
    remote: &Remote,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(&remote.api_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach Herald at {url}; is it running? (--url)"))?;
    print_response(response).await
}

async fn print_response(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let text = response.text().await?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    println!("{pretty}");
    if status.is_success() {
        Ok(())
    } else {
        anyhow::bail!("Herald answered {status}")
    }
}

async fn events(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Send {
            remote,
            name,
            data,
            idempotency_key,
        } => {
            let data = match data {
                Some(d) => d,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let body: serde_json::Value =
                serde_json::from_str(&data).context("--data must be a JSON object")?;
            let url = format!("{}/v1/events/{name}", remote.url.trim_end_matches('/'));
            let mut request = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&remote.api_key)
                .json(&body);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach Herald at {url}; is it running? (--url)"))?;
            print_response(response).await
        }
        EventsCommand::Get { remote, id } => {
            call(
                &remote,
                reqwest::Method::GET,
                &format!("/v1/events/{id}"),
                None,
            )
            .await
        }
    }
}

async fn deliveries(command: DeliveriesCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    match command {
        DeliveriesCommand::List {
            remote,
            status,
            endpoint,
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            if let Some(s) = status {
                query.push_str(&format!("&status={s}"));
            }
            if let Some(e) = endpoint {
                query.push_str(&format!("&endpoint_id={e}"));
            }
            call(
                &remote,
                Method::GET,
                &format!("/v1/deliveries{query}"),
                None,
            )
            .await
        }
        DeliveriesCommand::Get { remote, id } => {
            call(&remote, Method::GET, &format!("/v1/deliveries/{id}"), None).await
        }
        DeliveriesCommand::Retry { remote, id } => {
            call(
                &remote,
                Method::POST,
                &format!("/v1/deliveries/{id}/retry"),
                None,
            )
            .await
        }
        DeliveriesCommand::Replay {
            remote,
            endpoint,
            event,
            from,
            to,
        } => {
            let body = serde_json::json!({"endpoint_id": endpoint, "event": event, "from": from, "to": to});
            call(&remote, Method::POST, "/v1/dead-letters/replay", Some(body)).await
        }
    }
}

/// `herald health`: `GET /readyz` of a running Herald.
async fn health(url: &str) -> anyhow::Result<()> {
    let answer = reqwest::Client::new()
        .get(format!("{}/readyz", url.trim_end_matches('/')))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("cannot reach Herald at {url}"))?;
    anyhow::ensure!(
        answer.status().is_success(),
        "Herald at {url} is not ready: {}",
        answer.status()
    );
    println!("ready");
    Ok(())
}
