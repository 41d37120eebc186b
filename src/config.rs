//! Herald's configuration: one typed tree, layered as embedded defaults → TOML file →
//! `HERALD_*` environment variables (`HERALD_SERVER__LISTEN` sets `server.listen`), and
//! checked once at start-up. `herald config example` prints [`EXAMPLE`].

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use crate::registry::{EndpointInput, SubscriptionInput};
use crate::store::StoreUrl;

mod env;

pub use env::EnvVars;

/// What a sealed source URL is bound to: it opens only as a source URL.
const SOURCE_URL_CONTEXT: &[u8] = b"herald source url";

/// The commented example configuration; also the embedded defaults.
pub const EXAMPLE: &str = include_str!("../herald.example.toml");

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, of the wrong type, or unknown.
    #[error("configuration error: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The encryption keys are unusable or missing.
    #[error("configuration error: `encryption_keys`: {0}")]
    Keys(#[from] crate::store::sealing::SealingError),
    /// A value parsed but does not make sense.
    #[error("configuration error: `{field}`: {message}")]
    Value {
        /// The dotted path of the field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP API.
    pub server: ServerConfig,
    /// Where events and deliveries are stored.
    pub store: StoreConfig,
    /// Where the catalog is read from.
    pub catalog: CatalogConfig,
    /// The delivery engine.
    pub delivery: DeliveryConfig,
    /// When endpoints are failing, probed and disabled.
    pub endpoint_health: EndpointHealthConfig,
    /// Webhook sending.
    pub webhooks: WebhookConfig,
    /// Dataverse compatibility.
    pub dataverse: DataverseConfig,
    /// The event pipeline: synchronous steps and loop prevention.
    pub pipeline: PipelineConfig,
    /// Plug-ins: the sandbox, its limits, and plug-ins declared as code.
    pub plugins: PluginsConfig,
    /// How long finished work is kept.
    pub retention: RetentionConfig,
    /// The operator console.
    pub console: ConsoleConfig,
    /// Traces.
    pub telemetry: TelemetryConfig,
    /// Keys that seal endpoint settings (signing secrets, SAS keys, client secrets, auth
    /// header values) at rest, as `ID:BASE64` of 32 random bytes (`herald keys encryption`);
    /// usually from `HERALD_ENCRYPTION_KEYS`, comma-separated. The first seals what is written;
    /// the others still open rows sealed before a rotation, which are sealed again under the
    /// first when the store opens. Unset with SQLite: a key is generated beside the database.
    #[serde(default)]
    pub encryption_keys: KeyLines,
    /// A full-access API key (usually from `HERALD_API_KEY`); stored only as its hash.
    #[serde(default)]
    pub api_key: Option<String>,
    /// API keys, each scoped to solutions.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Endpoints declared in the file, created or updated by name at start-up.
    #[serde(default)]
    pub endpoints: Vec<EndpointInput>,
    /// Subscriptions declared in the file, created or updated by name at start-up.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionInput>,
    /// Sources: an application's PostgreSQL, read by logical replication.
    #[serde(default)]
    pub sources: Vec<crate::sources::SourceConfig>,
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (larger bodies get `413`).
    pub max_body_bytes: usize,
    /// Base URL that links in answers (schema URLs) are built from; defaults to `http://{listen}`.
    #[serde(default, deserialize_with = "public_url")]
    pub public_url: Option<Url>,
    /// Time a client has to send a request's headers, counted from when its connection opens
    /// or its previous answer was sent: so also how long a kept-alive connection stays idle.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body, from its first byte (`408` after).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Connections open at once, at most; past it, new ones wait to be accepted.
    pub max_connections: NonZeroU32,
    /// Wrong API keys one client address may send in a minute; past it, every request of
    /// that address is answered `429` until the minute is over. 0 for no limit.
    pub wrong_keys_per_minute: u32,
}

impl ServerConfig {
    /// The base URL of links, without a trailing slash: `public_url`, or `http://{addr}` of
    /// the address actually listened on.
    pub fn base_url(&self, addr: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{addr}"),
        }
    }
}

