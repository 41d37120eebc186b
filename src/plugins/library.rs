//! Where the sandbox's callers find a plug-in version: the registry implements [`Library`]
//! over the store (with a cache refreshed when any instance pushes a version), so the
//! destinations and the steps that run plug-ins need not know the store.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Compiled, PluginError, Version};

/// A plug-in version ready to run.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Which one.
    pub version: Version,
    /// Its solution.
    pub solution: String,
    /// Its compiled component.
    pub compiled: Arc<Compiled>,
}

/// Why a plug-in version cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No such plug-in or version (removed since the registration was made).
    #[error("plug-in {0} does not exist")]
    Missing(String),
    /// Its component cannot be used.
    #[error(transparent)]
    Unusable(#[from] PluginError),
    /// The store did not answer; try again.
    #[error("plug-in {name} cannot be read from the store: {message}")]
    Store {
        /// `name` or `name@version`.
        name: String,
        /// The store's error.
        message: String,
    },
}

/// Finds plug-in versions.
#[async_trait]
pub trait Library: Send + Sync {
    /// Version `version` of `name`, or its latest when `None`.
    async fn load(&self, name: &str, version: Option<u32>) -> Result<Loaded, LoadError>;
}
