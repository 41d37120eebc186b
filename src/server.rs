//! Assembles Herald from its configuration: store, catalog, routing, dispatcher and the HTTP
//! API, started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::ApiKeys;
use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::destinations::webhook::{NetworkPolicy, WebhookClient};
use crate::destinations::Destinations;
use crate::dispatch::{DispatchConfig, Dispatcher, RetryPolicy, Waker};
use crate::ingest::Ingestor;
use crate::subscriptions::Routing;

/// A running Herald.
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The assembled state (for embedding and tests).
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting requests, lets the dispatcher finish, and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Resolves when Herald stops by itself (it does not, short of a crash of a task).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Loads the catalog named by the configuration (the demo catalog when none is).
pub fn load_catalog(config: &Config) -> anyhow::Result<Catalog> {
    match &config.catalog.dir {
        Some(dir) => catalog::load_dir(dir)
            .with_context(|| format!("loading the catalog from {}", dir.display())),
        None => Ok(Catalog::demo()),
    }
}

/// Starts Herald on `listener` (or on `config.server.listen`).
pub async fn start(
    config: Config,
    catalog: Catalog,
    listener: Option<TcpListener>,
) -> anyhow::Result<Running> {
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(config.server.listen).await.with_context(|| {
            format!("cannot listen on {}: is another program using it? Pick another address with --listen or server.listen", config.server.listen)
        })?,
    };
    let addr = listener.local_addr()?;
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let store = crate::store::open(&config.store.settings())
        .await
        .with_context(|| format!("opening the store {}", config.store.url))?;
    let webhooks = WebhookClient::new(
        NetworkPolicy::new(config.webhooks.allow_networks.clone()),
        config.webhooks.timeout,
    )?;
    let routing = Routing::default();
    routing.reload(store.as_ref()).await?;
    let waker = Waker::default();
    let wake = waker.clone();
    let (reload_routing, store_for_reload) = (routing.clone(), store.clone());
    store.watch(
        Arc::new(move || wake.wake()),
        Arc::new(move || {
            // Another instance changed endpoints or subscriptions.
            let (routing, store) = (reload_routing.clone(), store_for_reload.clone());
            tokio::spawn(async move {
                if let Err(e) = routing.reload(store.as_ref()).await {
                    tracing::warn!(error = %e, "reloading subscriptions failed; the next change or poll retries");
                }
            });
        }),
    );
    let steps = crate::ingest::steps::SyncSteps {
        store: store.clone(),
        webhooks: webhooks.clone(),
        catalog: catalog.clone(),
        public_url: public_url.clone(),
        organization: config.dataverse.organization.clone(),
    };
    let ingestor = Arc::new(Ingestor::new(
        catalog.clone(),
        routing.clone(),
        store.clone(),
        waker.clone(),
        steps,
    ));
    let state = AppState {
        catalog,
        store: store.clone(),
        routing: routing.clone(),
        ingestor,
        keys: ApiKeys::from_config(&config),
        webhooks: webhooks.clone(),
        public_url: public_url.clone(),
        max_body_bytes: config.server.max_body_bytes,
        metrics: crate::telemetry::metrics(),
    };
    apply_declared(&state, &config).await?;

    let shutdown = CancellationToken::new();
    let owner = store.lease_owner();
    let d = &config.delivery;
    let dispatcher = Dispatcher::new(
        store,
        Arc::new(Destinations::new(webhooks)),
        routing,
        DispatchConfig {
            owner,
            retry: RetryPolicy {
                schedule: d.retry_schedule.iter().map(|h| h.0).collect(),
                max_attempts: d.max_attempts.get(),
                ttl: d.ttl,
            },
            lease: d.lease,
            max_in_flight: d.max_in_flight.get(),
            endpoint_concurrency: d.endpoint_concurrency.get(),
            poll_interval: d.poll_interval,
            public_url,
            catalog: state.catalog.clone(),
            organization: config.dataverse.organization.clone(),
        },
        waker,
    );
    let mut tasks = vec![tokio::spawn(dispatcher.run(shutdown.clone()))];
    let app = api::app(state.clone());
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    }));
    tracing::info!(%addr, "Herald is listening");
    Ok(Running {
        addr,
        state,
        shutdown,
        tasks,
    })
}

/// Creates or updates the endpoints and subscriptions declared in the configuration.
async fn apply_declared(state: &AppState, config: &Config) -> anyhow::Result<()> {
    for endpoint in &config.endpoints {
        let webhook = endpoint.kind == crate::api::model::EndpointKind::Webhook;
        if webhook && endpoint.secret.is_none() {
            anyhow::bail!("endpoint \"{}\" of the configuration needs a `secret` (whsec_…) that its receiver knows; print one with `herald webhook secret`", endpoint.name);
        }
        api::endpoints::create_or_replace(state, endpoint.clone(), true)
            .await
            .map_err(|e| {
                anyhow::anyhow!("endpoint \"{}\" of the configuration: {e}", endpoint.name)
            })?;
    }
    for subscription in &config.subscriptions {
        if subscription.name.is_none() {
            anyhow::bail!("every subscription of the configuration needs a `name`");
        }
        api::subscriptions::create_or_replace(state, subscription.clone(), true)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "subscription \"{}\" of the configuration: {e}",
                    subscription.name.as_deref().unwrap_or("")
                )
            })?;
    }
    Ok(())
}
