//! Event Hubs with `azure_messaging_eventhubs`: one `ProducerClient` per endpoint's hub, kept
//! open. Like Service Bus, each hub has a task that takes every delivery waiting and sends
//! them as `EventDataBatch`es, one per partition key (or to the endpoint's fixed partition).

mod kind;

pub use kind::{EventHubs, EventHubsInput};

use std::time::Duration;

use async_trait::async_trait;
use azure_core_amqp::AmqpMessage;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};
use tokio::sync::{mpsc, oneshot};

use super::classify;
use super::credential::TokenSource;
use super::error::{BrokerError, SetupError};
use super::message;
use crate::destinations::network::NetworkPolicy;
use crate::destinations::{Destination, Outbound, Outcome};
use crate::model::{AzureSettings, Exchange};

/// Events taken at once at most.
const MAX_TAKE: usize = 256;
/// Time for opening the producer.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for one batch (the SDK retries inside it).
const SEND_TIMEOUT: Duration = Duration::from_secs(90);

/// An event hub.
pub struct EventHubsDestination {
    jobs: mpsc::Sender<Job>,
    location: String,
}

struct Job {
    message: AmqpMessage,
    partition_key: Option<String>,
    reply: oneshot::Sender<Outcome>,
}

impl EventHubsDestination {
    /// The destination of an endpoint's settings; `Err` when the credential cannot be used here.
    pub fn new(settings: &AzureSettings, policy: &NetworkPolicy) -> Result<Self, SetupError> {
        let tokens = TokenSource::new(&settings.credential)?;
        let (tx, rx) = mpsc::channel(MAX_TAKE * 4);
        let hub = Hub {
            settings: settings.clone(),
            policy: policy.clone(),
            tokens,
            producer: None,
            location: settings.describe(),
        };
        tokio::spawn(hub.run(rx));
        Ok(Self {
            jobs: tx,
            location: settings.describe(),
        })
    }
}

#[async_trait]
impl Destination for EventHubsDestination {
    async fn send(&self, out: &Outbound<'_>, exchange: &mut Exchange) -> Outcome {
        let built = match message::build(out) {
            Ok(b) => b,
            Err(e) => return classify::outcome(e.into()),
        };
        message::note(exchange, &built, &self.location);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            message: built.message,
            partition_key: built.partition_key,
            reply,
        };
        if self.jobs.send(job).await.is_err() {
            return classify::outcome(BrokerError::SenderStopped("Event Hubs"));
        }
        let outcome = answer
            .await
            .unwrap_or_else(|_| classify::outcome(BrokerError::SenderStopped("Event Hubs")));
        exchange.response = Some(message::disposition(&outcome));
        outcome
    }
}

fn timeout(doing: String, after: Duration) -> Outcome {
    classify::outcome(BrokerError::Timeout { doing, after })
}

