//! The sandbox that runs plug-ins: WebAssembly components of the WIT world
//! `herald:plugin@1.0.0` (`wit/plugin.wit`), run by wasmtime with an instruction budget
//! (fuel), a wall-clock deadline (epoch interruption, and a timer around host calls), memory
//! and table caps, and nothing but the capabilities the caller grants (`grants.rs`).
//!
//! Components are compiled once per content hash, kept in memory and, when a cache folder is
//! given, on disk, so a restart does not compile again. Each compiled component keeps a small
//! pool of warm instances: an instance serves at most [`MAX_CALLS`] calls and is dropped after
//! any failure, so a plug-in may keep nothing it relies on between calls (as Dataverse asks of
//! its plug-ins: write them stateless). What the plug-ins are, where they are stored and where
//! they run is not this module's business: it takes bytes and JSON and answers JSON.

pub mod document;
mod grants;
mod host;
mod library;
mod limits;
mod stats;

pub use grants::{check_allowed_host, Emit, Fetch, Grants, Request, Response};
pub use library::{Library, LoadError, Loaded};
pub use limits::{Limit, Limits};
pub use stats::{Statistics, VersionStatistics};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

pub use host::LogLine;
use host::{Call, Plugin, PluginPre, State};

/// The WIT package plug-ins implement.
pub const WIT_PACKAGE: &str = "herald:plugin@1.0.0";

/// The interface a plug-in must export.
pub const HANDLER: &str = "herald:plugin/handler@1.0.0";

/// Calls one warm instance serves before it is dropped.
pub const MAX_CALLS: u32 = 1000;

/// Warm instances kept per component, idle.
const POOL: usize = 8;

/// How often the engine's epoch advances: the deadline's resolution.
const TICK: Duration = Duration::from_millis(10);

/// Fuel between two yields of a running plug-in to the async runtime, so a busy plug-in never
/// holds a worker thread for long (about a millisecond of straight-line code).
const YIELD_EVERY: u64 = 2_000_000;

/// Time a call may overrun its deadline inside a host call before its future is dropped.
const GRACE: Duration = Duration::from_millis(250);

/// Why a component cannot be used, or an execution did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not a usable component (not WebAssembly, not a component, imports
    /// Herald does not grant, or lacks the handler).
    #[error("{0}")]
    Invalid(String),
    /// The execution ran into a limit.
    #[error("plug-in {plugin} was stopped: it exceeded {limit}")]
    Limit {
        /// `name@version`.
        plugin: String,
        /// The limit.
        limit: Limit,
    },
    /// The plug-in trapped (a bug in it, or an instruction it may not run).
    #[error("plug-in {plugin} failed: {message}")]
    Trapped {
        /// `name@version`.
        plugin: String,
        /// Wasmtime's message, shortened.
        message: String,
    },
    /// The host could not run it (compiling, instantiating).
    #[error("plug-in {plugin} could not run: {message}")]
    Host {
        /// `name@version`.
        plugin: String,
        /// Why.
        message: String,
    },
}

impl PluginError {
    /// A short word for metrics and statistics.
    pub fn outcome(&self) -> &'static str {
        match self {
            PluginError::Invalid(_) => "invalid",
            PluginError::Limit { .. } => "limit",
            PluginError::Trapped { .. } => "trap",
            PluginError::Host { .. } => "host",
        }
    }
}

/// What a plug-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Its JSON document (not yet parsed: the caller knows what it should hold).
    Ok(String),
    /// It refused, with its message: a step cancels the event, elsewhere the attempt fails.
    Refused(String),
}

/// One plug-in version as the sandbox names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Its name.
    pub name: String,
    /// Its version number.
    pub version: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A compiled component, ready to instantiate, with its idle warm instances.
pub struct Compiled {
    /// The SHA-256 of its bytes, hex.
    pub hash: String,
    /// The interfaces and functions it exports.
    pub exports: Vec<String>,
    /// The interfaces it imports.
    pub imports: Vec<String>,
    /// Time compiling (or loading from the disk cache) took.
    pub compile_time: Duration,
    /// Whether it came from the disk cache.
    pub from_disk: bool,
    pre: PluginPre<State>,
    warm: Mutex<Vec<Warm>>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("hash", &self.hash)
            .field("exports", &self.exports)
            .finish_non_exhaustive()
    }
}

