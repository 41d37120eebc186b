//! Why the registry refused a change.

use crate::store::StoreError;

/// Why an endpoint or subscription could not be created, changed or found.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A field of the declaration is wrong.
    #[error("`{field}` {problem}")]
    Invalid {
        /// The field, as the declaration names it (`url`, `credential.key`, `amqp.session_id`…).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No such endpoint, subscription or secret.
    #[error("{0}")]
    NotFound(String),
    /// The change contradicts what exists (a taken name, the last secret…).
    #[error("{0}")]
    Conflict(String),
    /// The caller sees it but may not change it (an endpoint shared with solutions its key
    /// does not cover).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// A wrong field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        RegistryError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<crate::destinations::kind::InputError> for RegistryError {
    fn from(e: crate::destinations::kind::InputError) -> Self {
        RegistryError::invalid(e.field, e.message)
    }
}
