//! Where an endpoint sends and how, as the API and the console show it: never a secret value.
//! Each kind fills the fields that apply to it ([`super::kind::Kind::view`]).

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::model::{Scheme, SecretId};

/// An endpoint's destination without its secrets; the fields of other kinds are empty.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DestinationView {
    /// The receiver's URL, its query masked (`?••••`: a query often holds a key, as Azure
    /// Functions' `?code=` does). Giving back this masked URL on `PUT` keeps the query.
    pub url: Option<String>,
    /// Active signing secrets (ids only).
    pub secrets: Vec<SecretView>,
    /// Time the receiver has to answer.
    #[schema(value_type = Option<String>)]
    pub timeout: Option<String>,
    /// The authentication type and the header or parameter names it sets (never values).
    pub auth: Option<AuthView>,
    /// Webhooks: static headers (a secret one without its value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderView>,
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
    /// Plug-ins: which one runs and how it is configured (never the secure configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginView>,
}

/// A plug-in registration without its secure configuration.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginView {
    /// The plug-in's name.
    pub name: String,
    /// The pinned version; absent when the registration follows the latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The unsecure configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Whether a secure configuration is set (its value is never shown).
    pub secure_config: bool,
    /// Hosts it may call over HTTP.
    pub allowed_hosts: Vec<String>,
}

/// One signing secret, without its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretView {
    /// Its id (to retire it).
    pub id: SecretId,
    /// `v1` (HMAC, `whsec_`) or `v1a` (ed25519, `whsk_`).
    pub scheme: Scheme,
    /// `v1a`: the public key receivers verify with (`whpk_…`; not a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A static header of a webhook endpoint; a secret one without its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeaderView {
    /// Its name.
    pub name: String,
    /// Its value; absent when it is a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether the value is a secret.
    pub secret: bool,
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