/// An http(s) URL without a query (`server.public_url`, `telemetry.otlp_endpoint`).
fn public_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let url = Url::parse(&text).map_err(serde::de::Error::custom)?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(serde::de::Error::custom(
            "must be an http:// or https:// URL without a query, e.g. https://herald.example.com",
        ));
    }
    Ok(Some(url))
}

/// The store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/herald.db` (the default) or `postgres://…`.
    pub url: StoreUrl,
    /// PostgreSQL: most connections of the pool.
    pub max_connections: NonZeroU32,
    /// PostgreSQL: how long a request waits for a connection before answering 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// PostgreSQL: schema for Herald's tables (created if missing).
    #[serde(default)]
    pub schema: Option<String>,
}

/// OpenTelemetry traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP endpoint's base URL; traces are off without one.
    #[serde(default, deserialize_with = "public_url")]
    pub otlp_endpoint: Option<Url>,
    /// The `service.name` of the spans.
    pub service_name: String,
    /// How long finished spans wait to be sent together.
    #[serde(with = "humantime_serde")]
    pub export_interval: Duration,
}

/// The operator console at `/console`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether it is served.
    pub enabled: bool,
    /// How long a session lasts after sign-in.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How long a session lasts unused; `"0s"`: as long as `session_ttl`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// How long finished work is kept, and how pruning runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether expired rows are removed at all.
    pub prune: bool,
    /// How long a succeeded delivery and its attempts are kept after it succeeded.
    #[serde(with = "humantime_serde")]
    pub succeeded: Duration,
    /// How long a dead-lettered or cancelled delivery is kept (and can be replayed).
    #[serde(with = "humantime_serde")]
    pub dead_lettered: Duration,
    /// How long an event is kept after it was accepted, once none of its deliveries is left.
    #[serde(with = "humantime_serde")]
    pub events: Duration,
    /// How long an idempotency key is honoured after its event was accepted.
    #[serde(with = "humantime_serde")]
    pub idempotency: Duration,
    /// Time between the starts of two pruning passes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows removed per batch (one short transaction each).
    pub batch: NonZeroU32,
    /// Time between two readings of rows and bytes by table for `/metrics` (on SQLite a
    /// reading visits every page of the database).
    #[serde(with = "humantime_serde")]
    pub stats_interval: Duration,
}

impl RetentionConfig {
    /// The policy the pruner applies.
    pub fn policy(&self) -> crate::store::prune::RetentionPolicy {
        crate::store::prune::RetentionPolicy {
            enabled: self.prune,
            succeeded: self.succeeded,
            dead_lettered: self.dead_lettered,
            events: self.events,
            idempotency: self.idempotency,
            interval: self.interval,
            stats_interval: self.stats_interval,
            batch: self.batch.get(),
        }
    }
}

/// The catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Folder of catalog TOML files; the built-in demo catalog when unset.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// The delivery engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Delays between attempts (`"10s"`, `"5m"`…); after the list runs out the last repeats.
    pub retry_schedule: Vec<HumanDuration>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: NonZeroU32,
    /// Age after which a delivery that has not succeeded is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long a leased delivery stays with one dispatcher before another may take it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Deliveries in flight at once, over all endpoints.
    pub max_in_flight: NonZeroU32,
    /// Deliveries in flight at once to one endpoint, unless the endpoint says otherwise.
    pub endpoint_concurrency: NonZeroU32,
    /// How often the dispatcher looks for due work when nothing wakes it.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Which attempts keep the request they sent.
    pub keep_requests: KeepRequests,
}

/// Which attempts keep the request they sent (headers, the start of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepRequests {
    /// Failed attempts; a successful one keeps its status and time.
    Failed,
    /// Every attempt.
    All,
}

