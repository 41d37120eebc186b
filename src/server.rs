//! Assembles Herald from its configuration: store, catalog, routing, dispatcher and the HTTP
//! API, started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::api::{self, AppState};
use crate::auth::{ApiKeys, Principal};
use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::destinations::network::NetworkPolicy;
use crate::destinations::plugin::{HttpFetch, PluginRuntime};
use crate::destinations::webhook::WebhookClient;
use crate::destinations::{Destinations, Origin};
use crate::dispatch::{DispatchConfig, Dispatcher, HealthPolicy, RetryPolicy, Waker};
use crate::ingest::Ingestor;
use crate::registry::{Registry, Routing};
use crate::store::prune::Pruner;

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
        // The exporter's last batch is sent from its own thread: wait for it off the runtime.
        let tracing = self.state.tracing.clone();
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
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
    let public_url = config.server.base_url(addr);
    // Two TLS implementations' crypto are linked (aws-lc-rs, and ring through the replication
    // crate): name the one every TLS client and server of this process uses.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let source_configs = config.sources()?;
    crate::sources::check(&source_configs, &catalog)?;
    let store = crate::store::open(&config.store_settings()?)
        .await
        .with_context(|| format!("opening the store {}", config.store.url))?;
    let policy = NetworkPolicy::new(config.webhooks.allow_networks.clone());
    let origin_name = match &config.webhooks.origin {
        Some(name) => name.clone(),
        None => url::Url::parse(&public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into()),
    };
    let webhooks =
        WebhookClient::new(policy.clone(), config.webhooks.timeout)?.with_origin(&origin_name);
    let sandbox = if config.plugins.enabled {
        let cache = config.plugins.cache_dir(&config.store.url);
        Some(crate::plugins::Sandbox::new(config.plugins.limits, cache)?)
    } else {
        None
    };
    let mut registry = Registry::new(store.clone(), catalog.clone(), policy, Routing::default())
        .with_max_timeout(config.delivery.lease / 2);
    if let Some(sandbox) = &sandbox {
        registry = registry.with_sandbox(sandbox.clone());
    }
    registry.reload().await?;
    let waker = Waker::default();
    let activity = Activity::new(store.lease_owner());
    watch_other_instances(store.as_ref(), &waker, &registry, &activity);
    let origin = Origin {
        public_url: public_url.clone(),
        organization: config.dataverse.organization.clone(),
    };
    let destinations = Arc::new(Destinations::new(webhooks.clone()));
    let steps = crate::ingest::steps::SyncSteps {
        store: store.clone(),
        routing: registry.routing().clone(),
        lookups: Default::default(),
        webhooks: webhooks.clone(),
        origin: origin.clone(),
        destinations: destinations.clone(),
    };
    let (notices, notices_rx) = tokio::sync::mpsc::channel(1024);
    let t = &config.telemetry;
    let tracing = match &t.otlp_endpoint {
        Some(endpoint) => crate::telemetry::Tracing::otlp(&crate::telemetry::TraceSettings {
            endpoint: endpoint.clone(),
            service_name: t.service_name.clone(),
            export_interval: t.export_interval,
        })?,
        None => crate::telemetry::Tracing::default(),
    };
    let dispatch = dispatch_config(
        &config,
        store.lease_owner(),
        origin,
        catalog.clone(),
        Some(notices),
        activity.clone(),
        tracing.clone(),
    );
    let dispatcher = Dispatcher::new(
        store.clone(),
        destinations.clone(),
        registry.clone(),
        dispatch,
        waker,
    );
    let ingestor = Arc::new(
        Ingestor::new(
            catalog.clone(),
            registry.routing().clone(),
            store.clone(),
            dispatcher.hand_off(),
            steps,
            config.pipeline.max_depth.get(),
        )
        .with_activity(activity.clone()),
    );
    if let (Some(sandbox), Some(library)) = (sandbox, registry.plugin_library()) {
        destinations.enable_plugins(PluginRuntime {
            sandbox,
            library,
            emit: Some(Arc::new(crate::ingest::emit::Emitter {
                ingestor: Arc::downgrade(&ingestor),
            })),
            fetch: Arc::new(HttpFetch { client: webhooks }),
        });
    }
    tokio::spawn(crate::ingest::notices::announce(
        ingestor.clone(),
        registry.clone(),
        notices_rx,
    ));
    let mut state = AppState {
        catalog,
        store: store.clone(),
        registry: registry.clone(),
        ingestor,
        keys: api_keys(&config),
        public_url: public_url.clone(),
        max_body_bytes: config.server.max_body_bytes,
        metrics: crate::telemetry::metrics(),
        pruner: Pruner::new(
            store.clone(),
            config.retention.policy(),
            store.lease_owner(),
        ),
        activity: activity.clone(),
        tracing: tracing.clone(),
        console: api::console::ConsoleSettings {
            enabled: config.console.enabled,
            session_ttl: config.console.session_ttl,
            idle_timeout: Some(config.console.idle_timeout).filter(|d| !d.is_zero()),
            secure: public_url.starts_with("https://"),
        },
        sources: Default::default(),
    };
    declare(&registry, &config).await?;
    if let Some(runtime) = destinations.plugins() {
        tokio::spawn(warm_plugins(store.clone(), runtime));
    }

    let shutdown = CancellationToken::new();
    // After the declared subscriptions exist, so the first changes read already match them.
    let (sources, source_tasks) = crate::sources::Sources::start(
        &source_configs,
        &state.catalog,
        state.ingestor.clone(),
        tracing.clone(),
        shutdown.clone(),
    );
    state.sources = sources;
    let mut tasks = vec![tokio::spawn(dispatcher.run(shutdown.clone()))];
    tasks.extend(source_tasks);
    tasks.push(tokio::spawn(state.pruner.clone().run(shutdown.clone())));
    tasks.push(tokio::spawn(
        activity.clone().run(store.clone(), shutdown.clone()),
    ));
    let app = api::app(state.clone());
    let limits = api::edge::EdgeLimits {
        header_timeout: config.server.header_timeout,
        body_timeout: config.server.body_timeout,
        max_connections: config.server.max_connections.get() as usize,
    };
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        api::edge::serve(listener, app, limits, stop).await;
    }));
    tracing::info!(%addr, "Herald is listening");
    Ok(Running {
        addr,
        state,
        shutdown,
        tasks,
    })
}

