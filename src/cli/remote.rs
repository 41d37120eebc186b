//! The commands that talk to a running Herald over its HTTP API: `events send|get`,
//! `deliveries …` and `health`.

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};

/// Where a running Herald is and how to authenticate.
#[derive(Debug, Args)]
pub struct Remote {
    /// Herald's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: String,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
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
pub enum DeliveriesCommand {
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

pub async fn call(
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

pub async fn print_response(response: reqwest::Response) -> anyhow::Result<()> {
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

pub async fn events(command: EventsCommand) -> anyhow::Result<()> {
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

pub async fn deliveries(command: DeliveriesCommand) -> anyhow::Result<()> {
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
pub async fn health(url: &str) -> anyhow::Result<()> {
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