/// A warm instance.
struct Warm {
    store: Store<State>,
    plugin: Plugin,
    calls: u32,
}

/// The sandbox: one engine, the compiled components, their statistics.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<String, Arc<OnceCell<Arc<Compiled>>>>>,
    stats: Statistics,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of `bytes`, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Sandbox {
    /// A sandbox applying `limits`, caching compiled components in `cache_dir` when given (a
    /// folder only Herald writes: what it holds is run as native code).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(|e| PluginError::Invalid(format!("the plug-in engine cannot start: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s))
            .map_err(|e| PluginError::Invalid(format!("the plug-in host cannot link: {e}")))?;
        if let Some(dir) = &cache_dir {
            if let Err(e) = make_private_dir(dir) {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "the plug-in cache folder cannot be made: components compile at every start");
            }
        }
        let inner = Arc::new(Inner {
            engine,
            linker,
            limits,
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
            stats: Statistics::default(),
        });
        spawn_ticker(Arc::downgrade(&inner));
        Ok(Sandbox { inner })
    }

    /// The limits every execution has.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The statistics of every plug-in version run here.
    pub fn statistics(&self) -> &Statistics {
        &self.inner.stats
    }

    /// Compiles `bytes` (or takes the compiled form from memory or the disk cache), checking
    /// that it is a component of the world `herald:plugin@1.0.0` that imports nothing Herald
    /// does not grant.
    pub async fn compile(&self, bytes: Arc<[u8]>) -> Result<Arc<Compiled>, PluginError> {
        if bytes.len() > self.inner.limits.upload {
            return Err(PluginError::Invalid(format!(
                "the component is {} bytes; at most {} are accepted",
                bytes.len(),
                self.inner.limits.upload
            )));
        }
        let hash = content_hash(&bytes);
        let cell = {
            let mut map = self.inner.compiled.lock().expect("compiled map poisoned");
            map.entry(hash.clone()).or_default().clone()
        };
        let inner = self.inner.clone();
        let compiled = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || compile(&inner, hash, &bytes))
                    .await
                    .map_err(|e| PluginError::Invalid(format!("compiling stopped: {e}")))?
            })
            .await?;
        Ok(compiled.clone())
    }

    /// The compiled form of the component whose SHA-256 is `hash`, if this sandbox has it.
    pub fn compiled(&self, hash: &str) -> Option<Arc<Compiled>> {
        let cell = self
            .inner
            .compiled
            .lock()
            .expect("compiled map poisoned")
            .get(hash)
            .cloned()?;
        cell.get().cloned()
    }

    /// Drops the compiled form of `hash` from memory (its plug-in version was removed).
    pub fn forget(&self, hash: &str) {
        self.inner
            .compiled
            .lock()
            .expect("compiled map poisoned")
            .remove(hash);
    }

    /// Runs `compiled` (`version` of a plug-in) on `input` with `grants`.
    pub async fn run(
        &self,
        compiled: &Compiled,
        version: &Version,
        input: &str,
        grants: Grants,
    ) -> Result<Answer, PluginError> {
        self.run_logged(compiled, version, input, grants).await.0
    }

    /// Runs as [`Sandbox::run`] does, also answering the lines the plug-in logged.
    pub async fn run_logged(
        &self,
        compiled: &Compiled,
        version: &Version,
        input: &str,
        grants: Grants,
    ) -> (Result<Answer, PluginError>, Vec<LogLine>) {
        let started = Instant::now();
        let limits = self.inner.limits;
        let (result, fuel, logs) = self.execute(compiled, version, input, grants).await;
        let refused = matches!(result, Ok(Answer::Refused(_)));
        self.inner.stats.record(
            version,
            started.elapsed(),
            fuel,
            result.as_ref().err(),
            refused,
        );
        let outcome = match &result {
            Ok(Answer::Ok(_)) => "ok",
            Ok(Answer::Refused(_)) => "refused",
            Err(e) => e.outcome(),
        };
        metrics::counter!("herald_plugin_executions_total",
            "plugin" => version.name.clone(), "version" => version.version.to_string(),
            "outcome" => outcome)
        .increment(1);
        metrics::histogram!("herald_plugin_duration_seconds", "plugin" => version.name.clone())
            .record(started.elapsed().as_secs_f64());
        if let Ok(Answer::Ok(text)) = &result {
            if text.len() > limits.answer {
                let limit = PluginError::Limit {
                    plugin: version.to_string(),
                    limit: Limit::Answer(limits.answer),
                };
                return (Err(limit), logs);
            }
        }
        (result, logs)
    }

    /// One execution on a warm or fresh instance; answers the result, the fuel used and the
    /// lines logged.
    async fn execute(
        &self,
        compiled: &Compiled,
        version: &Version,
        input: &str,
        grants: Grants,
    ) -> (Result<Answer, PluginError>, u64, Vec<LogLine>) {
        let limits = self.inner.limits;
        let deadline = Instant::now() + limits.deadline;
        let idle = compiled.warm.lock().expect("warm pool poisoned").pop();
        let mut warm = match idle {
            Some(warm) => warm,
            None => match self.instantiate(compiled, version).await {
                Ok(warm) => warm,
                Err(e) => return (Err(e), 0, Vec::new()),
            },
        };
        {
            let state = warm.store.data_mut();
            state.hit = None;
            state.call = Call {
                plugin: version.to_string(),
                grants,
                deadline: Some(deadline),
                log_lines: 0,
                host_calls: 0,
                logs: Vec::new(),
            };
        }
        if let Err(e) = arm(&mut warm.store, &limits) {
            return (Err(host_error(version, e)), 0, Vec::new());
        }
        let Warm { store, plugin, .. } = &mut warm;
        let call = plugin
            .herald_plugin_handler()
            .call_handle(&mut *store, input);
        let outcome = tokio::time::timeout(limits.deadline + GRACE, call).await;
        let fuel = limits
            .fuel
            .saturating_sub(warm.store.get_fuel().unwrap_or(0));
        let result = match outcome {
            Err(_) => Err(PluginError::Limit {
                plugin: version.to_string(),
                limit: Limit::Deadline(limits.deadline),
            }),
            Ok(Err(e)) => Err(classify(version, warm.store.data().hit, &limits, e)),
            Ok(Ok(Ok(text))) => Ok(Answer::Ok(text)),
            Ok(Ok(Err(message))) => Ok(Answer::Refused(shorten(message, 4096))),
        };
        warm.calls += 1;
        let logs = std::mem::take(&mut warm.store.data_mut().call).logs;
        if limits::reusable(result.is_ok(), warm.calls, MAX_CALLS) {
            let mut pool = compiled.warm.lock().expect("warm pool poisoned");
            if pool.len() < POOL {
                pool.push(warm);
            }
        }
        (result, fuel, logs)
    }

    /// A fresh instance of `compiled`.
    async fn instantiate(
        &self,
        compiled: &Compiled,
        version: &Version,
    ) -> Result<Warm, PluginError> {
        let limits = self.inner.limits;
        let mut store = Store::new(&self.inner.engine, State::new(limits));
        store.limiter(|state| state);
        arm(&mut store, &limits).map_err(|e| host_error(version, e))?;
        let instantiated = tokio::time::timeout(
            limits.deadline + GRACE,
            compiled.pre.instantiate_async(&mut store),
        )
        .await;
        match instantiated {
            Ok(Ok(plugin)) => Ok(Warm {
                store,
                plugin,
                calls: 0,
            }),
            Ok(Err(e)) => Err(classify(version, store.data().hit, &limits, e)),
            Err(_) => Err(PluginError::Limit {
                plugin: version.to_string(),
                limit: Limit::Deadline(limits.deadline),
            }),
        }
    }
}

