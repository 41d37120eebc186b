//! Endpoint rules: which fields apply to which kind, write-only values (secrets, credentials,
//! authentication) kept when an update leaves them out, header names and values, the network
//! policy for webhook URLs, and signing-secret rotation.

use time::OffsetDateTime;

use super::azure::{settings_from, AzureInput};
use super::{EndpointInput, Registry, RegistryError, Signing};
use crate::destinations::network::{HostError, UrlError};
use crate::model::{
    AzureSettings, CustomHeader, DestinationSettings, Endpoint, EndpointId, EndpointKind,
    RateLimit, Scheme, Scope, Secret, SecretId, SigningSecret, Subscription, WebhookAuth,
    WebhookSettings,
};

/// Active signing secrets an endpoint may have at once.
pub const MAX_SECRETS: usize = 5;

/// An endpoint and the signing secret Herald generated for it, if it did: shown once.
pub type WithSecret = (Endpoint, Option<String>);

impl Registry {
    /// The endpoints `scope` sees, by name.
    pub async fn endpoints(&self, scope: &Scope) -> Result<Vec<Endpoint>, RegistryError> {
        let all = self.store.endpoints().await?;
        if *scope == Scope::All {
            return Ok(all);
        }
        let subscriptions = self.store.subscriptions().await?;
        Ok(all
            .into_iter()
            .filter(|e| scope.sees(&tied(e, &subscriptions)))
            .collect())
    }

    /// The endpoint with id `id` (as text, from a URL), if `scope` sees it.
    pub async fn endpoint(&self, scope: &Scope, id: &str) -> Result<Endpoint, RegistryError> {
        Ok(self.endpoint_tied(scope, id).await?.0)
    }

