//! Starting and stopping the emulator in-process: the builder, the running handle, and the
//! errors of start-up.

use crate::admin::{self, AdminState};
use crate::broker::handle::{BrokerHandle, JournalError};
use crate::broker::message::Stored;
use crate::broker::{Address, Broker, Topology};
use crate::config::{self, ConfigError};
use crate::faults::{FaultPlan, Faults};
use crate::http::{self, AppState};
use crate::server::cbs::Policy;
use crate::server::connection;
use crate::server::context::Context;
use crate::sink::{Behaviour, Sink, SinkRecord};
use crate::tls::{Https, TlsError};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The key name of the default shared access policy (as in Microsoft's emulators).
pub const DEFAULT_KEY_NAME: &str = "RootManageSharedAccessKey";
/// The key of the default shared access policy (as in Microsoft's emulators).
pub const DEFAULT_KEY: &str = "SAS_KEY_VALUE";

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port is taken by another program.
    #[error("{what} port {port} on 127.0.0.1 is already in use; pick another with --{flag} <PORT> (0 picks a free one)")]
    PortInUse {
        /// `AMQP` or `HTTP`.
        what: &'static str,
        /// The port.
        port: u16,
        /// The command-line flag that changes it.
        flag: &'static str,
    },
    /// Binding failed otherwise.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be used.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The administration API's certificate cannot be had.
    #[error("the administration API's certificate: {0}")]
    Tls(#[from] TlsError),
}

/// Configures an emulator; [`EmulatorBuilder::start`] runs it.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    amqp_port: u16,
    http_port: u16,
    configs: Vec<PathBuf>,
    topology: Option<Topology>,
    data_dir: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    secrets: Vec<String>,
    policies: Vec<Policy>,
    allow_jwt: bool,
}

/// Entry point of the library API.
pub struct Emulator;

impl Emulator {
    /// A builder with defaults: AMQP on 5672, HTTP side port on any free port, built-in entities,
    /// in-memory state, policy `RootManageSharedAccessKey` = `SAS_KEY_VALUE`.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            amqp_port: 5672,
            http_port: 0,
            configs: Vec::new(),
            topology: None,
            data_dir: None,
            cert_dir: None,
            secrets: Vec::new(),
            policies: vec![Policy {
                name: DEFAULT_KEY_NAME.into(),
                key: DEFAULT_KEY.into(),
            }],
            allow_jwt: false,
        }
    }
}

impl EmulatorBuilder {
    /// AMQP port on 127.0.0.1; 0 picks a free one.
    pub fn amqp_port(mut self, port: u16) -> Self {
        self.amqp_port = port;
        self
    }
    /// HTTP side port (entities, peek, purge, health, webhook sink); 0 picks a free one.
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = port;
        self
    }
    /// Adds a `Config.json` in the shape of Microsoft's Service Bus or Event Hubs emulator.
    /// Repeatable; without any, the built-in entities serve.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.configs.push(path.into());
        self
    }
    /// Serves these entities (added to any config files).
    pub fn topology(mut self, t: Topology) -> Self {
        self.topology = Some(t);
        self
    }
    /// Keeps state in an append-only journal in this directory, across restarts.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    /// Where the administration API's certificate is kept (default: the data directory, else a
    /// fresh temporary directory removed at shutdown).
    pub fn certificate_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cert_dir = Some(dir.into());
        self
    }
    /// A Standard Webhooks secret (`whsec_…`) the sink verifies with. Repeatable.
    pub fn sink_secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }
    /// An extra shared access policy (key name and key).
    pub fn policy(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
        self.policies.push(Policy {
            name: name.into(),
            key: key.into(),
        });
        self
    }
    /// Development mode: accept JWTs on `$cbs` without checking them.
    pub fn allow_jwt(mut self, yes: bool) -> Self {
        self.allow_jwt = yes;
        self
    }

    /// Loads configuration, binds both ports and starts serving.
    pub async fn start(self) -> Result<RunningEmulator, StartError> {
        let mut topology = Topology::default();
        for c in &self.configs {
            topology.merge(config::load(c)?);
        }
        if let Some(t) = self.topology {
            topology.merge(t);
        }
        if self.configs.is_empty()
            && topology.queues.is_empty()
            && topology.topics.is_empty()
            && topology.hubs.is_empty()
        {
            topology = Topology::builtin();
        }
        let broker = Broker::new(&topology, crate::broker::handle::now_ms());
        let broker = BrokerHandle::new(broker, self.data_dir.as_deref())?;
        let amqp = bind(self.amqp_port, "AMQP", "port").await?;
        let web = bind(self.http_port, "HTTP", "http-port").await?;
        let amqp_addr = amqp.local_addr().map_err(|source| StartError::Bind {
            port: self.amqp_port,
            source,
        })?;
        let http_addr = web.local_addr().map_err(|source| StartError::Bind {
            port: self.http_port,
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let sink = Sink::new(self.secrets);
        let faults = Arc::new(Faults::default());
        let (cert_dir, temporary) = match (&self.cert_dir, &self.data_dir) {
            (Some(d), _) | (None, Some(d)) => (d.clone(), None),
            (None, None) => {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d =
                    std::env::temp_dir().join(format!("local-emulator-{}-{n}", std::process::id()));
                (d.clone(), Some(d))
            }
        };
        let admin = admin::router(AdminState {
            broker: broker.clone(),
            policies: self.policies.clone(),
        });
        let https = Arc::new(Https::new(&cert_dir, admin)?);
        let ctx = Arc::new(Context {
            broker: broker.clone(),
            policies: self.policies.clone(),
            allow_jwt: self.allow_jwt,
            max_message_size: 256 * 1024,
            hub_max_message_size: 1024 * 1024,
            max_frame: 1024 * 1024 + 4096,
            faults: faults.clone(),
            https: Some(https.clone()),
        });
        let mut tasks = vec![tokio::spawn(connection::serve(amqp, ctx, stopped.clone()))];
        let app = http::app(AppState {
            broker: broker.clone(),
            sink: sink.clone(),
            faults: faults.clone(),
        });
        let mut http_stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = http_stop.changed().await;
            };
            if let Err(e) = axum::serve(web, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(error = %e, "HTTP side port failed");
            }
        }));
        let ticker = broker.clone();
        let mut tick_stop = stopped;
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if ticker.with(|b, now| b.tick(now)) {
                            ticker.notify();
                        }
                    }
                    _ = tick_stop.changed() => return,
                }
            }
        }));
        let key = self.policies.first().cloned().unwrap_or(Policy {
            name: DEFAULT_KEY_NAME.into(),
            key: DEFAULT_KEY.into(),
        });
        Ok(RunningEmulator {
            amqp_addr,
            http_addr,
            broker,
            sink,
            stop,
            tasks,
            key,
            faults,
            https,
            temporary,
        })
    }
}