/// Gives `store` a full budget for one call: fuel, yields, and the deadline in epochs.
fn arm(store: &mut Store<State>, limits: &Limits) -> wasmtime::Result<()> {
    store.set_fuel(limits.fuel)?;
    store.fuel_async_yield_interval(Some(YIELD_EVERY))?;
    store.epoch_deadline_trap();
    store.set_epoch_deadline(limits::deadline_ticks(limits.deadline, TICK));
    Ok(())
}

/// What an execution's error means: a limit it ran into, or a trap of its own.
fn classify(
    version: &Version,
    hit: Option<Limit>,
    limits: &Limits,
    e: wasmtime::Error,
) -> PluginError {
    let limit = hit.or_else(|| match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Some(Limit::Fuel(limits.fuel)),
        Some(Trap::Interrupt) => Some(Limit::Deadline(limits.deadline)),
        _ => None,
    });
    match limit {
        Some(limit) => PluginError::Limit {
            plugin: version.to_string(),
            limit,
        },
        None => PluginError::Trapped {
            plugin: version.to_string(),
            message: shorten(format!("{e:#}"), 1024),
        },
    }
}

fn host_error(version: &Version, e: wasmtime::Error) -> PluginError {
    PluginError::Host {
        plugin: version.to_string(),
        message: e.to_string(),
    }
}