/// When endpoints are failing, how they are probed, and when they are disabled. Shared by
/// every instance of a cluster: the state lives in the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointHealthConfig {
    /// Consecutive failed attempts that make an endpoint failing.
    pub consecutive_failures: NonZeroU32,
    /// A share of failed attempts (above 0, at most 1) within `window` that makes an
    /// endpoint failing, once the window holds `min_attempts`.
    pub failure_rate: f64,
    /// The failure-rate window (it opens at a failure).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Attempts the window needs before its rate counts.
    pub min_attempts: NonZeroU32,
    /// Wait before the first probe of a failing endpoint; doubles after each failed probe…
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// …up to this.
    #[serde(with = "humantime_serde")]
    pub probe_interval_max: Duration,
    /// An endpoint failing continuously this long is disabled (its deliveries held); `"0s"`
    /// never disables. Operational events go out at 50, 70, 90 and 100 % of it.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// Deliveries per second to an endpoint without a rate limit after it answers `429`.
    pub rate_after_429: f64,
    /// How long a `429` lowers an endpoint's rate (halving it, or to `rate_after_429`).
    #[serde(with = "humantime_serde")]
    pub slow_for: Duration,
}

/// A duration written as `"10s"`, `"5m"`, `"12h"`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct HumanDuration(#[serde(with = "humantime_serde")] pub Duration);

/// Webhook sending.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Time allowed for a receiver to answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Networks that webhook URLs may point into although they are not public
    /// (loopback, private, link-local…). Empty by default: only public addresses.
    #[serde(default)]
    pub allow_networks: Vec<IpNet>,
    /// The DNS name Herald gives as `WebHook-Request-Origin` in the CloudEvents handshake (and
    /// as `Origin` on deliveries to receivers that granted it); the host of
    /// `server.public_url` when unset.
    #[serde(default)]
    pub origin: Option<String>,
}

/// Dataverse compatibility.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseConfig {
    /// `OrganizationName` of Dataverse-format messages and the `x-ms-dynamics-organization` header.
    pub organization: String,
}

/// The event pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The deepest an event may be: an event sent by a receiver while it handles a Herald
    /// delivery is one deeper than the event delivered (`herald-depth`); past this it is
    /// refused, which stops loops. Dataverse's limit is 8.
    pub max_depth: NonZeroU32,
}

/// Plug-ins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Whether plug-ins may be pushed and run on this instance.
    pub enabled: bool,
    /// Where compiled plug-ins are kept across restarts; default: beside the SQLite database,
    /// none with PostgreSQL. Only Herald's user may write there (its files run as native code).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Plug-ins pushed at every start.
    #[serde(default)]
    pub declared: Vec<DeclaredPlugin>,
    /// What one execution may use.
    pub limits: crate::plugins::Limits,
}

/// A plug-in pushed at every start from a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPlugin {
    /// Its name.
    pub name: String,
    /// Its solution.
    pub solution: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The component (`.wasm`), relative to the working directory.
    pub path: PathBuf,
}

impl PluginsConfig {
    /// The folder for compiled plug-ins under `store`.
    pub fn cache_dir(&self, store: &StoreUrl) -> Option<PathBuf> {
        match (&self.cache_dir, store) {
            (Some(dir), _) => Some(dir.clone()),
            (None, StoreUrl::Sqlite(path)) => Some(
                path.parent()
                    .unwrap_or_else(|| Path::new("."))
                    .join("plugin-cache"),
            ),
            (None, StoreUrl::Postgres(_)) => None,
        }
    }
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and audit.
    pub name: String,
    /// SHA-256 of the key, in hex (`herald keys hash` prints it). Never the key itself.
    pub sha256: KeyHash,
    /// Solutions the key may send events for; `["*"]` for all.
    pub solutions: Vec<String>,
    /// Whether the key may manage endpoints, subscriptions and deliveries.
    #[serde(default)]
    pub admin: bool,
}

