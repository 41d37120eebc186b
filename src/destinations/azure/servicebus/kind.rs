//! The Service Bus kind: a queue or topic of a namespace, over AMQP 1.0. Its input as the API
//! takes it; the checks, the view and the credential rules are the Azure family's
//! ([`super::super::input`]), the sender is this folder's.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use super::super::input::{checked_settings, view, AzureInput};
use crate::destinations::kind::{Checks, InputError, Kind, Made, Unbuildable};
use crate::destinations::view::DestinationView;
use crate::destinations::{Destination, Destinations};
use crate::model::{AzureCredential, AzureSettings};

/// The Service Bus kind.
pub struct ServiceBus;

/// A Service Bus endpoint's fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBusInput {
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
    /// The queue or topic.
    #[serde(default)]
    pub entity: Option<String>,
    /// How to authenticate: `{"type": "sas_key", "key_name", "key"}`, `{"type": "sas_token",
    /// "token"}`, `{"type": "managed_identity", "client_id"?}`, `{"type": "workload_identity"}`,
    /// `{"type": "client_secret", "tenant_id", "client_id", "client_secret"}`,
    /// `{"type": "azure_cli"}` or `{"type": "default"}`. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<AzureCredential>,
}

impl Kind for ServiceBus {
    type Input = ServiceBusInput;
    type Settings = AzureSettings;

    async fn settings(
        input: &ServiceBusInput,
        old: Option<&AzureSettings>,
        checks: Checks<'_>,
    ) -> Result<Made<AzureSettings>, InputError> {
        let given = AzureInput {
            connection_string: input.connection_string.as_deref(),
            namespace: input.namespace.as_deref(),
            entity: input.entity.as_deref(),
            credential: input.credential.clone(),
            partition_id: None,
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
        let d = destinations
            .service_bus
            .destination(settings, destinations.webhooks().policy())?;
        Ok(Arc::new(d))
    }
}