/// `text` cut to at most `max` bytes, on a character boundary, `…` when cut.
pub(crate) fn shorten(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    crate::model::exchange::start_of(text.as_bytes(), max)
}

/// Compiles `bytes` (blocking: run on a blocking thread).
fn compile(inner: &Inner, hash: String, bytes: &[u8]) -> Result<Arc<Compiled>, PluginError> {
    let started = Instant::now();
    let cached = inner.cache_dir.as_ref().map(|dir| {
        dir.join(format!(
            "{hash}-{}.cwasm",
            engine_fingerprint(&inner.engine)
        ))
    });
    let mut from_disk = false;
    let mut component = None;
    if let Some(path) = cached.as_ref().filter(|p| p.exists()) {
        // SAFETY: the file was written by `Component::serialize` of an engine with the same
        // compatibility hash (in its name), into a folder made private to Herald's user; its
        // name carries the SHA-256 of the component it was compiled from. Wasmtime checks
        // the engine's version and settings in the file's header as well.
        match unsafe { Component::deserialize_file(&inner.engine, path) } {
            Ok(c) => {
                component = Some(c);
                from_disk = true;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a cached plug-in was unusable: compiling it again");
            }
        }
    }
    let component = match component {
        Some(c) => c,
        None => {
            if !is_component(bytes) {
                return Err(PluginError::Invalid(if is_core_module(bytes) {
                    "this is a core WebAssembly module, not a component: build it for the WIT world herald:plugin@1.0.0 (componentize-js, componentize-py, cargo component)".into()
                } else {
                    "this is not a WebAssembly component".into()
                }));
            }
            let component = Component::new(&inner.engine, bytes)
                .map_err(|e| PluginError::Invalid(format!("the component is not valid: {e:#}")))?;
            if let Some(path) = &cached {
                if let Err(e) = component
                    .serialize()
                    .map_err(std::io::Error::other)
                    .and_then(|code| write_atomically(path, &code))
                {
                    tracing::warn!(path = %path.display(), error = %e, "the compiled plug-in was not cached");
                }
            }
            component
        }
    };
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(&inner.engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(&inner.engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let pre = inner.linker.instantiate_pre(&component).map_err(|e| {
        PluginError::Invalid(format!(
            "the component imports what Herald does not grant (Herald grants herald:plugin/host@1.0.0 and WASI 0.2 without files, environment or sockets): {e:#}"
        ))
    })?;
    let pre = PluginPre::new(pre).map_err(|e| {
        PluginError::Invalid(format!(
            "the component does not export {HANDLER} with `handle: func(input: string) -> result<string, string>`: {e:#}"
        ))
    })?;
    Ok(Arc::new(Compiled {
        hash,
        exports,
        imports,
        compile_time: started.elapsed(),
        from_disk,
        pre,
        warm: Mutex::new(Vec::new()),
    }))
}

/// The preamble of a binary WebAssembly component: the magic, then version 13, layer 1.
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x0d\0\x01\0")
}

/// The preamble of a binary core WebAssembly module: the magic, then version 1.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x01\0\0\0")
}

/// A short, stable name for the engine's compatibility (version and settings) within one build.
fn engine_fingerprint(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Makes `dir`, readable and writable by Herald's user only.
fn make_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Advances the engine's epoch every [`TICK`] while the sandbox lives.
fn spawn_ticker(inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("herald-plugin-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match inner.upgrade() {
                Some(inner) => inner.engine.increment_epoch(),
                None => return,
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the plug-in deadline thread cannot start: plug-ins are stopped by fuel alone");
    }
}