/// Wakes the dispatcher when any instance stores due work, reloads the subscriptions when
/// another one changes them, and passes what happens on the others to this one's live tails
/// (a no-op for an embedded store).
fn watch_other_instances(
    store: &dyn crate::store::Store,
    waker: &Waker,
    registry: &Registry,
    activity: &Activity,
) {
    let wake = waker.clone();
    let registry = registry.clone();
    let (heard, wanted) = (activity.clone(), activity.clone());
    store.messages().watch(crate::store::Watchers {
        on_work: Arc::new(move || wake.wake()),
        on_change: Arc::new(move || {
            let registry = registry.clone();
            tokio::spawn(async move {
                if let Err(e) = registry.reload().await {
                    tracing::warn!(error = %e, "reloading subscriptions failed; the next change or poll retries");
                }
            });
        }),
        on_tail: Arc::new(move |text| heard.heard(text)),
        on_tail_wanted: Arc::new(move |asker| wanted.wanted_by(asker)),
    });
}

/// The dispatcher's settings from the configuration.
fn dispatch_config(
    config: &Config,
    owner: String,
    origin: Origin,
    catalog: Catalog,
    notices: Option<tokio::sync::mpsc::Sender<crate::model::Notice>>,
    activity: Activity,
    tracing: crate::telemetry::Tracing,
) -> DispatchConfig {
    let d = &config.delivery;
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
        origin,
        catalog,
        health: health_policy(&config.endpoint_health),
        notices,
        activity,
        tracing,
        keep_succeeded_requests: d.keep_requests == crate::config::KeepRequests::All,
    }
}