/// The hub task's state.
struct Hub {
    settings: AzureSettings,
    /// Checked before every connection.
    policy: NetworkPolicy,
    tokens: TokenSource,
    producer: Option<ProducerClient>,
    location: String,
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_TAKE);
        while rx.recv_many(&mut jobs, MAX_TAKE).await > 0 {
            // One batch per partition key, in the order the keys first appear.
            let mut groups: Vec<(Option<String>, Vec<Job>)> = Vec::new();
            for job in jobs.drain(..) {
                let key = job.partition_key.clone();
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, g)) => g.push(job),
                    None => groups.push((key, vec![job])),
                }
            }
            for (key, group) in groups {
                self.send_group(key, group).await;
            }
        }
        self.reset().await;
    }

    /// Sends one partition key's jobs in as many batches as their size needs; a failed send
    /// is tried once more on a new producer.
    async fn send_group(&mut self, key: Option<String>, mut rest: Vec<Job>) {
        while !rest.is_empty() {
            let (mut outcome, mut sent) = self.send_some(&key, &mut rest).await;
            if matches!(outcome, Outcome::Retry { .. }) {
                // The producer may be broken: open a new one and try once more at once.
                self.reset().await;
                sent.append(&mut rest);
                rest = sent;
                (outcome, sent) = self.send_some(&key, &mut rest).await;
            }
            if !matches!(outcome, Outcome::Delivered { .. }) {
                self.reset().await;
            }
            for job in sent {
                let _ = job.reply.send(outcome.clone());
            }
        }
    }

    async fn reset(&mut self) {
        if let Some(p) = self.producer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.close()).await;
        }
    }

    /// Fills one batch from the front of `rest` and sends it; returns its outcome and its jobs.
    async fn send_some(
        &mut self,
        key: &Option<String>,
        rest: &mut Vec<Job>,
    ) -> (Outcome, Vec<Job>) {
        if self.producer.is_none() {
            match self.open().await {
                Ok(p) => self.producer = Some(p),
                Err(o) => return (o, std::mem::take(rest)),
            }
        }
        let producer = self.producer.as_ref().expect("opened above");
        let options = EventDataBatchOptions {
            partition_id: self.settings.partition_id.clone(),
            partition_key: if self.settings.partition_id.is_some() {
                None
            } else {
                key.clone()
            },
            max_size_in_bytes: None,
        };
        let batch =
            match tokio::time::timeout(OPEN_TIMEOUT, producer.create_batch(Some(options))).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    let e = classify::client_error(
                        format!("opening a sender to {}", self.location),
                        e.into(),
                    );
                    return (classify::outcome(e), std::mem::take(rest));
                }
                Err(_) => {
                    return (
                        timeout(
                            format!("opening a sender to {}", self.location),
                            OPEN_TIMEOUT,
                        ),
                        std::mem::take(rest),
                    )
                }
            };
        let mut taken = Vec::new();
        while let Some(job) = rest.first() {
            match batch.try_add_amqp_message(job.message.clone(), None) {
                Ok(true) => taken.push(rest.remove(0)),
                Ok(false) if taken.is_empty() => {
                    let job = rest.remove(0);
                    let o = classify::outcome(BrokerError::TooLarge(self.location.clone()));
                    return (o, vec![job]);
                }
                Ok(false) => break,
                Err(e) => {
                    let job = rest.remove(0);
                    return (classify::outcome(BrokerError::Encode(e.into())), vec![job]);
                }
            }
        }
        let sent = tokio::time::timeout(SEND_TIMEOUT, producer.send_batch(batch, None)).await;
        let outcome = match sent {
            Ok(Ok(())) => Outcome::Delivered { status: None },
            Ok(Err(e)) => classify::outcome(classify::client_error(
                format!("sending to {}", self.location),
                e.into(),
            )),
            Err(_) => timeout(
                format!("waiting for {} to accept the batch", self.location),
                SEND_TIMEOUT,
            ),
        };
        (outcome, taken)
    }

    /// Opens the producer with the endpoint's credential.
    async fn open(&self) -> Result<ProducerClient, Outcome> {
        let s = &self.settings;
        // The SDK resolves the host again as it connects; a name that moved to a refused
        // address in between is caught at the next connection.
        if let Err(e) = self.policy.check_host(&s.host, s.amqp_port()).await {
            return Err(classify::outcome(e.into()));
        }
        let mut builder = ProducerClient::builder().with_application_id("herald".into());
        if s.emulator || s.port.is_some() {
            builder = builder.with_custom_endpoint(s.amqp_url());
        }
        let opening = async {
            // The SDK signs and renews SAS tokens itself from a connection string.
            match &self.tokens {
                TokenSource::Entra(credential) => {
                    builder.open(&s.host, &s.entity, credential.clone()).await
                }
                TokenSource::Key { name, key } => {
                    let cs = format!(
                        "Endpoint=sb://{}/;SharedAccessKeyName={name};SharedAccessKey={}",
                        s.host,
                        key.secret()
                    );
                    builder
                        .open_with_connection_string(&cs, Some(&s.entity))
                        .await
                }
                TokenSource::Fixed { token, .. } => {
                    let cs = format!(
                        "Endpoint=sb://{}/;SharedAccessSignature={}",
                        s.host,
                        token.secret()
                    );
                    builder
                        .open_with_connection_string(&cs, Some(&s.entity))
                        .await
                }
            }
        };
        match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(Ok(p)) => {
                tracing::info!(hub = %self.location, "connected to Event Hubs");
                Ok(p)
            }
            Ok(Err(e)) => Err(classify::outcome(classify::client_error(
                format!("connecting to {}", self.location),
                e.into(),
            ))),
            Err(_) => Err(timeout(
                format!("connecting to {}", self.location),
                OPEN_TIMEOUT,
            )),
        }
    }
}
