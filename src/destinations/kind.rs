//! What a destination kind provides. A kind (webhook, Service Bus, Event Hubs) lives in one
//! folder of `destinations/`: its input as the API and the configuration take it, the checks
//! that turn that input into its stored settings (against the network policy, keeping
//! write-only values an update leaves out), the sender it builds from them, and its view
//! (where it sends, nothing secret). The registry keeps only what every kind shares: names,
//! rate limits, health, secret rotation, routing. Kinds are registered in [`super::kinds`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use super::network::NetworkPolicy;
use super::view::DestinationView;
use super::{Destination, Destinations};

/// A field of an endpoint's input that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The field, as the caller wrote it (`url`, `headers[1].name`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InputError {
    /// `field` is wrong because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What an input's checks may use, and why the input is given.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// The networks destinations may reach.
    pub policy: &'a NetworkPolicy,
    /// The longest time a receiver may be given to answer.
    pub max_timeout: Duration,
    /// Declared by configuration at every start: values a receiver must know in advance
    /// (a webhook's secret) cannot be generated.
    pub declared: bool,
    /// An existing endpoint is being replaced (of this kind or another).
    pub replacing: bool,
}

/// Settings made from an input, with a signing secret Herald generated for them (shown once).
#[derive(Debug)]
pub struct Made<S> {
    /// The settings, secrets included.
    pub settings: S,
    /// A secret Herald generated, to show this once.
    pub generated: Option<String>,
}

/// Why a sender cannot be built on this host (say, an Azure identity it does not have): every
/// delivery to it fails with this reason.
pub type Unbuildable = Box<dyn std::error::Error + Send + Sync>;

/// What a destination kind provides.
pub trait Kind {
    /// Its input: the fields an endpoint of this kind takes besides those every endpoint has
    /// (`name`, `kind`, `rate_limit`, `max_concurrency`). Unknown fields are refused by name.
    type Input: DeserializeOwned + ToSchema + std::fmt::Debug + Clone + Send + Sync;
    /// Its stored settings (the model's, in [`DestinationSettings`]).
    type Settings;

    /// Checks `input` and makes its settings. `old` holds the settings of the endpoint being
    /// replaced when it was of this kind: write-only values the input leaves out are kept
    /// from it, but only for the host they were given for.
    fn settings(
        input: &Self::Input,
        old: Option<&Self::Settings>,
        checks: Checks<'_>,
    ) -> impl Future<Output = Result<Made<Self::Settings>, InputError>> + Send;

    /// Where it sends and how, nothing secret.
    fn view(settings: &Self::Settings) -> DestinationView;

    /// Its sender, built from `settings` with the shared clients of `destinations`.
    fn sender(
        settings: &Self::Settings,
        destinations: &Destinations,
    ) -> Result<Arc<dyn Destination>, Unbuildable>;
}
