//! The one place destination kinds are registered: the [`kinds!`] line of each kind writes the
//! input enum and the dispatch from a stored variant to its kind, so no other code matches on
//! kinds. What a kind provides is [`super::kind::Kind`].
//!
//! Adding a kind: its arm in the model's [`DestinationSettings`] (with its settings type beside
//! it in `model/endpoint/`), its folder in `destinations/` implementing `Kind`, and its line
//! below.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::kind::{Checks, InputError, Kind, Made, Unbuildable};
use super::view::DestinationView;
use super::{azure, plugin, webhook, Destination, Destinations};
use crate::model::{DestinationSettings, EndpointKind};

/// The input of `T` from the fields of a body, each error naming its field.
fn parse<T: DeserializeOwned>(fields: Map<String, Value>) -> Result<T, InputError> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let field = e.path().to_string();
        InputError::new(
            if field == "." {
                "body".to_owned()
            } else {
                field
            },
            e.into_inner().to_string(),
        )
    })
}

/// Registers the kinds: each line names the model's [`EndpointKind`] and
/// [`DestinationSettings`] variant and the type implementing [`Kind`]. It writes the input
/// enum and the dispatch from a variant to its kind, so no other code matches on kinds.
macro_rules! kinds {
    ($($variant:ident => $kind:ty),+ $(,)?) => {
        /// An endpoint's destination as a caller gives it: the input of its kind.
        #[derive(Debug, Clone)]
        pub enum DestinationInput {
            $(
                #[allow(missing_docs)]
                $variant(<$kind as Kind>::Input),
            )+
        }

        impl DestinationInput {
            /// Its kind.
            pub fn kind(&self) -> EndpointKind {
                match self {
                    $(DestinationInput::$variant(_) => EndpointKind::$variant,)+
                }
            }

            /// The input of `kind` from the fields of a body (without the ones every endpoint
            /// has); an unknown field is refused by name.
            pub fn parse(kind: EndpointKind, fields: Map<String, Value>) -> Result<Self, InputError> {
                Ok(match kind {
                    $(EndpointKind::$variant => DestinationInput::$variant(parse(fields)?),)+
                })
            }

            /// Checks it and makes its settings; `old` is the endpoint's settings before (an
            /// update), whose write-only values a kind may keep.
            pub async fn settings(
                &self,
                old: Option<&DestinationSettings>,
                checks: Checks<'_>,
            ) -> Result<Made<DestinationSettings>, InputError> {
                match self {
                    $(DestinationInput::$variant(input) => {
                        let old = match old {
                            Some(DestinationSettings::$variant(s)) => Some(s),
                            _ => None,
                        };
                        let made = <$kind as Kind>::settings(input, old, checks).await?;
                        Ok(Made {
                            settings: DestinationSettings::$variant(made.settings),
                            generated: made.generated,
                        })
                    })+
                }
            }
        }

        /// The schema of each kind's input, for the OpenAPI document.
        pub fn input_schemas() -> Vec<(EndpointKind, RefOr<Schema>)> {
            vec![$((EndpointKind::$variant, <<$kind as Kind>::Input as PartialSchema>::schema()),)+]
        }

        /// The schemas the kinds' inputs refer to, for the document's components.
        pub fn input_references(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            $(<<$kind as Kind>::Input as ToSchema>::schemas(schemas);)+
        }

        /// Where `settings` send and how, nothing secret.
        pub fn view(settings: &DestinationSettings) -> DestinationView {
            match settings {
                $(DestinationSettings::$variant(s) => <$kind as Kind>::view(s),)+
            }
        }

        /// The sender of `settings`.
        pub(super) fn sender(
            settings: &DestinationSettings,
            destinations: &Destinations,
        ) -> Result<Arc<dyn Destination>, Unbuildable> {
            match settings {
                $(DestinationSettings::$variant(s) => <$kind as Kind>::sender(s, destinations),)+
            }
        }
    };
}

kinds! {
    Webhook => webhook::Webhook,
    ServiceBus => azure::servicebus::ServiceBus,
    EventHubs => azure::eventhubs::EventHubs,
    Plugin => plugin::Plugin,
}
