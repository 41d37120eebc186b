//! Where a Service Bus or Event Hubs endpoint sends, and as whom: the namespace, the entity
//! and the credential, read from the endpoint's fields or from a connection string in the
//! form Microsoft prints (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`,
//! optionally `EntityPath=…` and `UseDevelopmentEmulator=true`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value: kept and sent, never shown (`Debug` and views redact it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, to sign or send with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How Herald authenticates to a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AzureCredential {
    /// A shared access policy's key: Herald signs its own SAS tokens and renews them.
    SasKey {
        /// The policy's name, e.g. `RootManageSharedAccessKey`.
        key_name: String,
        /// The policy's key.
        key: SecretString,
    },
    /// A ready-made `SharedAccessSignature sr=…&sig=…&se=…&skn=…` token; used until it expires.
    SasToken {
        /// The token.
        token: SecretString,
    },
    /// Microsoft Entra ID through a managed identity (system-assigned, or the user-assigned
    /// one with `client_id`).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Microsoft Entra ID through workload identity federation (AKS); ids default to
    /// `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`, the token file to `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        /// The application's client id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// The tenant id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
    },
    /// Microsoft Entra ID through an application's client secret.
    ClientSecret {
        /// The tenant id.
        tenant_id: String,
        /// The application's client id.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
    },
    /// Microsoft Entra ID through the signed-in Azure CLI (`az login`), for development.
    AzureCli,
    /// Microsoft Entra ID through whatever identity this host has: workload identity when
    /// `AZURE_FEDERATED_TOKEN_FILE` is set, a client secret when `AZURE_CLIENT_SECRET` is, a
    /// managed identity when the platform announces one (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`),
    /// otherwise the developer tools (Azure CLI, Azure Developer CLI).
    Default,
}

impl AzureCredential {
    /// The type name and its non-secret details, for views.
    pub fn describe(&self) -> (String, Option<String>) {
        match self {
            AzureCredential::SasKey { key_name, .. } => ("sas_key".into(), Some(key_name.clone())),
            AzureCredential::SasToken { .. } => ("sas_token".into(), None),
            AzureCredential::ManagedIdentity { client_id } => {
                ("managed_identity".into(), client_id.clone())
            }
            AzureCredential::WorkloadIdentity { client_id, .. } => {
                ("workload_identity".into(), client_id.clone())
            }
            AzureCredential::ClientSecret { client_id, .. } => {
                ("client_secret".into(), Some(client_id.clone()))
            }
            AzureCredential::AzureCli => ("azure_cli".into(), None),
            AzureCredential::Default => ("default".into(), None),
        }
    }
}

/// A Service Bus or Event Hubs endpoint's settings (secrets included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureSettings {
    /// The namespace's host name, e.g. `contoso.servicebus.windows.net` or `localhost`.
    pub host: String,
    /// The AMQP port, when not the standard one (5671 with TLS, 5672 for an emulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Plain AMQP without TLS, as with `UseDevelopmentEmulator=true` (local emulators only).
    #[serde(default)]
    pub emulator: bool,
    /// The queue, topic or event hub.
    pub entity: String,
    /// How to authenticate.
    pub credential: AzureCredential,
    /// Event Hubs: send every message to this partition (otherwise by partition key, or
    /// spread by the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_id: Option<String>,
}

impl AzureSettings {
    /// The AMQP URL to connect to: `amqps://host:5671` or, for an emulator, `amqp://host:5672`.
    pub fn amqp_url(&self) -> String {
        let scheme = if self.emulator { "amqp" } else { "amqps" };
        format!("{scheme}://{}:{}", self.host, self.amqp_port())
    }

    /// The AMQP port: the given one, else 5671 with TLS or 5672 for an emulator.
    pub fn amqp_port(&self) -> u16 {
        self.port.unwrap_or(if self.emulator { 5672 } else { 5671 })
    }

    /// The entity's claims-based-security audience (and SAS resource): `sb://host[:port]/entity`.
    pub fn audience(&self) -> String {
        match self.port {
            Some(port) => format!("sb://{}:{port}/{}", self.host, self.entity),
            None => format!("sb://{}/{}", self.host, self.entity),
        }
    }

    /// The namespace as `from_input` reads it back (`sb://host[:port]`, or `amqp://…` for an emulator).
    pub fn namespace(&self) -> String {
        let scheme = if self.emulator { "amqp" } else { "sb" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// Where the entity lives, for messages and logs (no secrets).
    pub fn describe(&self) -> String {
        format!("{}/{}", self.amqp_url(), self.entity)
    }
}
