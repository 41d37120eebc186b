//! The command line: `serve`, `demo`, `catalog validate`, `config example`, `keys`,
//! `events send`, `deliveries …`, `plugin …`, `source …`, `webhook verify` and `webhook secret`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod plugin;
mod remote;
mod source;
mod store;

use remote::{deliveries, events, health, DeliveriesCommand, EventsCommand};

use crate::config::Config;
use crate::destinations::webhook::{verify, Secret, VerifyKey};

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
    /// Pushes, lists and removes plug-ins of a running Herald; writes a new one.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Sets up, seals and inspects sources (an application's PostgreSQL).
    Source {
        #[command(subcommand)]
        command: source::SourceCommand,
    },
    /// What the store holds and what pruning removed.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
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
    /// Prints a new key for endpoint settings at rest, as `ID:BASE64`. To rotate, add it after
    /// the current key in HERALD_ENCRYPTION_KEYS (comma-separated) on every instance, then
    /// move it first; drop the old key once every instance has restarted with it first.
    Encryption,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Tells whether a request is genuine; the body is read from standard input.
    Verify {
        /// The endpoint's secret, `whsec_…` (checks `v1` signatures), or its ed25519 public
        /// key `whpk_…` (checks `v1a`; `GET /v1/endpoints/{id}/public-keys` lists them).
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
        Command::Plugin { command } => plugin::run(command).await,
        Command::Store { command } => store::run(command).await,
        Command::Source { command } => match source::run(command).await {
            Ok(true) => Ok(()),
            // The SQL an owner must run is printed: not an error of Herald's, but not done.
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
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
            // The folder's own counts: Herald's built-in solution is in every catalog.
            let own = |solution: &str| solution != crate::model::OPERATIONAL_SOLUTION;
            let categories: Vec<_> = catalog
                .categories()
                .iter()
                .filter(|c| own(&c.solution))
                .collect();
            let events: usize = categories.iter().map(|c| c.events.len()).sum();
            println!(
                "{}: valid ({} solution(s), {} categor(y/ies), {} cataloged event(s); plus Herald's built-in solution `{}`)",
                dir.display(),
                catalog.solutions().iter().filter(|s| own(&s.unique_name)).count(),
                categories.len(),
                events,
                crate::model::OPERATIONAL_SOLUTION,
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
        KeysCommand::Encryption => println!("{}", crate::store::sealing::KeyRing::generate_line()),
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
    let key = match VerifyKey::parse(secret) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --secret: {e} (or a `whpk_` public key for v1a)");
            return ExitCode::from(2);
        }
    };
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("error: reading the body from standard input: {e}");
        return ExitCode::from(2);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let scheme = match &key {
        VerifyKey::Secret(s) if s.scheme() == crate::model::Scheme::V1 => "v1 (HMAC-SHA256)",
        _ => "v1a (ed25519)",
    };
    match verify(&key, id, timestamp, signature, &body, tolerance, now) {
        Ok(()) => {
            println!("valid: a {scheme} signature matches this key");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("invalid: {e}");
            ExitCode::FAILURE
        }
    }
}