/// Encryption key lines (`ID:BASE64`), from a list or one comma-separated string; never
/// printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyLines(pub Vec<String>);

impl std::fmt::Debug for KeyLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyLines({} keys, redacted)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for KeyLines {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Lines {
            One(String),
            Many(Vec<String>),
        }
        let lines = match Lines::deserialize(d)? {
            Lines::One(text) => vec![text],
            Lines::Many(lines) => lines,
        };
        Ok(KeyLines(
            lines
                .iter()
                .flat_map(|l| l.split([',', '\n', ' ']))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

/// The SHA-256 of an API key, decoded from the 64 hex digits the configuration holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({})", hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest).map_err(|_| {
            serde::de::Error::custom(
                "expected the 64 hex digits of the key's SHA-256 (run `herald keys hash`), never the key itself",
            )
        })?;
        Ok(KeyHash(digest))
    }
}

impl Config {
    /// The settings the store opens with (the idempotency window is the retention's; the
    /// keys are the configured ones or, for SQLite, the generated one beside the database).
    pub fn store_settings(&self) -> Result<crate::store::StoreSettings, ConfigError> {
        let store = &self.store;
        let db = match &store.url {
            StoreUrl::Sqlite(path) => Some(path.as_path()),
            StoreUrl::Postgres(_) => None,
        };
        let (keys, _) = crate::store::sealing::KeyRing::resolve(&self.encryption_keys.0, db)?;
        Ok(crate::store::StoreSettings {
            url: store.url.clone(),
            max_connections: store.max_connections.get(),
            acquire_timeout: store.acquire_timeout,
            schema: store.schema.clone(),
            idempotency_window: self.retention.idempotency,
            keys: std::sync::Arc::new(keys),
        })
    }

    /// The sources, each URL opened when it was given sealed (`herald source seal`).
    pub fn sources(&self) -> Result<Vec<crate::sources::SourceConfig>, ConfigError> {
        let keys = self.key_ring()?;
        self.sources
            .iter()
            .map(|s| {
                let Some(url) = s.url.as_ref().map(|u| u.expose()) else {
                    return Ok(s.clone());
                };
                if !url.starts_with(crate::store::sealing::SEALED_PREFIX) {
                    return Ok(s.clone());
                }
                let plain = keys.open(url, SOURCE_URL_CONTEXT)?;
                let text = String::from_utf8(plain.to_vec()).map_err(|_| ConfigError::Value {
                    field: "sources.url",
                    message: "the sealed URL is not text".into(),
                })?;
                let mut opened = s.clone();
                opened.url = Some(crate::model::SecretString::new(text));
                Ok(opened)
            })
            .collect()
    }

    /// `url` sealed with the configuration's current encryption key, for a source's `url`.
    pub fn seal_source_url(&self, url: &str) -> Result<String, ConfigError> {
        crate::sources::postgres::connection::Target::parse(url).map_err(|e| {
            ConfigError::Value {
                field: "sources.url",
                message: e.to_string(),
            }
        })?;
        Ok(self.key_ring()?.seal(url.as_bytes(), SOURCE_URL_CONTEXT))
    }

    fn key_ring(&self) -> Result<crate::store::sealing::KeyRing, ConfigError> {
        let db = match &self.store.url {
            StoreUrl::Sqlite(path) => Some(path.as_path()),
            StoreUrl::Postgres(_) => None,
        };
        Ok(crate::store::sealing::KeyRing::resolve(&self.encryption_keys.0, db)?.0)
    }

