//! Events emitted by plug-ins: submitted like any caller's, as a caller limited to the
//! plug-in's solution, one level deeper than the event the plug-in handles, so a chain of
//! plug-ins stops at `pipeline.max_depth` without anyone forwarding a header.

use std::sync::Weak;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Ingestor, Submission};
use crate::auth::Principal;
use crate::plugins::Emit;

/// Submits plug-ins' events to the ingestor (held weakly: the ingestor holds the runtime).
pub struct Emitter {
    /// The ingestor.
    pub ingestor: Weak<Ingestor>,
}

#[async_trait]
impl Emit for Emitter {
    async fn emit(
        &self,
        solution: &str,
        name: &str,
        params: Map<String, Value>,
        depth: u32,
    ) -> Result<String, String> {
        let ingestor = self
            .ingestor
            .upgrade()
            .ok_or_else(|| "Herald is stopping".to_owned())?;
        let caller = Principal {
            name: "plugin".into(),
            solutions: Some(vec![solution.to_owned()]),
            admin: false,
            system: false,
        };
        let submission = Submission {
            name: name.to_owned(),
            params: Value::Object(params),
            idempotency_key: None,
            correlation_id: None,
            depth,
            traceparent: None,
            images: None,
        };
        ingestor
            .submit(&caller, submission, &crate::telemetry::Tracing::none())
            .await
            .map(|accepted| accepted.id.to_string())
            .map_err(|e| e.to_string())
    }
}
