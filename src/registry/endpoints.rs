//! Endpoint rules every kind shares: names, who sees and changes an endpoint, rate limits and
//! signing-secret rotation. What a kind's fields mean, and which write-only values an update
//! keeps, is its own ([`crate::destinations::kind`]).

use time::OffsetDateTime;

use super::{EndpointInput, Registry, RegistryError};
use crate::destinations::kind::{Checks, Made};
use crate::destinations::webhook::parse_secret;
use crate::model::{
    DestinationSettings, Endpoint, EndpointId, RateLimit, Scheme, Scope, Secret, SecretId,
    SigningSecret, Subscription,
};

/// Why an endpoint's input is checked: declared by configuration, or replacing one.
#[derive(Debug, Clone, Copy, Default)]
struct Purpose {
    declared: bool,
    replacing: bool,
}

/// Active signing secrets an endpoint may have at once.
pub const MAX_SECRETS: usize = 5;

/// An endpoint and the signing secret Herald generated for it, if it did: shown once.
pub type WithSecret = (Endpoint, Option<String>);

impl Registry {
    /// The endpoints `scope` sees, by name.
    pub async fn endpoints(&self, scope: &Scope) -> Result<Vec<Endpoint>, RegistryError> {
        let all = self.store.records().endpoints().await?;
        if *scope == Scope::All {
            return Ok(all);
        }
        let subscriptions = self.store.records().subscriptions().await?;
        Ok(all
            .into_iter()
            .filter(|e| scope.sees(&tied(e, &subscriptions)))
            .collect())
    }

    /// The endpoint with id `id` (as text, from a URL), if `scope` sees it.
    pub async fn endpoint(&self, scope: &Scope, id: EndpointId) -> Result<Endpoint, RegistryError> {
        Ok(self.endpoint_tied(scope, id).await?.0)
    }

    /// The endpoint with id `id`, if `scope` may change it: `NotFound` if it does not see
    /// it, `Forbidden` if the endpoint is tied to solutions `scope` does not cover.
    pub async fn endpoint_to_change(
        &self,
        scope: &Scope,
        id: EndpointId,
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
        id: EndpointId,
    ) -> Result<(Endpoint, Vec<String>), RegistryError> {
        let not_found = || RegistryError::NotFound(format!("no endpoint with id \"{id}\""));
        let endpoint = self
            .store
            .records()
            .endpoint(id)
            .await?
            .ok_or_else(not_found)?;
        if *scope == Scope::All {
            return Ok((endpoint, Vec::new()));
        }
        let tied = tied(&endpoint, &self.store.records().subscriptions().await?);
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
        let tied = tied(&endpoint, &self.store.records().subscriptions().await?);
        Ok(scope.sees(&tied).then_some(endpoint))
    }

    /// The endpoint with this id or, failing that, this name, if `scope` sees it.
    pub async fn endpoint_by_id_or_name(
        &self,
        scope: &Scope,
        id_or_name: &str,
    ) -> Result<Option<Endpoint>, RegistryError> {
        let found = match id_or_name.parse::<EndpointId>() {
            Ok(id) => self.store.records().endpoint(id).await?,
            Err(_) => self.store.records().endpoint_by_name(id_or_name).await?,
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
        self.create(scope, input, Purpose::default()).await
    }

    /// Creates an endpoint whose input is checked for `purpose`.
    async fn create(
        &self,
        scope: &Scope,
        input: EndpointInput,
        purpose: Purpose,
    ) -> Result<WithSecret, RegistryError> {
        if self
            .store
            .records()
            .endpoint_by_name(&input.name)
            .await?
            .is_some()
        {
            return Err(RegistryError::Conflict(format!(
                "an endpoint called \"{}\" already exists",
                input.name
            )));
        }
        let now = OffsetDateTime::now_utc();
        let (settings, generated) = self.settings(&input, None, purpose).await?;
        self.check_plugin_reference(scope, &settings).await?;
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
        let declared = Purpose {
            declared: true,
            ..Purpose::default()
        };
        match self.store.records().endpoint_by_name(&input.name).await? {
            Some(existing) => {
                self.update_endpoint(&Scope::All, existing, input, declared)
                    .await
            }
            None => self.create(&Scope::All, input, declared).await,
        }
    }

    /// Replaces the settings of endpoint `id`; write-only values it leaves out are kept.
    pub async fn replace_endpoint(
        &self,
        scope: &Scope,
        id: EndpointId,
        input: EndpointInput,
    ) -> Result<Endpoint, RegistryError> {
        let existing = self.endpoint_to_change(scope, id).await?;
        let replacing = Purpose {
            replacing: true,
            ..Purpose::default()
        };
        Ok(self
            .update_endpoint(scope, existing, input, replacing)
            .await?
            .0)
    }

    async fn update_endpoint(
        &self,
        scope: &Scope,
        existing: Endpoint,
        input: EndpointInput,
        purpose: Purpose,
    ) -> Result<WithSecret, RegistryError> {
        let (settings, generated) = self
            .settings(&input, Some(&existing.settings), purpose)
            .await?;
        self.check_plugin_reference(scope, &settings).await?;
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
    pub async fn delete_endpoint(
        &self,
        scope: &Scope,
        id: EndpointId,
    ) -> Result<(), RegistryError> {
        let id = self.endpoint_to_change(scope, id).await?.id;
        if !self.store.records().delete_endpoint(id).await? {
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
        id: EndpointId,
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
        id: EndpointId,
        secret_id: SecretId,
    ) -> Result<Endpoint, RegistryError> {
        let mut endpoint = self.endpoint_to_change(scope, id).await?;
        let name = endpoint.name.clone();
        let DestinationSettings::Webhook(w) = &mut endpoint.settings else {
            return Err(not_a_webhook(&name));
        };
        let before = w.secrets.len();
        w.secrets.retain(|s| s.id != secret_id);
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
        self.store.records().put_endpoint(endpoint).await?;
        // Subscriptions did not change, but the dispatcher's cached copy of the endpoint did.
        self.routing.changed();
        Ok(())
    }

    /// The settings of `input`, checked by its kind; `old` (an update) supplies the
    /// write-only values it leaves out. Returns a signing secret Herald generated, to show once.
    async fn settings(
        &self,
        input: &EndpointInput,
        old: Option<&DestinationSettings>,
        why: Purpose,
    ) -> Result<(DestinationSettings, Option<String>), RegistryError> {
        check_name(&input.name)?;
        let checks = Checks {
            policy: &self.policy,
            max_timeout: self.max_timeout,
            declared: why.declared,
            replacing: why.replacing,
        };
        let Made {
            settings,
            generated,
        } = input.destination.settings(old, checks).await?;
        Ok((settings, generated))
    }
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

fn not_a_webhook(name: &str) -> RegistryError {
    RegistryError::Conflict(format!(
        "endpoint \"{name}\" is not a webhook endpoint; only webhooks have signing secrets"
    ))
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
