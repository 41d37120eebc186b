//! Subscription rules against the catalog: an event or a category (of one solution), filters
//! on real parameters, synchronous steps only where the event allows them and only to
//! webhooks, AMQP options only to Service Bus and Event Hubs and on parameters every
//! subscribed event has.

use time::OffsetDateTime;

use super::{Registry, RegistryError, SubscriptionInput};
use crate::catalog::Catalog;
use crate::model::{
    AllowedSteps, Endpoint, EndpointKind, EventDefinition, Mode, Scope, Stage, Subscription,
    SubscriptionId,
};

impl Registry {
    /// The subscriptions of the solutions of `scope`, by name.
    pub async fn subscriptions(&self, scope: &Scope) -> Result<Vec<Subscription>, RegistryError> {
        let mut all = self.store.records().subscriptions().await?;
        all.retain(|s| scope.covers(&s.solution));
        Ok(all)
    }

    /// The subscription with id `id` (as text, from a URL), if it is of a solution of
    /// `scope`.
    pub async fn subscription(
        &self,
        scope: &Scope,
        id: SubscriptionId,
    ) -> Result<Subscription, RegistryError> {
        let not_found = || RegistryError::NotFound(format!("no subscription with id \"{id}\""));
        self.store
            .records()
            .subscription(id)
            .await?
            .filter(|s| scope.covers(&s.solution))
            .ok_or_else(not_found)
    }

    /// Creates a subscription of a solution of `scope`, to an endpoint `scope` sees; its
    /// name, if given, must be free.
    pub async fn create_subscription(
        &self,
        scope: &Scope,
        input: SubscriptionInput,
    ) -> Result<Subscription, RegistryError> {
        if let Some(name) = &input.name {
            if self.subscription_by_name(name).await?.is_some() {
                return Err(RegistryError::Conflict(format!(
                    "a subscription called \"{name}\" already exists"
                )));
            }
        }
        let subscription = self.build(scope, input, None).await?;
        self.put_subscription(&subscription).await?;
        Ok(subscription)
    }

    /// Creates the subscription called `input.name`, or replaces it if it exists
    /// (configuration files and the demo).
    pub async fn declare_subscription(
        &self,
        input: SubscriptionInput,
    ) -> Result<Subscription, RegistryError> {
        let Some(name) = &input.name else {
            return Err(RegistryError::invalid(
                "name",
                "is required for a declared subscription (it is how a restart finds it again)",
            ));
        };
        let existing = self.subscription_by_name(name).await?;
        let subscription = self.build(&Scope::All, input, existing.as_ref()).await?;
        self.put_subscription(&subscription).await?;
        Ok(subscription)
    }

    /// Replaces subscription `id` of `scope` (re-enabling one Herald disabled, for
    /// instance); it stays in `scope`.
    pub async fn replace_subscription(
        &self,
        scope: &Scope,
        id: SubscriptionId,
        input: SubscriptionInput,
    ) -> Result<Subscription, RegistryError> {
        let existing = self.subscription(scope, id).await?;
        let subscription = self.build(scope, input, Some(&existing)).await?;
        self.put_subscription(&subscription).await?;
        Ok(subscription)
    }

    /// Deletes subscription `id` of `scope`, cancelling its unfinished deliveries.
    pub async fn delete_subscription(
        &self,
        scope: &Scope,
        id: SubscriptionId,
    ) -> Result<(), RegistryError> {
        let id = self.subscription(scope, id).await?.id;
        if !self.store.records().delete_subscription(id).await? {
            return Err(RegistryError::NotFound(format!(
                "no subscription with id \"{id}\""
            )));
        }
        self.reload().await?;
        Ok(())
    }

