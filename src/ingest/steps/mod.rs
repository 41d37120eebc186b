//! Synchronous steps: webhooks called and plug-ins run in the request path, by stage
//! (pre-validation, pre-operation, post-operation) then rank, before the event is stored, as
//! Dataverse runs synchronous plug-ins and webhooks. A step may change the parameters, set response
//! properties and shared variables (`answer.rs`); later steps see what earlier ones did. A
//! refusal at any stage cancels the event and the caller gets the receiver's (or plug-in's)
//! message; a webhook has 60 s and one more attempt only after 502, 503 or 504 (decided here,
//! not by the webhook client); a plug-in has the sandbox's limits and no second attempt. Only events whose `allowed_steps` is `sync_and_async` can have them.

mod answer;

pub use answer::Run;

use std::sync::Arc;
use std::time::Duration;

use crate::destinations::webhook::{StepAnswer, WebhookClient};
use crate::destinations::{Destinations, Origin};
use crate::model::{
    DeliveryId, DestinationSettings, Event, EventDefinition, OutgoingEvent, PluginSettings, Stage,
    Subscription,
};
use crate::plugins::document::{self, Purpose};
use crate::plugins::Answer;
use crate::store::Store;
use crate::telemetry::Span;
use opentelemetry::trace::SpanKind;

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
    /// The plug-in runtime, once enabled.
    pub destinations: Arc<Destinations>,
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
        span: &Span,
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
            let stage = step.stage.unwrap_or(Stage::PreOperation);
            let settings = match endpoint.settings {
                DestinationSettings::Webhook(settings) => settings,
                DestinationSettings::Plugin(plugin) => {
                    self.run_plugin(event, &step.name, stage, &plugin, &mut run, span)
                        .await?;
                    continue;
                }
                _ => {
                    // Subscriptions refuse synchronous steps on other kinds; one changed since.
                    return Err(IngestError::StepFailed {
                        step: step.name,
                        message: "a synchronous step must call a webhook or run a plug-in".into(),
                    });
                }
            };
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
                    apply(&mut run, &step.name, stage, &body)?;
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

/// Applies a step's JSON answer to `run`, naming the step when it is invalid.
fn apply(run: &mut Run<'_>, step: &str, stage: Stage, body: &[u8]) -> Result<(), IngestError> {
    let ignored =
        run.apply(step, stage, body)
            .map_err(|problems| IngestError::StepAnswerInvalid {
                step: step.to_owned(),
                problems: problems.0,
            })?;
    if !ignored.is_empty() {
        tracing::warn!(step, ?ignored, expected = ?answer::KEYS,
            "a synchronous step answered with keys Herald does not read");
    }
    Ok(())
}

impl SyncSteps {
    /// Runs the plug-in step `step` registered with `plugin` at `stage` on the event as `run`
    /// has it so far: its answer applies like a webhook's, its refusal cancels the event.
    async fn run_plugin(
        &self,
        event: &Event,
        step: &str,
        stage: Stage,
        plugin: &PluginSettings,
        run: &mut Run<'_>,
        parent: &Span,
    ) -> Result<(), IngestError> {
        let failed = |message: String| IngestError::StepFailed {
            step: step.to_owned(),
            message,
        };
        let runtime = self
            .destinations
            .plugins()
            .ok_or_else(|| failed("plug-ins are not enabled on this instance".into()))?;
        let loaded = runtime
            .load(plugin)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let doc = document::event(event, &run.params, &run.pipeline.shared_variables);
        let input = document::input(
            Purpose::Step(stage.as_str()),
            &loaded.version,
            plugin,
            doc,
            serde_json::Map::new(),
        );
        // One span per execution, named by the plug-in version.
        let span = parent.child(format!("plugin {}", loaded.version), SpanKind::Internal);
        if span.recording() {
            span.set("herald.plugin", loaded.version.name.clone());
            span.set("herald.plugin.version", i64::from(loaded.version.version));
            span.set("herald.step", step.to_owned());
            span.set("herald.stage", stage.as_str());
        }
        let (answer, logs) = runtime
            .run_logged(&loaded, plugin, event.depth, &input)
            .await;
        for line in logs {
            span.event(
                "plugin.log",
                vec![("level", line.level.to_owned()), ("message", line.message)],
            );
        }
        match &answer {
            Ok(Answer::Refused(message)) => span.fail(format!("refused: {message}")),
            Err(e) => span.fail(e.to_string()),
            Ok(Answer::Ok(_)) => {}
        }
        span.end();
        match answer {
            Ok(Answer::Ok(text)) => apply(run, step, stage, text.as_bytes()),
            Ok(Answer::Refused(message)) => {
                tracing::info!(step, plugin = %loaded.version, "a plug-in step cancelled the event");
                Err(IngestError::Vetoed {
                    step: step.to_owned(),
                    status: 400,
                    message,
                })
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}
