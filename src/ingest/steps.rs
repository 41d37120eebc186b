//! Synchronous steps: webhooks called in the request path, by stage then rank, before the
//! event is stored, as Dataverse calls synchronous webhooks. A refusal cancels the event and
//! the caller gets the receiver's message; 60 s timeout; one more attempt only after 502, 503
//! or 504 (decided here, not by the webhook client). Only events whose `allowed_steps` is
//! `sync_and_async` can have them.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::destinations::webhook::{StepAnswer, WebhookClient};
use crate::destinations::Origin;
use crate::model::{DeliveryId, DestinationSettings, NewEvent, Subscription};
use crate::store::Store;

use super::IngestError;

/// Time a synchronous step has to answer, as Dataverse allows.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts of one step at most: the second only after a gateway answer (502, 503, 504).
const MAX_STEP_ATTEMPTS: u32 = 2;

/// What synchronous steps need.
pub struct SyncSteps {
    /// Endpoint lookups.
    pub store: Arc<dyn Store>,
    /// The webhook client (SSRF guard included).
    pub webhooks: WebhookClient,
    /// The catalog, for message formats.
    pub catalog: Catalog,
    /// Schema links and the organization name of messages.
    pub origin: Origin,
}

/// Whether a step's answer is worth one more attempt: a gateway in front of the receiver
/// failed, not the receiver's own decision.
fn try_again(answer: &StepAnswer) -> bool {
    matches!(
        answer,
        StepAnswer::Refused {
            status: 502..=504,
            ..
        }
    )
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
                Err(e) => return Err(IngestError::Store(e)),
            };
            let DestinationSettings::Webhook(settings) = endpoint.settings else {
                // Subscriptions refuse synchronous steps on other kinds; one changed since.
                return Err(IngestError::StepFailed {
                    step: step.name,
                    message: "a synchronous step must call a webhook endpoint".into(),
                });
            };
            let destination = self.webhooks.destination(settings);
            // A step is not a delivery; its id still identifies this call for the receiver.
            let message = self.origin.outbound(
                DeliveryId::new(),
                &step,
                &event.event,
                self.catalog.cataloged(&event.event.name),
            );
            let mut answer = destination.call_step(&message, STEP_TIMEOUT).await;
            for _ in 1..MAX_STEP_ATTEMPTS {
                if !try_again(&answer) {
                    break;
                }
                answer = destination.call_step(&message, STEP_TIMEOUT).await;
            }
            match answer {
                StepAnswer::Accepted => {}
                StepAnswer::Refused { status, message } => {
                    tracing::info!(step = %step.name, status, "a synchronous step cancelled the event");
                    return Err(IngestError::Vetoed {
                        step: step.name,
                        status,
                        message,
                    });
                }
                StepAnswer::Unreachable(cause) => {
                    return Err(IngestError::StepUnreachable {
                        step: step.name,
                        cause,
                    });
                }
            }
        }
        Ok(())
    }
}