async fn bind(
    port: u16,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                StartError::PortInUse { what, port, flag }
            } else {
                StartError::Bind { port, source }
            }
        })
}

/// A running emulator. Dropping it does not stop it; call [`RunningEmulator::shutdown`].
pub struct RunningEmulator {
    amqp_addr: SocketAddr,
    http_addr: SocketAddr,
    broker: BrokerHandle,
    sink: Sink,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    key: Policy,
    faults: Arc<Faults>,
    https: Arc<Https>,
    /// A certificate directory of our own, removed at shutdown.
    temporary: Option<PathBuf>,
}

impl RunningEmulator {
    /// Where AMQP is served.
    pub fn amqp_addr(&self) -> SocketAddr {
        self.amqp_addr
    }
    /// The administration API's certificate (PEM): trust it in the HTTPS clients
    /// (`connection_verify=` in Python, `NODE_EXTRA_CA_CERTS` for Node.js).
    pub fn certificate_path(&self) -> &std::path::Path {
        self.https.cert_path()
    }
    /// Where the HTTP side port is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
    /// A connection string for the Azure SDKs, in the form Microsoft's emulators use.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://localhost:{};SharedAccessKeyName={};SharedAccessKey={};UseDevelopmentEmulator=true;",
            self.amqp_addr.port(),
            self.key.name,
            self.key.key
        )
    }
    /// The webhook sink's URL (`POST` anything under it).
    pub fn sink_url(&self) -> String {
        format!("http://{}/sink", self.http_addr)
    }
    /// A signed SAS token for `resource` (e.g. `sb://localhost/queue1`), valid for `ttl`.
    pub fn sas_token(&self, resource: &str, ttl: Duration) -> String {
        let exp = crate::broker::handle::now_ms() / 1000 + ttl.as_secs() as i64;
        crate::server::cbs::sas_token(resource, &self.key.name, &self.key.key, exp)
    }
    /// Up to `count` messages of a queue, subscription or dead-letter queue (e.g.
    /// `queue1/$DeadLetterQueue`), from the first, without locking them.
    pub fn peek(&self, path: &str, count: usize) -> Vec<Stored> {
        let Ok(addr) = Address::parse(path) else {
            return Vec::new();
        };
        self.broker.with(|b, _| {
            b.store_key(&addr)
                .map(|k| b.peek(&k, 0, count, None))
                .unwrap_or_default()
        })
    }
    /// How many sends to a queue or topic with duplicate detection were dropped as duplicates.
    pub fn duplicates_dropped(&self, entity: &str) -> u64 {
        self.broker.with(|b, _| b.duplicates_dropped(entity))
    }
    /// Number of events in an event hub partition.
    pub fn partition_len(&self, hub: &str, partition: usize) -> usize {
        self.broker.with(|b, _| {
            b.partition_info(hub, partition)
                .map_or(0, |p| (p.last_seq + 1) as usize)
        })
    }
    /// Requests the webhook sink received.
    pub fn sink_records(&self) -> Vec<SinkRecord> {
        self.sink.records()
    }
    /// Sets how the sink answers (status, for how many requests, delay).
    pub fn set_sink_behaviour(&self, b: Behaviour) {
        self.sink.set_behaviour(b);
    }
    /// Arms faults for testing clients' recovery (see [`FaultPlan`]).
    pub fn arm_faults(&self, plan: FaultPlan) {
        self.faults.arm(plan);
    }
    /// The sink, to share with other code.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }
    /// Stops serving: closes connections with `amqp:connection:forced` and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(d) = self.temporary {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
