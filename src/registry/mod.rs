//! The registry: endpoints and subscriptions. It creates, replaces and deletes them, checks
//! them against the catalog and the network policy, and refreshes the routing snapshot itself
//! after every change, so no caller has to remember to. The HTTP API, the flows API, the
//! configuration loader and the demo all go through it.

mod endpoints;
mod error;
mod health;
mod lookups;
mod plugins;
mod routing;
mod row_options;
mod spec;
mod subscriptions;

use std::sync::Arc;

pub use crate::destinations::webhook::{HeaderInput, Signing};
pub use error::RegistryError;
pub use health::HealthBoard;
pub use lookups::Lookups;
pub use plugins::{PluginLibrary, PluginVersionView, PluginView, PushInput};
pub use routing::Routing;
pub use spec::{EndpointInput, SubscriptionInput};

use crate::catalog::Catalog;
use crate::destinations::network::NetworkPolicy;
use crate::store::{Store, StoreError};

/// Endpoints and subscriptions, with their rules. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    catalog: Catalog,
    policy: NetworkPolicy,
    routing: Routing,
    health: HealthBoard,
    /// The longest time an endpoint may give its receiver to answer.
    max_timeout: std::time::Duration,
    /// The sandbox plug-ins are checked and run in; `None` when plug-ins are off.
    sandbox: Option<crate::plugins::Sandbox>,
}

/// The longest receiver timeout by default: half the default lease (2m), so an attempt ends
/// well before its delivery's lease, and no other dispatcher sends it meanwhile.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Registry {
    /// A registry over `store`, checking subscriptions against `catalog` and webhook URLs
    /// against `policy`, keeping `routing` current.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Catalog,
        policy: NetworkPolicy,
        routing: Routing,
    ) -> Self {
        Self {
            store,
            catalog,
            policy,
            routing,
            health: HealthBoard::default(),
            max_timeout: MAX_TIMEOUT,
            sandbox: None,
        }
    }

    /// The same registry, checking pushed plug-ins in `sandbox`.
    pub fn with_sandbox(mut self, sandbox: crate::plugins::Sandbox) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// The same registry, allowing endpoint timeouts up to `max` (half the delivery lease).
    pub fn with_max_timeout(mut self, max: std::time::Duration) -> Self {
        self.max_timeout = max;
        self
    }

    /// The routing snapshot this registry keeps current.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Reads the subscriptions and the endpoints' health again (another instance changed
    /// them).
    pub async fn reload(&self) -> Result<(), StoreError> {
        self.routing.reload(self.store.as_ref()).await?;
        self.health
            .replace(self.store.health().health_records().await?);
        Ok(())
    }
}
