//! Synchronous steps: webhooks called in the request path, by stage then rank, before the
//! event is stored, as Dataverse calls synchronous webhooks. A refusal cancels the event and
//! the caller gets the receiver's message; 60 s timeout, one more attempt only after 502, 503
//! or 504. Only events whose `allowed_steps` is `sync_and_async` can have them.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::destinations::webhook::{StepAnswer, WebhookClient};
use crate::destinations::{DestinationSettings, Outbound};
use crate::store::{NewEvent, Store, Subscription};

use super::IngestError;

/// Time a synchronous step has to answer, as Dataverse allows.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What synchronous steps need.
pub struct SyncSteps {
    /// Endpoint lookups.
    pub store: Arc<dyn Store>,
    /// The webhook client (SSRF guard included).
    pub webhooks: WebhookClient,
    /// The catalog, for message formats.
    pub catalog: Catalog,
    /// Base URL for schema links.
    pub public_url: String,
    /// Organization name for Dataverse-format messages.
    pub organization: String,
}

impl SyncSteps {
    /// Runs `steps` for `event` in order (stage, then rank); `Err` when one refuses.
    pub async fn run(
        &self,
        event: &NewEvent,
        mut steps: Vec<Subscription>,
    ) -> Result<(), IngestError> {
        steps.sort_by(|a, b| {
            a.stage
                .cmp(&b.stage)
                .then(a.rank.cmp(&b.rank))
                .then_with(|| a.name.cmp(&b.name))
        });
        for step in steps {
            let endpoint = match self.store.endpoint(step.endpoint_id).await {
                Ok(Some(e)) => e,
                Ok(None) => continue, // deleted meanwhile: nothing to call
                Err(e) => {
                    return Err(IngestError::StepFailed {
                        step: step.name,
                        message: format!("the store failed: {e}"),
                    })
                }
            };
            let DestinationSettings::Webhook(settings) = endpoint.settings else {
                // Subscriptions refuse synchronous steps on other kinds; one changed since.
                return Err(IngestError::StepFailed {
                    step: step.name,
                    message: "a synchronous step must call a webhook endpoint".into(),
                });
            };
            let destination = self.webhooks.destination(settings);
            let message = Outbound {
                // A step is not a delivery; its id still identifies this call for the receiver.
                delivery_id: crate::ids::DeliveryId::new(),
                subscription_id: step.id,
                format: step.format,
                event: &event.event,
                schema_url: crate::catalog::schema_url(&self.public_url, &event.event.name),
                definition: self.catalog.cataloged(&event.event.name),
                organization: &self.organization,
                amqp: &step.amqp,
            };
            match destination.call_step(&message, STEP_TIMEOUT).await {
                StepAnswer::Accepted => {}
                StepAnswer::Refused { status, message } => {
                    tracing::info!(step = %step.name, status, "a synchronous step cancelled the event");
                    return Err(IngestError::Vetoed {
                        step: step.name,
                        status,
                        message,
                    });
                }
                StepAnswer::Unreachable(reason) => {
                    return Err(IngestError::StepFailed {
                        step: step.name,
                        message: reason,
                    });
                }
            }
        }
        Ok(())
    }
}
