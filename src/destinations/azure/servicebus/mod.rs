//! Service Bus over AMQP 1.0 with `azure_core_amqp`: one connection per namespace (and
//! credential), one sender link per queue or topic, shared by every concurrent delivery.
//!
//! Each entity has a task that owns its link. Deliveries hand it their encoded message and
//! wait for the answer; the task sends whatever is waiting as one batch (message format
//! `0x80013700`, as the Azure SDKs batch) up to the link's maximum message size, renews the
//! entity's claims-based-security token before it expires, and re-opens the link (and the
//! connection) after a detach or a dropped connection, retrying the batch once at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Url;
use azure_core_amqp::AmqpMessage;
use tokio::sync::{mpsc, oneshot};

mod batch;
mod entity;
mod kind;
mod namespace;

pub use kind::{ServiceBus, ServiceBusInput};

use entity::Entity;
use namespace::Namespace;

use super::classify;
use super::credential::TokenSource;
use super::error::{BrokerError, SetupError};
use super::message;
use crate::destinations::network::NetworkPolicy;
use crate::destinations::{Destination, Outbound, Outcome};
use crate::model::{AzureSettings, Exchange};

/// The message format of a batch: each data section is a whole encoded message.
pub const BATCH_FORMAT: u32 = 0x8001_3700;
/// Messages in one batch at most.
const MAX_BATCH: usize = 256;
/// The maximum message size when the broker does not say (Service Bus Standard).
const DEFAULT_MAX_MESSAGE: u64 = 256 * 1024;
/// Room for the batch envelope and the data sections' own headers.
const BATCH_OVERHEAD: usize = 512;
/// Time for connecting, attaching or authorizing.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for the broker to settle a transfer.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Shares connections between the Service Bus endpoints of a namespace.
#[derive(Default)]
pub struct ServiceBusClient {
    namespaces: Mutex<HashMap<String, Weak<Namespace>>>,
}

impl ServiceBusClient {
    /// The destination of an endpoint's settings: its entity task, on the namespace's shared
    /// connection. `Err` when the credential cannot be used on this host.
    pub fn destination(
        &self,
        settings: &AzureSettings,
        policy: &NetworkPolicy,
    ) -> Result<ServiceBusDestination, SetupError> {
        let tokens = TokenSource::new(&settings.credential)?;
        // One connection per namespace and credential: a connection carries the tokens of
        // the entities it sends to, and two credentials must not overwrite each other's.
        let key = format!(
            "{}#{}",
            settings.amqp_url(),
            serde_json::to_string(&settings.credential).unwrap_or_default()
        );
        let namespace = {
            let mut map = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, ns| ns.strong_count() > 0);
            match map.get(&key).and_then(Weak::upgrade) {
                Some(ns) => ns,
                None => {
                    let url = Url::parse(&settings.amqp_url()).map_err(SetupError::NamespaceUrl)?;
                    let ns = Arc::new(Namespace {
                        url,
                        policy: policy.clone(),
                        tokens,
                        live: tokio::sync::Mutex::new(None),
                    });
                    map.insert(key, Arc::downgrade(&ns));
                    ns
                }
            }
        };
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let location = settings.describe();
        let entity = Entity {
            namespace,
            name: settings.entity.clone(),
            audience: settings.audience(),
            location: location.clone(),
            link: None,
        };
        tokio::spawn(entity.run(rx));
        Ok(ServiceBusDestination { jobs: tx, location })
    }
}

/// A Service Bus queue or topic.
pub struct ServiceBusDestination {
    jobs: mpsc::Sender<Job>,
    location: String,
}

/// One message waiting for its entity task.
struct Job {
    message: AmqpMessage,
    encoded: Vec<u8>,
    session: Option<String>,
    reply: oneshot::Sender<Outcome>,
}

#[async_trait]
impl Destination for ServiceBusDestination {
    async fn send(&self, out: &Outbound<'_>, exchange: &mut Exchange) -> Outcome {
        let built = match message::build(out) {
            Ok(b) => b,
            Err(e) => return classify::outcome(e.into()),
        };
        message::note(exchange, &built, &self.location);
        let encoded = match AmqpMessage::serialize(&built.message) {
            Ok(e) => e,
            Err(e) => return classify::outcome(BrokerError::Encode(e.into())),
        };
        let session = built
            .message
            .properties
            .as_ref()
            .and_then(|p| p.group_id.clone());
        let (reply, answer) = oneshot::channel();
        let job = Job {
            message: built.message,
            encoded,
            session,
            reply,
        };
        if self.jobs.send(job).await.is_err() {
            return classify::outcome(BrokerError::SenderStopped("Service Bus"));
        }
        let outcome = answer
            .await
            .unwrap_or_else(|_| classify::outcome(BrokerError::SenderStopped("Service Bus")));
        exchange.response = Some(message::disposition(&outcome));
        outcome
    }
}

fn timeout(doing: String, after: Duration) -> BrokerError {
    BrokerError::Timeout { doing, after }
}
