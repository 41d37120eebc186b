//! What a user declares for an endpoint or a subscription, in the admin API's bodies and in
//! the configuration file alike; the registry checks it and turns it into the model's records.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::model::{
    AmqpOptions, AzureCredential, EndpointKind, Filter, MessageFormat, Mode, Stage, WebhookAuth,
};

/// Which Standard Webhooks signatures an endpoint's generated keys make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// HMAC-SHA256 with a shared `whsec_` secret.
    V1,
    /// ed25519: receivers verify with the published `whpk_` public key.
    V1a,
    /// Both, so receivers of either kind verify.
    Both,
}

/// A static header of a webhook endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderInput {
    /// Its name (not one Herald sets: `webhook-*`, `herald-*`, `content-type`…).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Its value; may be left out for a secret header that keeps its value.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub value: Option<String>,
    /// Whether the value is a secret (write-only).
    #[serde(default)]
    pub secret: bool,
}

/// An endpoint to create or replace.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Unique name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Kind of destination.
    pub kind: EndpointKind,
    /// The receiver's URL (webhooks).
    #[serde(default)]
    #[schema(format = "uri")]
    pub url: Option<String>,
    /// A signing secret: `whsec_<base64 of 24 to 64 bytes>` (HMAC, `v1` signatures) or
    /// `whsk_<base64 of a 32-byte ed25519 seed>` (`v1a`). Generated when absent at creation
    /// (see `signing`; a `whsec_` is shown once in the answer, a `whsk_` never: receivers need
    /// only its public key); when absent at update, the secrets stay as they are.
    #[serde(default)]
    #[schema(
        pattern = r"^(?:whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/][AQgw]==)|whsk_(?:[A-Za-z0-9+/]{4}){10}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$"
    )]
    pub secret: Option<String>,
    /// Webhooks: which signatures Herald generates keys for when `secret` is absent at
    /// creation: `v1` (HMAC, default), `v1a` (ed25519) or `both`.
    #[serde(default)]
    pub signing: Option<Signing>,
    /// Webhooks: static headers sent with every request, beside `auth`. A header marked
    /// `secret` is write-only: never shown again, and on update, giving it without a `value`
    /// keeps the value it had. When absent at update, the headers stay as they are.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub headers: Option<Vec<HeaderInput>>,
    /// Webhooks: `cloudevents` to make the CloudEvents abuse-protection handshake (an
    /// `OPTIONS` request) before the first delivery; nothing is delivered until the receiver
    /// grants. `none` (default) delivers without asking.
    #[serde(default)]
    pub validation: Option<crate::model::Validation>,
    /// Time the receiver has to answer, e.g. `"10s"`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub timeout: Option<Duration>,
    /// Deliveries per second to this endpoint, all instances together, with an optional
    /// burst: `{"per_second": 200, "burst": 10}`. A receiver's `429` with `Retry-After`
    /// lowers it for a while.
    #[serde(default)]
    pub rate_limit: Option<crate::model::RateLimit>,
    /// Deliveries in flight at once to this endpoint.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295.0)]
    pub max_concurrency: Option<NonZeroU32>,
    /// Dataverse's webhook authentication, sent besides the signature:
    /// `{"type": "HttpHeader", "values": {…}}`, `{"type": "WebhookKey", "key": "…"}` or
    /// `{"type": "HttpQueryString", "values": {…}}`. Write-only; kept when absent on update.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<WebhookAuth>,
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
    pub credential: Option<AzureCredential>,
    /// Event Hubs: send every event to this partition.
    #[serde(default)]
    pub partition_id: Option<String>,
}

/// A subscription to create or replace.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Unique name; generated when absent.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
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
    pub mode: Mode,
    /// Stage of a synchronous step: `pre_validation`, `pre_operation` (default) or
    /// `post_operation`.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Service Bus and Event Hubs endpoints: parameters promoted to application properties,
    /// session id and partition key parameters, time to live.
    #[serde(default)]
    pub amqp: AmqpOptions,
}
