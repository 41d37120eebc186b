//! Synchronous steps: webhooks called in the request path, by stage (pre-validation,
//! pre-operation, post-operation) then rank, before the event is stored, as Dataverse runs
//! synchronous plug-ins and webhooks. A step may change the parameters, set response
//! properties and shared variables (`answer.rs`); later steps see what earlier ones did. A
//! refusal at any stage cancels the event and the caller gets the receiver's message; 60 s
//! timeout; one more attempt only after 502, 503 or 504 (decided here, not by the webhook
//! client). Only events whose `allowed_steps` is `sync_and_async` can have them.

mod answer;

pub use answer::Run;

use std::sync::Arc;
use std::time::Duration;

use crate::destinations::webhook::{StepAnswer, WebhookClient};
use crate::destinations::Origin;
use crate::model::{
    DeliveryId, DestinationSettings, Event, EventDefinition, OutgoingEvent, Stage, Subscription,
};
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
    /// The routing, whose version says when a cached endpoint is stale.
    pub routing: crate::registry::Routing,
    /// Endpoints read from the store, reused for a second (a step is called on every event).
    pub lookups: crate::registry::Lookups,
    /// The webhook client (SSRF guard included).
    pub webhooks: WebhookClient,
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
    /// Runs `steps` for `event` in order (stage, then rank), each seeing what the earlier
    /// ones changed; `Err` when one refuses, cannot be called, or answers with values that are
    /// not valid for `definition`.
    pub async fn run<'d>(
        &self,
        definition: &'d EventDefinition,
        event: &Event,
        mut steps: Vec<Subscription>,
    ) -> Result<Run<'d>, IngestError> {
        steps.sort_by(|a, b| {
            a.stage
                .cmp(&b.stage)
                .then(a.rank.cmp(&b.rank))
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut run = Run::new(definition, event.params.clone());
        for step in steps {
            let version = self.routing.version();
            let found = self
                .lookups
                .endpoint(self.store.as_ref(), version, step.endpoint_id)
                .await;
            let endpoint = match found {
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
            let stage = step.stage.unwrap_or(Stage::PreOperation);
            let destination = self.webhooks.destination(settings);
            // The step sees the event as the earlier steps left it.
            let current = OutgoingEvent::new(Event {
                params: run.params.clone(),
                pipeline: run.pipeline.clone(),
                ..event.clone()
            });
            // A step is not a delivery; its id still identifies this call for the receiver.
            let mut message =
                self.origin
                    .outbound(DeliveryId::new(), &step, &current, Some(definition));
            message.stage = Some(stage);
            let mut answer = destination.call_step(&message, STEP_TIMEOUT).await;
            for _ in 1..MAX_STEP_ATTEMPTS {
                if !try_again(&answer) {
                    break;
                }
                answer = destination.call_step(&message, STEP_TIMEOUT).await;
            }
            match answer {
                StepAnswer::Accepted { json: None } => {}
                StepAnswer::Accepted { json: Some(body) } => {
                    let ignored = run.apply(&step.name, stage, &body).map_err(|problems| {
                        IngestError::StepAnswerInvalid {
                            step: step.name.clone(),
                            problems: problems.0,
                        }
                    })?;
                    if !ignored.is_empty() {
                        tracing::warn!(step = %step.name, ?ignored, expected = ?answer::KEYS,
                            "a synchronous step answered with keys Herald does not read");
                    }
                }
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
        Ok(run)
    }
}
