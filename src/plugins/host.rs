//! The state of one instance and the capabilities of the WIT world `herald:plugin@1.0.0`
//! (`wit/plugin.wit`): logging, emitting, HTTP. WASI is linked for the runtimes that
//! componentize-js and componentize-py embed, with no files, environment, arguments or sockets;
//! stdout and stderr are discarded; clocks and randomness are the host's.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::grants::{self, Grants};
use super::limits::{self, Limit, Limits};

wasmtime::component::bindgen!({
    path: "wit/plugin.wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::herald::plugin::host::Level;

/// What one instance holds: its WASI context, its limits, and what the current call grants.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    /// The limit an execution ran into, set where it is detected.
    pub hit: Option<Limit>,
    /// The current call.
    pub call: Call,
}

/// What the current call grants and has used.
#[derive(Debug, Default)]
pub struct Call {
    /// The plug-in, as logs name it (`name@version`).
    pub plugin: String,
    /// Its grants.
    pub grants: Grants,
    /// When the call must end.
    pub deadline: Option<Instant>,
    /// Log lines written.
    pub log_lines: u32,
    /// `fetch` and `emit` calls made.
    pub host_calls: u32,
    /// The lines logged, as written (for the execution's trace).
    pub logs: Vec<LogLine>,
}

/// A line a plug-in logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The line, at most 2 KiB.
    pub message: String,
}

impl State {
    /// An instance's state under `limits`.
    pub fn new(limits: Limits) -> Self {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            limits,
            hit: None,
            call: Call::default(),
        }
    }

    /// Counts a host call, refusing it beyond the limit.
    fn host_call(&mut self) -> Result<(), String> {
        self.call.host_calls += 1;
        if self.call.host_calls > self.limits.host_calls {
            let limit = Limit::HostCalls(self.limits.host_calls);
            return Err(format!("refused: the plug-in reached {limit}"));
        }
        Ok(())
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match limits::memory_may_grow(&self.limits, desired) {
            Ok(()) => Ok(true),
            Err(limit) => {
                // A trap, not `memory.grow` answering -1: runtimes that get -1 abort with a
                // message that does not name the cause.
                self.hit = Some(limit);
                Err(wasmtime::format_err!("the plug-in exceeded {limit}"))
            }
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match limits::table_may_grow(&self.limits, desired) {
            Ok(()) => Ok(true),
            Err(limit) => {
                self.hit = Some(limit);
                Err(wasmtime::format_err!("the plug-in exceeded {limit}"))
            }
        }
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        self.limits.tables
    }

    fn memories(&self) -> usize {
        self.limits.memories
    }
}

/// The longest log line kept, in bytes.
const LOG_LINE: usize = 2048;

impl self::herald::plugin::host::Host for State {
    async fn log(&mut self, level: Level, message: String) {
        self.call.log_lines += 1;
        if self.call.log_lines > self.limits.log_lines {
            return;
        }
        let message = super::shorten(message, LOG_LINE);
        let plugin = self.call.plugin.as_str();
        self.call.logs.push(LogLine {
            level: match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            },
            message: message.clone(),
        });
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    async fn emit(&mut self, name: String, params: String) -> Result<String, String> {
        self.host_call()?;
        let Some(emitter) = self.call.grants.emit.clone() else {
            return Err("emitting events is not granted where this plug-in runs".into());
        };
        let Some(solution) = self.call.grants.solution.clone() else {
            return Err("the plug-in belongs to no solution: it cannot emit events".into());
        };
        let params = match serde_json::from_str(&params) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err("params must be a JSON object".into()),
            Err(e) => return Err(format!("params are not valid JSON: {e}")),
        };
        let depth = self.call.grants.depth.saturating_add(1);
        emitter.emit(&solution, &name, params, depth).await
    }

    async fn fetch(
        &mut self,
        request: self::herald::plugin::host::Request,
    ) -> Result<self::herald::plugin::host::Response, String> {
        self.host_call()?;
        let Some(fetcher) = self.call.grants.fetch.clone() else {
            return Err("HTTP is not granted where this plug-in runs".into());
        };
        let url = url::Url::parse(&request.url).map_err(|e| format!("invalid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("refused: `{}` is not http or https", url.scheme()));
        }
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !grants::host_allowed(&self.call.grants.allowed_hosts, host) {
            return Err(format!(
                "refused: `{host}` is not among the hosts this registration allows"
            ));
        }
        let timeout = self
            .call
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(self.limits.deadline);
        let answer = fetcher
            .fetch(grants::Request {
                method: request.method,
                url,
                headers: request.headers,
                body: request.body,
                timeout,
            })
            .await?;
        Ok(self::herald::plugin::host::Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}
