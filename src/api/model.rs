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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// An HTTP receiver, signed per Standard Webhooks.
    Webhook,
}

/// An endpoint to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
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
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        let DestinationSettings::Webhook(w) = &e.settings;
        EndpointView {
            id: e.id,
            name: e.name.clone(),
            kind: EndpointKind::Webhook,
            url: Some(w.url.clone()),
            secrets: w
                .secrets
                .iter()
                .map(|s| SecretView {
                    id: s.id,
                    created_at: s.created_at,
                })
                .collect(),
            timeout: w.timeout.map(|t| humantime::format_duration(t).to_string()),
            max_concurrency: e.max_concurrency,
            auth: w.auth.as_ref().map(|a| {
                let (kind, names) = a.describe();
                AuthView { kind, names }
            }),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
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
}
