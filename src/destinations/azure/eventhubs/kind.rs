//! The Event Hubs kind: an event hub of a namespace, over AMQP 1.0, optionally to one fixed
//! partition. Its input as the API takes it; the checks, the view and the credential rules are
//! the Azure family's ([`super::super::input`]), the sender is this folder's.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use super::super::input::{checked_settings, view, AzureInput};
use super::EventHubsDestination;
use crate::destinations::kind::{Checks, InputError, Kind, Made, Unbuildable};
use crate::destinations::view::DestinationView;
use crate::destinations::{Destination, Destinations};
use crate::model::{AzureCredential, AzureSettings};

/// The Event Hubs kind.
pub struct EventHubs;

/// An Event Hubs endpoint's fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventHubsInput {
    /// A connection string as the Azure portal or an emulator prints it
    /// (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…]
    /// [;UseDevelopmentEmulator=true]`). Write-only; kept when absent on update. Or give
    /// `namespace` and `credential`.
    #[serde(default)]
    pub connection_string: Option<String>,
    /// The namespace, `contoso.servicebus.windows.net` (`sb://` or `amqps://` with a port are
    /// accepted; `amqp://host:port` is a local emulator).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The event hub.
    #[serde(default)]
    pub entity: Option<String>,
    /// How to authenticate, as for Service Bus. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<AzureCredential>,
    /// Send every event to this partition.
    #[serde(default)]
    pub partition_id: Option<String>,
}

impl Kind for EventHubs {
    type Input = EventHubsInput;
    type Settings = AzureSettings;

    async fn settings(
        input: &EventHubsInput,
        old: Option<&AzureSettings>,
        checks: Checks<'_>,
    ) -> Result<Made<AzureSettings>, InputError> {
        let given = AzureInput {
            connection_string: input.connection_string.as_deref(),
            namespace: input.namespace.as_deref(),
            entity: input.entity.as_deref(),
            credential: input.credential.clone(),
            partition_id: input.partition_id.as_deref(),
        };
        Ok(Made {
            settings: checked_settings(given, old, checks).await?,
            generated: None,
        })
    }

    fn view(settings: &AzureSettings) -> DestinationView {
        view(settings)
    }

    fn sender(
        settings: &AzureSettings,
        destinations: &Destinations,
    ) -> Result<Arc<dyn Destination>, Unbuildable> {
        Ok(Arc::new(EventHubsDestination::new(
            settings,
            destinations.webhooks().policy(),
        )?))
    }
}