    /// The endpoint with id `id`, if `scope` may change it: `NotFound` if it does not see
    /// it, `Forbidden` if the endpoint is tied to solutions `scope` does not cover.
    pub async fn endpoint_to_change(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Endpoint, RegistryError> {
        let (endpoint, tied) = self.endpoint_tied(scope, id).await?;
        if !scope.may_change(&tied) {
            return Err(RegistryError::Forbidden(format!(
                "endpoint \"{}\" also delivers events of solutions this key does not cover ({}); a key of all of them may change it",
                endpoint.name,
                tied.iter()
                    .filter(|t| !scope.covers(t))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(endpoint)
    }

    /// The endpoint with id `id` and the solutions it is tied to (none are read for a scope
    /// of every solution, which sees and changes every endpoint), if `scope` sees it.
    async fn endpoint_tied(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<(Endpoint, Vec<String>), RegistryError> {
        let not_found = || RegistryError::NotFound(format!("no endpoint with id \"{id}\""));
        let id: EndpointId = id.parse().map_err(|_| not_found())?;
        let endpoint = self.store.endpoint(id).await?.ok_or_else(not_found)?;
        if *scope == Scope::All {
            return Ok((endpoint, Vec::new()));
        }
        let tied = tied(&endpoint, &self.store.subscriptions().await?);
        if !scope.sees(&tied) {
            return Err(not_found());
        }
        Ok((endpoint, tied))
    }

    /// `endpoint` if `scope` sees it.
    async fn seen(
        &self,
        scope: &Scope,
        endpoint: Endpoint,
    ) -> Result<Option<Endpoint>, RegistryError> {
        if *scope == Scope::All {
            return Ok(Some(endpoint));
        }
        let tied = tied(&endpoint, &self.store.subscriptions().await?);
        Ok(scope.sees(&tied).then_some(endpoint))
    }

    /// The endpoint with this id or, failing that, this name, if `scope` sees it.
    pub async fn endpoint_by_id_or_name(
        &self,
        scope: &Scope,
        id_or_name: &str,
    ) -> Result<Option<Endpoint>, RegistryError> {
        let found = match id_or_name.parse::<EndpointId>() {
            Ok(id) => self.store.endpoint(id).await?,
            Err(_) => self.store.endpoint_by_name(id_or_name).await?,
        };
        match found {
            Some(e) => self.seen(scope, e).await,
            None => Ok(None),
        }
    }

    /// Creates an endpoint, tied to the solutions of `scope`; its name must be free.
    pub async fn create_endpoint(
        &self,
        scope: &Scope,
        input: EndpointInput,
    ) -> Result<WithSecret, RegistryError> {
        if self.store.endpoint_by_name(&input.name).await?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "an endpoint called \"{}\" already exists",
                input.name
            )));
        }
        let now = OffsetDateTime::now_utc();
        let (settings, generated) = self.settings(&input, None).await?;
        let rate_limit = rate_limit(&input)?;
        let endpoint = Endpoint {
            id: EndpointId::new(),
            name: input.name,
            settings,
            max_concurrency: input.max_concurrency.map(|n| n.get()),
            rate_limit,
            created_at: now,
            updated_at: now,
            owners: scope.owners(),
        };
        self.put_endpoint(&endpoint).await?;
        tracing::info!(endpoint = %endpoint.id, name = %endpoint.name, "endpoint created");
        Ok((endpoint, generated))
    }

    /// Creates the endpoint called `input.name`, or updates it if it exists (configuration
    /// files and the demo, which declare endpoints by name at every start).
    pub async fn declare_endpoint(
        &self,
        input: EndpointInput,
    ) -> Result<WithSecret, RegistryError> {
        if input.kind == EndpointKind::Webhook && input.secret.is_none() {
            return Err(RegistryError::invalid(
                "secret",
                "is required for a declared webhook endpoint: its receiver must know it in advance (print one with `herald webhook secret`)",
            ));
        }
        match self.store.endpoint_by_name(&input.name).await? {
            Some(existing) => self.update_endpoint(existing, input).await,
            None => self.create_endpoint(&Scope::All, input).await,
        }
    }

    /// Replaces the settings of endpoint `id`; write-only values it leaves out are kept.
    pub async fn replace_endpoint(
        &self,
        scope: &Scope,
        id: &str,
        input: EndpointInput,
    ) -> Result<Endpoint, RegistryError> {
        let existing = self.endpoint_to_change(scope, id).await?;
        let becomes_webhook = input.kind == EndpointKind::Webhook
            && existing.settings.kind() != EndpointKind::Webhook;
        if becomes_webhook && input.secret.is_none() {
            return Err(RegistryError::invalid(
                "secret",
                "is required when an endpoint becomes a webhook endpoint (or add one later with POST /v1/endpoints/{id}/secrets)",
            ));
        }
        Ok(self.update_endpoint(existing, input).await?.0)
    }

    async fn update_endpoint(
        &self,
        existing: Endpoint,
        input: EndpointInput,
    ) -> Result<WithSecret, RegistryError> {
        let (settings, generated) = self.settings(&input, Some(&existing.settings)).await?;
        let rate_limit = rate_limit(&input)?;
        let endpoint = Endpoint {
            name: input.name,
            settings,
            max_concurrency: input.max_concurrency.map(|n| n.get()),
            rate_limit,
            updated_at: OffsetDateTime::now_utc(),
            ..existing
        };
        self.put_endpoint(&endpoint).await?;
        Ok((endpoint, generated))
    }

    /// Deletes endpoint `id` and its subscriptions, cancelling their unfinished deliveries.
    pub async fn delete_endpoint(&self, scope: &Scope, id: &str) -> Result<(), RegistryError> {
        let id = self.endpoint_to_change(scope, id).await?.id;
        if !self.store.delete_endpoint(id).await? {
            return Err(RegistryError::NotFound(format!(
                "no endpoint with id \"{id}\""
            )));
        }
        self.reload().await?;
        Ok(())
    }

    /// Adds a signing secret to webhook endpoint `id` (rotation: both sign until the old one
    /// is retired); generated when `secret` is `None`.
    pub async fn add_secret(
        &self,
        scope: &Scope,
        id: &str,
        secret: Option<&str>,
        scheme: Option<Scheme>,
    ) -> Result<WithSecret, RegistryError> {
        let mut endpoint = self.endpoint_to_change(scope, id).await?;
        let (secret, generated) = match (secret, scheme) {
            (Some(_), Some(_)) => {
                return Err(RegistryError::invalid(
                    "scheme",
                    "applies only when Herald generates the secret: give `secret` or `scheme`",
                ))
            }
            (Some(text), None) => (parse_secret(text)?, None),
            (None, scheme) => {
                let s = Secret::generate_for(scheme.unwrap_or(Scheme::V1));
                // An ed25519 secret key never leaves Herald: receivers get its public key.
                let shown = (s.scheme() == Scheme::V1).then(|| s.expose());
                (s, shown)
            }
        };
        let name = endpoint.name.clone();
        let DestinationSettings::Webhook(w) = &mut endpoint.settings else {
            return Err(not_a_webhook(&name));
        };
        if w.secrets.len() >= MAX_SECRETS {
            return Err(RegistryError::Conflict(format!(
                "an endpoint has at most {MAX_SECRETS} active secrets; retire one first"
            )));
        }
        let now = OffsetDateTime::now_utc();
        w.secrets.push(SigningSecret {
            id: SecretId::new(),
            secret,
            created_at: now,
        });
        endpoint.updated_at = now;
        self.put_endpoint(&endpoint).await?;
        Ok((endpoint, generated))
    }

    /// Retires signing secret `secret_id` of webhook endpoint `id`; the last one stays.
    pub async fn retire_secret(
        &self,
        scope: &Scope,
        id: &str,
        secret_id: &str,
    ) -> Result<Endpoint, RegistryError> {
        let mut endpoint = self.endpoint_to_change(scope, id).await?;
        let name = endpoint.name.clone();
        let DestinationSettings::Webhook(w) = &mut endpoint.settings else {
            return Err(not_a_webhook(&name));
        };
        let before = w.secrets.len();
        w.secrets.retain(|s| s.id.to_string() != secret_id);
        if w.secrets.len() == before {
            return Err(RegistryError::NotFound(format!(
                "endpoint has no secret \"{secret_id}\""
            )));
        }
        if w.secrets.is_empty() {
            return Err(RegistryError::Conflict(
                "the last secret cannot be retired; add a new one first".into(),
            ));
        }
        endpoint.updated_at = OffsetDateTime::now_utc();
        self.put_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), RegistryError> {
        self.store.put_endpoint(endpoint).await?;
        // Subscriptions did not change, but the dispatcher's cached copy of the endpoint did.
        self.routing.changed();
        Ok(())
    }

    /// The settings of `input`; `old` (an update) supplies the write-only values it leaves
    /// out. Returns a signing secret Herald generated, to show once.
    async fn settings(
        &self,
        input: &EndpointInput,
        old: Option<&DestinationSettings>,
    ) -> Result<(DestinationSettings, Option<String>), RegistryError> {
        check_name(&input.name)?;
        if let Some(t) = input.timeout {
            if t.is_zero() || t > self.max_timeout {
                return Err(RegistryError::invalid(
                    "timeout",
                    format!(
                        "must be above 0s and at most {} (half of delivery.lease, so an attempt ends before another dispatcher may take its delivery)",
                        humantime::format_duration(self.max_timeout)
                    ),
                ));
            }
        }
        match input.kind {
            EndpointKind::Webhook => {
                let old = match old {
                    Some(DestinationSettings::Webhook(w)) => Some(w),
                    _ => None,
                };
                let (settings, generated) = self.webhook_settings(input, old).await?;
                Ok((DestinationSettings::Webhook(settings), generated))
            }
            EndpointKind::ServiceBus => Ok((
                DestinationSettings::ServiceBus(self.azure_settings(input, old).await?),
                None,
            )),
            EndpointKind::EventHubs => Ok((
                DestinationSettings::EventHubs(self.azure_settings(input, old).await?),
                None,
            )),
        }
    }

    async fn webhook_settings(
        &self,
        input: &EndpointInput,
        old: Option<&WebhookSettings>,
    ) -> Result<(WebhookSettings, Option<String>), RegistryError> {
        only(
            input.kind,
            &[
                ("connection_string", input.connection_string.is_some()),
                ("namespace", input.namespace.is_some()),
                ("entity", input.entity.is_some()),
                ("credential", input.credential.is_some()),
                ("partition_id", input.partition_id.is_some()),
            ],
        )?;
        let now = OffsetDateTime::now_utc();
        let (secrets, generated) = match (&input.secret, old) {
            (Some(text), old) => {
                let secret = parse_secret(text)?;
                // The same secret keeps its id and age.
                let kept = old.and_then(|o| o.secrets.iter().find(|s| s.secret == secret));
                let s = kept.cloned().unwrap_or(SigningSecret {
                    id: SecretId::new(),
                    secret,
                    created_at: now,
                });
                (vec![s], None)
            }
            (None, Some(old)) => (old.secrets.clone(), None),
            (None, None) => {
                let schemes: &[Scheme] = match input.signing.unwrap_or(Signing::V1) {
                    Signing::V1 => &[Scheme::V1],
                    Signing::V1a => &[Scheme::V1a],
                    Signing::Both => &[Scheme::V1, Scheme::V1a],
                };
                let secrets: Vec<SigningSecret> = schemes
                    .iter()
                    .map(|scheme| SigningSecret {
                        id: SecretId::new(),
                        secret: Secret::generate_for(*scheme),
                        created_at: now,
                    })
                    .collect();
                // A shared secret is shown once; an ed25519 secret key never leaves Herald.
                let shown = secrets
                    .iter()
                    .find(|s| s.secret.scheme() == Scheme::V1)
                    .map(|s| s.secret.expose());
                (secrets, shown)
            }
        };
        if input.signing.is_some() && (input.secret.is_some() || old.is_some()) {
            return Err(RegistryError::invalid(
                "signing",
                "applies only when Herald generates the keys of a new endpoint; to add a key of another scheme, POST /v1/endpoints/{id}/secrets with \"scheme\"",
            ));
        }
        let url = input
            .url
            .as_deref()
            .ok_or_else(|| RegistryError::invalid("url", "is required for a webhook endpoint"))?;
        // The URL as views show it (its query masked) keeps the query it stands for.
        let url = match old {
            Some(o) if url == crate::model::exchange::masked_url(&o.url) && url != o.url => {
                o.url.as_str()
            }
            _ => url,
        };
        let checked = self.policy.check_url(url).await.map_err(|e| match e {
            UrlError::Refused(HostError::Blocked(blocked)) => {
                RegistryError::invalid("url", format!("is refused: {blocked}"))
            }
            other => RegistryError::invalid("url", other.to_string()),
        })?;
        // Write-only values kept from before go to the host they were given for, never to
        // another: an update that moves the URL to another origin gives them again.
        let kept = old.filter(|o| {
            url::Url::parse(&o.url).is_ok_and(|before| before.origin() == checked.origin())
        });
        if let (Some(o), None) = (old, kept) {
            if o.auth.is_some() && input.auth.is_none() {
                return Err(RegistryError::invalid(
                    "auth",
                    "must be given again: the URL moves to another host, and Herald does not send the kept value there",
                ));
            }
            if o.headers.iter().any(|h| h.secret) && input.headers.is_none() {
                return Err(RegistryError::invalid(
                    "headers",
                    "must be given again, with the secret headers' values: the URL moves to another host, and Herald does not send the kept values there",
                ));
            }
        }
        // Like secrets, authentication values are write-only: absent means "keep".
        let auth = input
            .auth
            .clone()
            .or_else(|| kept.and_then(|o| o.auth.clone()));
        if let Some(auth) = &auth {
            check_auth(auth)?;
        }
        let headers = match &input.headers {
            Some(given) => custom_headers(given, kept.map_or(&[][..], |o| &o.headers))?,
            None => old.map(|o| o.headers.clone()).unwrap_or_default(),
        };
        let settings = WebhookSettings {
            url: url.to_owned(),
            secrets,
            timeout: input.timeout,
            auth,
            headers,
            validation: input
                .validation
                .or(old.map(|o| o.validation))
                .unwrap_or_default(),
        };
        Ok((settings, generated))
    }
}

/// Refuses the first given field that does not apply to `kind`.
fn only(kind: EndpointKind, fields: &[(&'static str, bool)]) -> Result<(), RegistryError> {
    match fields.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(RegistryError::invalid(
            *field,
            format!("does not apply to a {} endpoint", kind.display_name()),
        )),
        None => Ok(()),
    }
}

impl Registry {
    /// The Service Bus or Event Hubs settings of `input`, its namespace checked against the
    /// network policy.
    async fn azure_settings(
        &self,
        input: &EndpointInput,
        old: Option<&DestinationSettings>,
    ) -> Result<AzureSettings, RegistryError> {
        let settings = azure_settings(input, old)?;
        let field = if input.connection_string.is_some() {
            "connection_string"
        } else {
            "namespace"
        };
        match self
            .policy
            .check_host(&settings.host, settings.amqp_port())
            .await
        {
            Err(HostError::Blocked(blocked)) => Err(RegistryError::invalid(
                field,
                format!("is refused: {blocked}"),
            )),
            // A name that does not resolve yet (a namespace being deployed, DNS down at
            // start-up) is checked again before every connection.
            Ok(()) | Err(HostError::Resolve { .. }) => Ok(settings),
        }
    }
}

fn azure_settings(
    input: &EndpointInput,
    old: Option<&DestinationSettings>,
) -> Result<AzureSettings, RegistryError> {
    let service_bus = input.kind == EndpointKind::ServiceBus;
    only(
        input.kind,
        &[
            ("url", input.url.is_some()),
            ("secret", input.secret.is_some()),
            ("signing", input.signing.is_some()),
            ("headers", input.headers.is_some()),
            ("validation", input.validation.is_some()),
            ("timeout", input.timeout.is_some()),
            ("auth", input.auth.is_some()),
            ("partition_id", service_bus && input.partition_id.is_some()),
        ],
    )?;
    let old = match old {
        Some(DestinationSettings::ServiceBus(a)) if service_bus => Some(a),
        Some(DestinationSettings::EventHubs(a)) if !service_bus => Some(a),
        _ => None,
    };
    // Write-only credentials: an update that gives neither keeps the old one.
    let keep = input.connection_string.is_none() && input.credential.is_none();
    // A kept credential (a token, or an identity whose tokens every namespace accepts) is
    // sent to the namespace it was given for, never to another.
    if let (true, Some(old), Some(ns)) = (keep, old, input.namespace.as_deref()) {
        let moved = super::azure::settings_from(AzureInput {
            namespace: Some(ns),
            entity: Some(&old.entity),
            credential: Some(old.credential.clone()),
            ..Default::default()
        })
        .is_ok_and(|new| {
            (new.host.as_str(), new.amqp_port()) != (old.host.as_str(), old.amqp_port())
        });
        if moved {
            return Err(RegistryError::invalid(
                "credential",
                "must be given again: the namespace moves to another host, and Herald does not send the kept credential there",
            ));
        }
    }
    match (keep, old) {
        (true, Some(old)) => settings_from(AzureInput {
            namespace: Some(input.namespace.as_deref().unwrap_or(&old.namespace())),
            entity: Some(input.entity.as_deref().unwrap_or(&old.entity)),
            credential: Some(old.credential.clone()),
            partition_id: input.partition_id.as_deref(),
            connection_string: None,
        }),
        _ => settings_from(AzureInput {
            connection_string: input.connection_string.as_deref(),
            namespace: input.namespace.as_deref(),
            entity: input.entity.as_deref(),
            credential: input.credential.clone(),
            partition_id: input.partition_id.as_deref(),
        }),
    }
    .map_err(|e| RegistryError::invalid(e.field, e.message))
}

/// The slowest rate limit: one delivery every 1,000 seconds.
pub const MIN_RATE: f64 = 0.001;

/// A name of an endpoint or subscription: 1 to 100 characters, none of them a control
/// character (names go into logs, and a line break there would forge a line).
pub(super) fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(RegistryError::invalid(
            "name",
            "must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(RegistryError::invalid(
            "name",
            "must not hold control characters (line breaks, tabs…)",
        ));
    }
    Ok(())
}

/// Whether Herald (or HTTP) sets the header `name` itself, so that neither an endpoint's
/// `headers` nor its `auth` may.
fn reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Header authentication must be sendable and must not set what Herald sets itself.
fn check_auth(auth: &WebhookAuth) -> Result<(), RegistryError> {
    let WebhookAuth::HttpHeader { values } = auth else {
        return Ok(());
    };
    for (name, value) in values {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(RegistryError::invalid(
                "auth",
                format!("\"{name}\" cannot be used as a header name"),
            ));
        }
        if reserved_header(name) {
            return Err(RegistryError::invalid(
                "auth",
                format!("\"{name}\" is set by Herald itself"),
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(RegistryError::invalid(
                "auth",
                format!("the value of \"{name}\" is not a valid header value"),
            ));
        }
    }
    Ok(())
}

/// The rate limit of `input`, checked.
fn rate_limit(input: &EndpointInput) -> Result<Option<RateLimit>, RegistryError> {
    let Some(limit) = input.rate_limit else {
        return Ok(None);
    };
    if !(MIN_RATE..=100_000.0).contains(&limit.per_second) {
        return Err(RegistryError::invalid(
            "rate_limit.per_second",
            "must be 0.001 to 100000 deliveries per second (0.001 is one every 16m40s)",
        ));
    }
    if !(1..=10_000).contains(&limit.burst) {
        return Err(RegistryError::invalid(
            "rate_limit.burst",
            "must be 1 to 10000",
        ));
    }
    Ok(Some(limit))
}

/// Header names Herald sets itself (or HTTP owns): an endpoint cannot set them.
const RESERVED_HEADERS: [&str; 10] = [
    "origin",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    "traceparent",
    "expect",
    "upgrade",
];
/// Prefixes of header names Herald sets itself.
const RESERVED_PREFIXES: [&str; 3] = ["webhook-", "herald-", "x-ms-dynamics-"];

/// Checks an endpoint's static headers; a secret header given without a value keeps the
/// value of the header of that name in `old`.
fn custom_headers(
    given: &[super::HeaderInput],
    old: &[CustomHeader],
) -> Result<Vec<CustomHeader>, RegistryError> {
    if given.len() > 20 {
        return Err(RegistryError::invalid(
            "headers",
            "may hold at most 20 headers",
        ));
    }
    let mut out: Vec<CustomHeader> = Vec::with_capacity(given.len());
    for (i, h) in given.iter().enumerate() {
        let field = format!("headers[{i}]");
        let lower = h.name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err(RegistryError::invalid(
                format!("{field}.name"),
                format!("\"{}\" is not a valid header name", h.name),
            ));
        }
        if reserved_header(&lower) {
            return Err(RegistryError::invalid(
                format!("{field}.name"),
                format!("\"{}\" is set by Herald itself", h.name),
            ));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&h.name)) {
            return Err(RegistryError::invalid(
                format!("{field}.name"),
                format!("\"{}\" is given twice", h.name),
            ));
        }
        let value = match (&h.value, h.secret) {
            (Some(v), _) => v.clone(),
            (None, true) => old
                .iter()
                .find(|o| o.secret && o.name.eq_ignore_ascii_case(&h.name))
                .map(|o| o.value.clone())
                .ok_or_else(|| {
                    RegistryError::invalid(
                        format!("{field}.value"),
                        "is required: this secret header has no value to keep",
                    )
                })?,
            (None, false) => {
                return Err(RegistryError::invalid(
                    format!("{field}.value"),
                    "is required (only a secret header may leave it out, to keep its value)",
                ))
            }
        };
        if value.len() > 4096 || reqwest::header::HeaderValue::from_str(&value).is_err() {
            return Err(RegistryError::invalid(
                format!("{field}.value"),
                "must be at most 4096 visible ASCII characters (spaces and tabs allowed)",
            ));
        }
        out.push(CustomHeader {
            name: h.name.clone(),
            value,
            secret: h.secret,
        });
    }
    Ok(out)
}

fn not_a_webhook(name: &str) -> RegistryError {
    RegistryError::Conflict(format!(
        "endpoint \"{name}\" is not a webhook endpoint; only webhooks have signing secrets"
    ))
}

fn parse_secret(text: &str) -> Result<Secret, RegistryError> {
    Secret::parse(text).map_err(|e| RegistryError::invalid("secret", e.to_string()))
}

/// The solutions `endpoint` is tied to: those of the key that made it and of every
/// subscription that delivers to it.
pub fn tied(endpoint: &Endpoint, subscriptions: &[Subscription]) -> Vec<String> {
    let mut tied = endpoint.owners.clone();
    for s in subscriptions
        .iter()
        .filter(|s| s.endpoint_id == endpoint.id)
    {
        if !tied.contains(&s.solution) {
            tied.push(s.solution.clone());
        }
    }
    tied
}
