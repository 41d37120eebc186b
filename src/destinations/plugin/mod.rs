//! The plug-in kind (`kind.rs`): its sender runs an asynchronous plug-in for each delivery,
//! with the retries, dead letters, health and attempt log of any destination; `fetch.rs` is
//! the HTTP plug-ins may make. [`PluginRuntime`] is what every place that runs plug-ins
//! shares: the sandbox, where versions are found, and the capabilities it may grant.

mod fetch;
pub mod kind;
mod transform;

pub use fetch::HttpFetch;
pub use kind::{check_plugin_name, Plugin, PluginInput};
pub use transform::{apply, reshaping, transform, Reshaping};

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map};

use super::{Destination, Outbound, Outcome, SendError};
use crate::model::{Exchange, PluginSettings};
use crate::plugins::document::{self, Purpose};
use crate::plugins::{
    Answer, Emit, Fetch, Grants, Library, LoadError, Loaded, PluginError, Sandbox,
};

/// What running plug-ins needs, shared by asynchronous plug-ins, steps and transformations.
#[derive(Clone)]
pub struct PluginRuntime {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// Where versions are found.
    pub library: Arc<dyn Library>,
    /// Emitting events, for the plug-ins that run where emitting is allowed.
    pub emit: Option<Arc<dyn Emit>>,
    /// HTTP through the network policy.
    pub fetch: Arc<dyn Fetch>,
}

impl PluginRuntime {
    /// The version `settings` run.
    pub async fn load(&self, settings: &PluginSettings) -> Result<Loaded, LoadError> {
        self.library.load(&settings.plugin, settings.version).await
    }

    /// What a plug-in of `loaded` registered with `settings` may do while handling an event at
    /// `depth`.
    pub fn grants(&self, loaded: &Loaded, settings: &PluginSettings, depth: u32) -> Grants {
        Grants {
            solution: Some(loaded.solution.clone()),
            depth,
            emit: self.emit.clone(),
            fetch: Some(self.fetch.clone()),
            allowed_hosts: settings.allowed_hosts.clone(),
        }
    }

    /// Runs the registration `settings` on `input` (made by [`document::input`] for
    /// `loaded`), granting what a plug-in may do at `depth`.
    pub async fn run(
        &self,
        loaded: &Loaded,
        settings: &PluginSettings,
        depth: u32,
        input: &str,
    ) -> Result<Answer, PluginError> {
        self.run_logged(loaded, settings, depth, input).await.0
    }

    /// Runs as [`PluginRuntime::run`] does, also answering the lines the plug-in logged.
    pub async fn run_logged(
        &self,
        loaded: &Loaded,
        settings: &PluginSettings,
        depth: u32,
        input: &str,
    ) -> (Result<Answer, PluginError>, Vec<crate::plugins::LogLine>) {
        let grants = self.grants(loaded, settings, depth);
        self.sandbox
            .run_logged(&loaded.compiled, &loaded.version, input, grants)
            .await
    }
}

/// One plug-in registration as a destination: each delivery runs the plug-in once.
pub struct PluginDestination {
    pub(super) settings: PluginSettings,
    pub(super) runtime: PluginRuntime,
}

fn failed(message: String) -> SendError {
    SendError::Plugin(Arc::from(message))
}

#[async_trait]
impl Destination for PluginDestination {
    async fn send(&self, message: &Outbound<'_>, exchange: &mut Exchange) -> Outcome {
        let loaded = match self.runtime.load(&self.settings).await {
            Ok(loaded) => loaded,
            Err(e @ LoadError::Missing(_)) | Err(e @ LoadError::Unusable(_)) => {
                exchange.target = format!("plug-in {}", self.settings.plugin);
                return Outcome::Permanent {
                    error: failed(e.to_string()),
                    status: None,
                };
            }
            Err(e @ LoadError::Store { .. }) => {
                exchange.target = format!("plug-in {}", self.settings.plugin);
                return Outcome::Retry {
                    error: failed(e.to_string()),
                    status: None,
                    retry_after: None,
                };
            }
        };
        exchange.target = format!("plug-in {}", loaded.version);
        let event = &message.event.event;
        let doc = document::event(event, &event.params, &event.pipeline.shared_variables);
        let mut extra = Map::new();
        extra.insert(
            "delivery".into(),
            json!({"id": message.delivery_id.to_string(), "subscription": message.subscription_id.to_string()}),
        );
        let input = document::input(Purpose::Async, &loaded.version, &self.settings, doc, extra);
        let answer = self
            .runtime
            .run(&loaded, &self.settings, event.depth, &input)
            .await;
        match answer {
            Ok(Answer::Ok(text)) => {
                exchange.response = Some(shorten(&text));
                Outcome::Delivered { status: None }
            }
            Ok(Answer::Refused(reason)) => {
                exchange.response = Some(shorten(&reason));
                Outcome::Retry {
                    error: failed(format!("plug-in {} refused: {reason}", loaded.version)),
                    status: None,
                    retry_after: None,
                }
            }
            Err(e) => Outcome::Retry {
                error: failed(e.to_string()),
                status: None,
                retry_after: None,
            },
        }
    }
}

/// The start of a plug-in's answer, as the attempt log keeps it.
fn shorten(text: &str) -> String {
    crate::model::exchange::start_of(text.as_bytes(), crate::model::exchange::BODY_START)
}