    /// Disables subscription `id` (its receiver is gone) and cancels its pending deliveries.
    pub async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), RegistryError> {
        self.store
            .records()
            .disable_subscription(id, reason)
            .await?;
        self.reload().await?;
        Ok(())
    }

    async fn subscription_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Subscription>, RegistryError> {
        Ok(self
            .store
            .records()
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.name == name))
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), RegistryError> {
        self.store.records().put_subscription(subscription).await?;
        self.reload().await?;
        Ok(())
    }

    /// Checks `input` against the catalog and the endpoints, and builds the subscription
    /// (`existing` keeps its id and creation time).
    async fn build(
        &self,
        scope: &Scope,
        input: SubscriptionInput,
        existing: Option<&Subscription>,
    ) -> Result<Subscription, RegistryError> {
        let target = Target::resolve(&self.catalog, scope, &input)?;
        let endpoint = self
            .endpoint_by_id_or_name(scope, &input.endpoint)
            .await?
            .ok_or_else(|| {
                RegistryError::invalid(
                    "endpoint",
                    format!("no endpoint with id or name \"{}\"", input.endpoint),
                )
            })?;
        let now = OffsetDateTime::now_utc();
        let id = existing.map_or_else(SubscriptionId::new, |s| s.id);
        let name = input.name.clone().unwrap_or_else(|| id.to_string());
        super::endpoints::check_name(&name)?;
        let stage = target.stage(&input)?;
        check_endpoint_kind(&target, &input, &endpoint)?;
        super::row_options::check(&self.catalog, &target.events, &input.row)?;
        if let Some(transform) = &input.transform {
            if input.mode == Mode::Sync {
                return Err(RegistryError::invalid(
                    "transform",
                    "a synchronous step is not transformed: its answer is what counts",
                ));
            }
            self.check_transform(scope, transform).await?;
        }
        Ok(Subscription {
            id,
            name,
            solution: target.solution,
            event: target.event,
            category: target.category,
            endpoint_id: endpoint.id,
            format: input.format,
            filter: input.filter,
            enabled: input.enabled.unwrap_or(true),
            rank: input.rank.unwrap_or(1),
            mode: input.mode,
            stage,
            amqp: input.amqp,
            transform: input.transform,
            row: input.row,
            disabled_reason: None,
            created_at: existing.map_or(now, |s| s.created_at),
            updated_at: now,
        })
    }
}

/// What a subscription subscribes to: one event, or every event of a category.
struct Target<'a> {
    solution: String,
    event: Option<String>,
    category: Option<String>,
    /// The event definitions it covers.
    events: Vec<&'a EventDefinition>,
}

impl<'a> Target<'a> {
    /// The event or category `input` names, checked against the catalog.
    /// Events and categories of solutions out of `scope` are as unknown as those the
    /// catalog does not have.
    fn resolve(
        catalog: &'a Catalog,
        scope: &Scope,
        input: &SubscriptionInput,
    ) -> Result<Self, RegistryError> {
        match (&input.event, &input.category) {
            (Some(name), None) => Self::event(catalog, scope, name, input),
            (None, Some(category)) => {
                Self::category(catalog, scope, category, input.solution.as_deref())
            }
            _ => Err(RegistryError::invalid(
                "event",
                "give exactly one of `event` and `category`",
            )),
        }
    }

    fn event(
        catalog: &'a Catalog,
        scope: &Scope,
        name: &str,
        input: &SubscriptionInput,
    ) -> Result<Self, RegistryError> {
        let def = catalog
            .cataloged(name)
            .filter(|d| scope.covers(&d.solution))
            .ok_or_else(|| {
                RegistryError::invalid("event", format!("\"{name}\" is not a cataloged event"))
            })?;
        if def.allowed_steps == AllowedSteps::None {
            return Err(RegistryError::invalid(
                "event",
                format!("\"{name}\" allows no processing steps, so it cannot be subscribed to"),
            ));
        }
        for c in &input.filter.0 {
            super::row_options::check_filter_name(catalog, def, &c.parameter)?;
        }
        Ok(Target {
            solution: def.solution.clone(),
            event: Some(name.to_owned()),
            category: None,
            events: vec![def],
        })
    }