/// The endpoint health policy of the configuration.
fn health_policy(c: &crate::config::EndpointHealthConfig) -> HealthPolicy {
    HealthPolicy {
        consecutive_failures: c.consecutive_failures.get(),
        failure_rate: c.failure_rate,
        window: c.window,
        min_attempts: c.min_attempts.get(),
        probe_interval: c.probe_interval,
        probe_interval_max: c.probe_interval_max,
        disable_after: (!c.disable_after.is_zero()).then_some(c.disable_after),
        rate_after_429: c.rate_after_429,
        slow_for: c.slow_for,
    }
}

/// Keys shorter than this are warned about at start: `herald keys generate` makes 46.
const SHORT_KEY: usize = 32;

/// The API keys of the configuration: `api_key` (full access) and `api_keys`.
fn api_keys(config: &Config) -> ApiKeys {
    if let Some(key) = config.api_key.as_deref() {
        let length = key.chars().count();
        if length < SHORT_KEY {
            tracing::warn!(
                length,
                "api_key is short: a key of fewer than {SHORT_KEY} random characters can be guessed; make one with `herald keys generate`"
            );
        }
    }
    let full = config.api_key.iter().map(|key| {
        let principal = Principal {
            name: "default".into(),
            solutions: None,
            admin: true,
            system: false,
        };
        (crate::auth::hash(key), principal)
    });
    let scoped = config.api_keys.iter().map(|k| {
        let principal = Principal {
            name: k.name.clone(),
            solutions: (!k.solutions.iter().any(|s| s == "*")).then(|| k.solutions.clone()),
            admin: k.admin,
            system: false,
        };
        (k.sha256.0, principal)
    });
    ApiKeys::new(full.chain(scoped)).with_wrong_key_limit(config.server.wrong_keys_per_minute)
}

/// Creates or updates the endpoints and subscriptions declared in the configuration.
async fn declare(registry: &Registry, config: &Config) -> anyhow::Result<()> {
    for plugin in &config.plugins.declared {
        let bytes = std::fs::read(&plugin.path).with_context(|| {
            format!(
                "plug-in \"{}\" of the configuration: reading {}",
                plugin.name,
                plugin.path.display()
            )
        })?;
        let pushed = registry
            .push_plugin(
                &crate::model::Scope::All,
                crate::registry::PushInput {
                    name: plugin.name.clone(),
                    solution: Some(plugin.solution.clone()),
                    description: plugin.description.clone(),
                    bytes,
                },
            )
            .await
            .with_context(|| format!("plug-in \"{}\" of the configuration", plugin.name))?;
        if pushed.created {
            tracing::info!(plugin = %plugin.name, version = pushed.version.version, "plug-in pushed from the configuration");
        }
    }
    for endpoint in &config.endpoints {
        registry
            .declare_endpoint(endpoint.clone())
            .await
            .with_context(|| format!("endpoint \"{}\" of the configuration", endpoint.name))?;
    }
    for subscription in &config.subscriptions {
        let name = subscription.name.as_deref().unwrap_or("(unnamed)");
        registry
            .declare_subscription(subscription.clone())
            .await
            .with_context(|| format!("subscription \"{name}\" of the configuration"))?;
    }
    Ok(())
}

/// Compiles (or loads from the cache) every plug-in version an endpoint runs, so the first
/// event does not wait for it.
async fn warm_plugins(store: Arc<dyn crate::store::Store>, runtime: PluginRuntime) {
    let endpoints = match store.records().endpoints().await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            tracing::warn!(error = %e, "plug-ins are compiled at first use: the endpoints cannot be read");
            return;
        }
    };
    for endpoint in endpoints {
        if let crate::model::DestinationSettings::Plugin(settings) = &endpoint.settings {
            match runtime.load(settings).await {
                Ok(loaded) => tracing::info!(plugin = %loaded.version,
                    compile_ms = loaded.compiled.compile_time.as_millis() as u64,
                    cached = loaded.compiled.from_disk, "plug-in ready"),
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.name, error = %e, "plug-in not ready")
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
