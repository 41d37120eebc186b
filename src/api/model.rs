//! What the admin API (and the configuration file) takes and gives for endpoints and
//! subscriptions. Views never carry secrets.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::destinations::DestinationSettings;
use crate::ids::{EndpointId, SecretId};
use crate::store::Endpoint;
use crate::subscriptions::{Filter, MessageFormat};

/// The kinds of endpoint.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// An HTTP receiver, signed per Standard Webhooks.
    #[default]
    Webhook,
    /// An Azure Service Bus queue or topic, over AMQP 1.0.
    ServiceBus,
    /// An Azure event hub, over AMQP 1.0.
    EventHubs,
}

/// An endpoint to create or replace.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Unique name.
    pub name: String,
    /// Kind of destination.
    pub kind: EndpointKind,
    /// The receiver's URL (webhooks).
    #[serde(default)]
    pub url: Option<String>,
    /// A signing secret `whsec_<base64 of 24 to 64 bytes>`. Generated when absent at creation
    /// (and shown once in the answer); when absent at update, the secrets stay as they are.
    #[serde(default)]
    pub secret: Option<String>,
    /// Time the receiver has to answer, e.g. `"10s"`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub timeout: Option<Duration>,
    /// Deliveries in flight at once to this endpoint.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub max_concurrency: Option<NonZeroU32>,
    /// Dataverse's webhook authentication, sent besides the signature:
    /// `{"type": "HttpHeader", "values": {…}}`, `{"type": "WebhookKey", "key": "…"}` or
    /// `{"type": "HttpQueryString", "values": {…}}`. Write-only; kept when absent on update.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<crate::destinations::webhook::WebhookAuth>,
    /// Service Bus and Event Hubs: a connection string as the Azure portal or an emulator
    /// prints it (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…]
    /// [;UseDevelopmentEmulator=true]`). Write-only; kept when absent on update. Or give
    /// `namespace` and `credential`.
    #[serde(default)]
    pub connection_string: Option<String>,
    /// Service Bus and Event Hubs: the namespace, `contoso.servicebus.windows.net`
    /// (`sb://` or `amqps://` with a port are accepted; `amqp://host:port` is a local emulator).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service Bus: the queue or topic; Event Hubs: the event hub.
    #[serde(default)]
    pub entity: Option<String>,
    /// Service Bus and Event Hubs: how to authenticate: `{"type": "sas_key", "key_name", "key"}`,
    /// `{"type": "sas_token", "token"}`, `{"type": "managed_identity", "client_id"?}`,
    /// `{"type": "workload_identity"}`, `{"type": "client_secret", "tenant_id", "client_id",
    /// "client_secret"}`, `{"type": "azure_cli"}` or `{"type": "default"}`. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<crate::destinations::azure::AzureCredential>,
    /// Event Hubs: send every event to this partition.
    #[serde(default)]
    pub partition_id: Option<String>,
}

/// One signing secret, without its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretView {
    /// Its id (to retire it).
    pub id: SecretId,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An endpoint as the API shows it: no secret values.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    /// Its id.
    pub id: EndpointId,
    /// Its name.
    pub name: String,
    /// Kind of destination.
    pub kind: EndpointKind,
    /// The receiver's URL.
    pub url: Option<String>,
    /// Active signing secrets (ids only).
    pub secrets: Vec<SecretView>,
    /// Time the receiver has to answer.
    #[schema(value_type = Option<String>)]
    pub timeout: Option<String>,
    /// Deliveries in flight at once.
    pub max_concurrency: Option<u32>,
    /// The authentication type and the header or parameter names it sets (never values).
    pub auth: Option<AuthView>,
    /// Service Bus and Event Hubs: the AMQP address of the namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service Bus and Event Hubs: the queue, topic or hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Service Bus and Event Hubs: the credential's type and its key name or client id (never secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialView>,
    /// Event Hubs: the fixed partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_id: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        let mut view = EndpointView {
            id: e.id,
            name: e.name.clone(),
            kind: EndpointKind::Webhook,
            url: None,
            secrets: Vec::new(),
            timeout: None,
            max_concurrency: e.max_concurrency,
            auth: None,
            namespace: None,
            entity: None,
            credential: None,
            partition_id: None,
            created_at: e.created_at,
            updated_at: e.updated_at,
        };
        match &e.settings {
            DestinationSettings::Webhook(w) => {
                view.url = Some(w.url.clone());
                view.secrets = w
                    .secrets
                    .iter()
                    .map(|s| SecretView {
                        id: s.id,
                        created_at: s.created_at,
                    })
                    .collect();
                view.timeout = w.timeout.map(|t| humantime::format_duration(t).to_string());
                view.auth = w.auth.as_ref().map(|a| {
                    let (kind, names) = a.describe();
                    AuthView { kind, names }
                });
            }
            DestinationSettings::ServiceBus(a) | DestinationSettings::EventHubs(a) => {
                view.kind = if matches!(e.settings, DestinationSettings::ServiceBus(_)) {
                    EndpointKind::ServiceBus
                } else {
                    EndpointKind::EventHubs
                };
                view.namespace = Some(a.amqp_url());
                view.entity = Some(a.entity.clone());
                let (kind, id) = a.credential.describe();
                view.credential = Some(CredentialView { kind, id });
                view.partition_id = a.partition_id.clone();
            }
        }
        view
    }
}

/// A Service Bus or Event Hubs credential without its secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialView {
    /// `sas_key`, `sas_token`, `managed_identity`, `workload_identity`, `client_secret`,
    /// `azure_cli` or `default`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The key name (SAS key) or client id (Entra ID), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// An endpoint's authentication without its values.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthView {
    /// `HttpHeader`, `WebhookKey` or `HttpQueryString`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The header or query parameter names it sets.
    pub names: Vec<String>,
}

/// The answer to creating an endpoint or adding a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    pub endpoint: EndpointView,
    /// A secret Herald generated: shown this once, never again. Absent when you gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
}

/// A secret to add to an endpoint (rotation).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// `whsec_…`; generated (and shown once) when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A subscription to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Unique name; generated when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// A cataloged event's unique name (or give `category`).
    #[serde(default)]
    pub event: Option<String>,
    /// A category: every event cataloged in it (with `solution`).
    #[serde(default)]
    pub category: Option<String>,
    /// The solution of `category` (optional when only one solution has such a category).
    #[serde(default)]
    pub solution: Option<String>,
    /// The endpoint, by id or name.
    pub endpoint: String,
    /// Message format.
    #[serde(default)]
    pub format: MessageFormat,
    /// Conditions on parameter values; all must hold.
    #[serde(default)]
    pub filter: Filter,
    /// Whether it is active (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Order among the subscriptions of one event, lower first (default 1).
    #[serde(default)]
    pub rank: Option<i32>,
    /// `async` (default): a delivery after the event is stored. `sync`: a webhook called in
    /// the request path before the event is stored, whose refusal cancels the event; only on
    /// events that allow `sync_and_async` steps.
    #[serde(default)]
    pub mode: crate::subscriptions::Mode,
    /// Stage of a synchronous step: `pre_validation` or `pre_operation` (default).
    #[serde(default)]
    pub stage: Option<crate::subscriptions::Stage>,
    /// Service Bus and Event Hubs endpoints: parameters promoted to application properties,
    /// session id and partition key parameters, time to live.
    #[serde(default)]
    pub amqp: crate::subscriptions::AmqpOptions,
}
