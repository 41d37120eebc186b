//! Why an event was not accepted: each refusal names what a caller can fix, and nothing of a
//! refused event was stored.

use crate::catalog::ParamProblem;
use crate::model::event::DEPTH_CAP;
use crate::model::EventId;
use crate::store::StoreError;

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No cataloged event of that name.
    #[error("no cataloged event called \"{0}\"")]
    UnknownEvent(String),
    /// A custom process action that is deactivated.
    #[error("\"{0}\" is a custom process action that is deactivated; activate it to invoke it")]
    Disabled(String),
    /// The key may not send events of that solution.
    #[error("the API key \"{key}\" may not send events of solution \"{solution}\"")]
    Forbidden {
        /// The key's name.
        key: String,
        /// The event's solution.
        solution: String,
    },
    /// The parameters are not a JSON object.
    #[error("the request body must be a JSON object of the event's parameters")]
    NotAnObject,
    /// Parameters are wrong.
    #[error("{} parameter(s) of {event} are invalid", problems.len())]
    Invalid {
        /// The event.
        event: String,
        /// Each problem.
        problems: Vec<ParamProblem>,
    },
    /// A synchronous step refused the event: nothing was stored.
    #[error("{message}")]
    Vetoed {
        /// The step's subscription name.
        step: String,
        /// The status it answered.
        status: u16,
        /// Its message, passed on to the caller.
        message: String,
    },
    /// A synchronous step could not be reached: nothing was stored.
    #[error(
        "the synchronous step \"{step}\" could not be called: {}",
        crate::destinations::error_chain(cause)
    )]
    StepUnreachable {
        /// The step's subscription name.
        step: String,
        /// Why.
        cause: crate::destinations::webhook::WebhookError,
    },
    /// A synchronous step cannot be called as registered: nothing was stored.
    #[error("the synchronous step \"{step}\" could not be called: {message}")]
    StepFailed {
        /// The step's subscription name.
        step: String,
        /// Why.
        message: String,
    },
    /// A synchronous step answered with values that are not valid for the event: nothing
    /// was stored.
    #[error(
        "the synchronous step \"{step}\" answered with invalid values: {}",
        problems.iter().map(|p| if p.parameter.is_empty() { p.problem.clone() } else { format!("{}: {}", p.parameter, p.problem) }).collect::<Vec<_>>().join("; ")
    )]
    StepAnswerInvalid {
        /// The step's subscription name.
        step: String,
        /// Each problem, naming its parameter (`response.<name>` for a response property).
        problems: Vec<ParamProblem>,
    },
    /// A required response property that no synchronous step set: nothing was stored.
    #[error(
        "{event} must answer with {}, but no synchronous step set {}",
        missing.iter().map(|p| p.parameter.as_str()).collect::<Vec<_>>().join(", "),
        if missing.len() == 1 { "it" } else { "them" }
    )]
    ResponseIncomplete {
        /// The event.
        event: String,
        /// Each missing property.
        missing: Vec<ParamProblem>,
    },
    /// The event was sent while a receiver handled an event of the same chain, too deep.
    #[error(
        "{event} would run at depth {depth}, past the maximum of {max}: the chain of events with correlation id \"{correlation_id}\" loops (every event a receiver sends while handling a Herald delivery is one deeper)"
    )]
    TooDeep {
        /// The event.
        event: String,
        /// Its depth.
        depth: u32,
        /// The maximum.
        max: u32,
        /// The chain's correlation id.
        correlation_id: String,
    },
    /// The depth header is not a number.
    #[error("{header} must be the depth of the event being handled: a whole number from 1 to {DEPTH_CAP}")]
    BadDepth {
        /// The header's name.
        header: &'static str,
    },
    /// The idempotency key is not usable.
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    BadIdempotencyKey,
    /// The correlation id is not usable: it travels in a header of every delivery.
    #[error("the correlation id must be 1 to 255 visible ASCII characters")]
    BadCorrelationId,
    /// The idempotency key was used for another event with a different request: nothing was
    /// stored.
    #[error("this idempotency key was used for event {id} with a different request")]
    KeyReused {
        /// The event the key was first used for.
        id: EventId,
    },
    /// The store failed (nothing was stored).
    #[error(transparent)]
    Store(#[from] StoreError),
}