    fn category(
        catalog: &'a Catalog,
        scope: &Scope,
        category: &str,
        solution: Option<&str>,
    ) -> Result<Self, RegistryError> {
        let candidates: Vec<&str> = catalog
            .categories()
            .iter()
            .filter(|c| c.name == category && solution.is_none_or(|s| s == c.solution))
            .filter(|c| scope.covers(&c.solution))
            .map(|c| c.solution.as_str())
            .collect();
        match candidates.as_slice() {
            [solution] => Ok(Target {
                solution: solution.to_string(),
                event: None,
                category: Some(category.to_owned()),
                events: catalog.events_in(solution, category),
            }),
            [] => Err(RegistryError::invalid(
                "category",
                format!("\"{category}\" is not a category of the catalog"),
            )),
            _ => Err(RegistryError::invalid(
                "solution",
                format!("several solutions have a category \"{category}\"; name one"),
            )),
        }
    }

    /// The stage of a synchronous step (default `pre_operation`), which every covered event
    /// must allow; an asynchronous subscription has none.
    fn stage(&self, input: &SubscriptionInput) -> Result<Option<Stage>, RegistryError> {
        match (input.mode, input.stage) {
            (Mode::Async, Some(_)) => Err(RegistryError::invalid(
                "stage",
                "only a synchronous step has a stage",
            )),
            (Mode::Async, None) => Ok(None),
            (Mode::Sync, stage) => {
                if let Some(def) = self
                    .events
                    .iter()
                    .find(|d| d.allowed_steps != AllowedSteps::SyncAndAsync)
                {
                    return Err(RegistryError::invalid(
                        "mode",
                        format!("\"{}\" allows only asynchronous steps (allowed_steps = {:?}); a synchronous step cannot be registered on it", def.unique_name, def.allowed_steps),
                    ));
                }
                Ok(Some(stage.unwrap_or(Stage::PreOperation)))
            }
        }
    }
}

/// Checks what only some endpoint kinds support: synchronous steps call webhooks or run
/// plug-ins; AMQP
/// options need a Service Bus or Event Hubs endpoint and parameters every subscribed event has.
fn check_endpoint_kind(
    target: &Target<'_>,
    input: &SubscriptionInput,
    endpoint: &Endpoint,
) -> Result<(), RegistryError> {
    let kind = endpoint.settings.kind();
    if input.mode == Mode::Sync && !matches!(kind, EndpointKind::Webhook | EndpointKind::Plugin) {
        return Err(RegistryError::invalid(
            "mode",
            format!(
                "a synchronous step calls a webhook or runs a plug-in; endpoint \"{}\" is a {} endpoint",
                endpoint.name,
                kind.as_str()
            ),
        ));
    }
    let amqp = &input.amqp;
    if amqp.is_empty() {
        return Ok(());
    }
    if matches!(kind, EndpointKind::Webhook | EndpointKind::Plugin) {
        return Err(RegistryError::invalid(
            "amqp",
            format!(
                "applies to Service Bus and Event Hubs endpoints; \"{}\" is a {} endpoint",
                endpoint.name,
                kind.display_name()
            ),
        ));
    }
    if amqp.session_id.is_some() && kind != EndpointKind::ServiceBus {
        return Err(RegistryError::invalid(
            "amqp.session_id",
            "applies to Service Bus endpoints only",
        ));
    }
    if amqp.partition_key.is_some() && kind != EndpointKind::EventHubs {
        return Err(RegistryError::invalid(
            "amqp.partition_key",
            "applies to Event Hubs endpoints only",
        ));
    }
    if amqp.time_to_live.is_some_and(|t| t.is_zero()) {
        return Err(RegistryError::invalid(
            "amqp.time_to_live",
            "must be more than zero",
        ));
    }
    for (field, parameter) in amqp.parameters() {
        for def in &target.events {
            if def.parameter(parameter).is_none() {
                return Err(RegistryError::invalid(
                    field,
                    format!("\"{parameter}\" is not a parameter of {}", def.unique_name),
                ));
            }
        }
    }
    Ok(())
}