    /// Loads defaults, then `file` (if any), then the `HERALD_*` variables of `env`.
    pub fn load(file: Option<&Path>, env: EnvVars) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(EXAMPLE));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        for (path, value) in env.settings() {
            figment = figment.merge(Serialized::default(&path, value));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// Loads defaults, then each TOML text of `layers` in turn (no file, no environment):
    /// for embedding and tests.
    pub fn from_toml(layers: &[&str]) -> Result<Self, ConfigError> {
        let figment = layers
            .iter()
            .fold(Figment::from(Toml::string(EXAMPLE)), |f, layer| {
                f.merge(Toml::string(layer))
            });
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// The process's `HERALD_*` environment, as [`Config::load`] takes it.
    pub fn env() -> EnvVars {
        EnvVars::from_process()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let idle = self.console.idle_timeout;
        if !idle.is_zero() && idle < Duration::from_secs(60) {
            return Err(ConfigError::Value {
                field: "console.idle_timeout",
                message: "must be at least 1m, e.g. \"30m\", or \"0s\" for none".into(),
            });
        }
        for (field, t) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.body_timeout", self.server.body_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::Value {
                    field,
                    message: "must be longer than 0s, e.g. \"10s\"".into(),
                });
            }
        }
        if let Some(k) = self
            .api_keys
            .iter()
            .find(|k| k.name.is_empty() || k.name.chars().any(char::is_control))
        {
            return Err(ConfigError::Value {
                field: "api_keys.name",
                message: format!(
                    "{:?} must be 1 or more characters, none of them a control character",
                    k.name
                ),
            });
        }
        if self.console.session_ttl < Duration::from_secs(60) {
            return Err(ConfigError::Value {
                field: "console.session_ttl",
                message: "must be at least 1m, e.g. \"8h\"".into(),
            });
        }
        if self.telemetry.export_interval.is_zero() {
            return Err(ConfigError::Value {
                field: "telemetry.export_interval",
                message: "must be longer than 0s, e.g. \"5s\"".into(),
            });
        }
        let r = &self.retention;
        if r.interval.is_zero() {
            return Err(ConfigError::Value {
                field: "retention.interval",
                message: "must be longer than 0s, e.g. \"1m\"".into(),
            });
        }
        if r.dead_lettered < r.succeeded {
            return Err(ConfigError::Value {
                field: "retention.dead_lettered",
                message: format!(
                    "must be at least retention.succeeded ({}): dead letters are kept for replay",
                    humantime::format_duration(r.succeeded)
                ),
            });
        }
        let h = &self.endpoint_health;
        if !(h.failure_rate > 0.0 && h.failure_rate <= 1.0) {
            return Err(ConfigError::Value {
                field: "endpoint_health.failure_rate",
                message: "must be above 0 and at most 1, e.g. 0.5".into(),
            });
        }
        if !(0.001..=100_000.0).contains(&h.rate_after_429) {
            return Err(ConfigError::Value {
                field: "endpoint_health.rate_after_429",
                message: "must be 0.001 to 100000 deliveries per second".into(),
            });
        }
        if self.webhooks.timeout.is_zero() || self.webhooks.timeout > self.delivery.lease / 2 {
            return Err(ConfigError::Value {
                field: "webhooks.timeout",
                message: format!(
                    "must be above 0s and at most half of delivery.lease ({}), so an attempt ends before another dispatcher may take its delivery",
                    humantime::format_duration(self.delivery.lease / 2)
                ),
            });
        }
        if h.probe_interval.is_zero() || h.window.is_zero() {
            return Err(ConfigError::Value {
                field: if h.window.is_zero() {
                    "endpoint_health.window"
                } else {
                    "endpoint_health.probe_interval"
                },
                message: "must be longer than 0s, e.g. \"5s\"".into(),
            });
        }
        if self.delivery.retry_schedule.is_empty() {
            return Err(ConfigError::Value {
                field: "delivery.retry_schedule",
                message: "needs at least one delay".into(),
            });
        }
        if self.pipeline.max_depth.get() > crate::model::event::DEPTH_CAP {
            return Err(ConfigError::Value {
                field: "pipeline.max_depth",
                message: format!(
                    "must be 1 to {}, e.g. 8 as Dataverse",
                    crate::model::event::DEPTH_CAP
                ),
            });
        }
        Ok(())
    }
}
