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
use azure_core_amqp::message::AmqpMessageBody;
use azure_core_amqp::{
    AmqpClaimsBasedSecurity, AmqpClaimsBasedSecurityApis, AmqpConnection, AmqpConnectionApis,
    AmqpConnectionOptions, AmqpMessage, AmqpSendOptions, AmqpSender, AmqpSenderApis, AmqpSession,
    AmqpSessionApis,
};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::classify;
use super::credential::{renew_at, TokenSource, SERVICE_BUS_SCOPE};
use super::error::{BrokerError, SetupError};
use super::message;
use crate::destinations::{Destination, Outbound, Outcome};
use crate::model::AzureSettings;

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
                        tokens,
                        live: tokio::sync::Mutex::new(None),
                    });
                    map.insert(key, Arc::downgrade(&ns));
                    ns
                }
            }
        };
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let entity = Entity {
            namespace,
            name: settings.entity.clone(),
            audience: settings.audience(),
            location: settings.describe(),
            link: None,
        };
        tokio::spawn(entity.run(rx));
        Ok(ServiceBusDestination { jobs: tx })
    }
}

/// A Service Bus queue or topic.
pub struct ServiceBusDestination {
    jobs: mpsc::Sender<Job>,
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
    async fn send(&self, out: &Outbound<'_>) -> Outcome {
        let built = match message::build(out) {
            Ok(b) => b,
            Err(e) => return classify::outcome(e.into()),
        };
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
        answer
            .await
            .unwrap_or_else(|_| classify::outcome(BrokerError::SenderStopped("Service Bus")))
    }
}

fn timeout(doing: String, after: Duration) -> BrokerError {
    BrokerError::Timeout { doing, after }
}

/// A namespace: its URL, its tokens and its connection when open.
struct Namespace {
    url: Url,
    tokens: TokenSource,
    live: tokio::sync::Mutex<Option<Arc<OpenConnection>>>,
}

/// An open connection with its claims-based-security link.
struct OpenConnection {
    connection: AmqpConnection,
    cbs: AmqpClaimsBasedSecurity,
}

impl Namespace {
    /// The open connection, opened now if there is none.
    async fn live(&self) -> Result<Arc<OpenConnection>, BrokerError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            return Ok(l.clone());
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, self.open())
            .await
            .unwrap_or_else(|_| {
                Err(timeout(format!("connecting to {}", self.url), OPEN_TIMEOUT))
            })?;
        let opened = Arc::new(opened);
        *live = Some(opened.clone());
        Ok(opened)
    }

    async fn open(&self) -> Result<OpenConnection, BrokerError> {
        let failed = |doing: &str, e: azure_core::Error| {
            classify::client_error(format!("{doing} {}", self.url), e)
        };
        let connection = AmqpConnection::new();
        let name = format!("herald-{}", uuid::Uuid::new_v4());
        connection
            .open(
                name,
                self.url.clone(),
                Some(AmqpConnectionOptions {
                    idle_timeout: Some(azure_core::time::Duration::seconds(120)),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| failed("connecting to", e.into()))?;
        let cbs_session = AmqpSession::new();
        cbs_session
            .begin(&connection, None)
            .await
            .map_err(|e| failed("beginning a session on", e.into()))?;
        let cbs = AmqpClaimsBasedSecurity::new(cbs_session)
            .map_err(|e| failed("opening claims-based security on", e.into()))?;
        cbs.attach()
            .await
            .map_err(|e| failed("opening claims-based security on", e.into()))?;
        tracing::info!(namespace = %self.url, "connected to Service Bus");
        Ok(OpenConnection { connection, cbs })
    }

    /// Forgets `broken` (if it is still the open connection) so the next use reconnects.
    async fn forget(&self, broken: &Arc<OpenConnection>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            *live = None;
            let _ = tokio::time::timeout(Duration::from_secs(2), broken.connection.close()).await;
        }
    }
}

/// The entity task's state.
struct Entity {
    namespace: Arc<Namespace>,
    name: String,
    audience: String,
    location: String,
    link: Option<Link>,
}

/// An attached sender link, on a session of its own: a broker refusing one entity's attach
/// (say, a missing queue) then cannot disturb the links of other entities.
struct Link {
    live: Arc<OpenConnection>,
    _session: AmqpSession,
    sender: AmqpSender,
    max_message: usize,
    renew_at: OffsetDateTime,
}

impl Entity {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        loop {
            let renew = self.link.as_ref().map(|l| l.renew_at);
            let until_renew = renew
                .map(|at| {
                    (at - OffsetDateTime::now_utc())
                        .try_into()
                        .unwrap_or_default()
                })
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                n = rx.recv_many(&mut jobs, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                }
                _ = tokio::time::sleep(until_renew), if renew.is_some() => {
                    if let Some(link) = self.link.take() {
                        match self.authorize(&link.live).await {
                            Ok(at) => self.link = Some(Link { renew_at: at, ..link }),
                            Err(e) => {
                                tracing::warn!(entity = %self.location, error = %crate::destinations::error_chain(&e), "renewing the token failed; the link is re-opened with the next message");
                                let _ = link.sender.detach().await;
                            }
                        }
                    }
                    continue;
                }
            }
            let mut rest = std::mem::take(&mut jobs).into_iter().peekable();
            while rest.peek().is_some() {
                let max = self
                    .link
                    .as_ref()
                    .map_or(DEFAULT_MAX_MESSAGE as usize, |l| l.max_message);
                let batch = take_batch(&mut rest, max);
                self.send_batch(batch).await;
            }
        }
        if let Some(link) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), link.sender.detach()).await;
        }
    }

    /// Sends `batch`, answers every job, and splits a refused batch into single messages so
    /// one bad message does not fail the others.
    async fn send_batch(&mut self, batch: Vec<Job>) {
        let outcome = self.send_with_recovery(&batch).await;
        if batch.len() > 1 && matches!(outcome, Outcome::Permanent { .. }) && self.link.is_some() {
            for job in batch {
                let outcome = self.send_with_recovery(std::slice::from_ref(&job)).await;
                let _ = job.reply.send(outcome);
            }
            return;
        }
        for job in batch {
            let _ = job.reply.send(outcome.clone());
        }
    }

    /// Sends once; on a failure of the link or connection, re-opens them and sends again once.
    async fn send_with_recovery(&mut self, batch: &[Job]) -> Outcome {
        let first = self.send_once(batch).await;
        match first {
            Outcome::Retry { ref error, .. } => {
                tracing::info!(entity = %self.location, error = %error, "re-opening the Service Bus link and sending again");
                self.send_once(batch).await
            }
            other => other,
        }
    }

    async fn send_once(&mut self, batch: &[Job]) -> Outcome {
        if self.link.is_none() {
            match self.attach().await {
                Ok(link) => self.link = Some(link),
                Err(e) => return classify::outcome(e),
            }
        }
        let link = self.link.as_ref().expect("attached above");
        let (envelope, format) = envelope(batch);
        tracing::debug!(entity = %self.location, messages = batch.len(), "sending");
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            link.sender.send_ref(
                &envelope,
                Some(AmqpSendOptions {
                    message_format: format,
                    settled: None,
                }),
            ),
        )
        .await;
        // A broker that refuses the message leaves the link usable; any other failure may
        // have broken the link, and the connection with it: re-open both.
        tracing::debug!(entity = %self.location, settled = sent.is_ok(), "sent");
        let (outcome, broken) = match sent {
            Ok(Ok(o)) => match classify::disposition(&o) {
                None => (Outcome::Delivered { status: None }, false),
                Some(e) => (classify::outcome(e), false),
            },
            Ok(Err(e)) => (
                classify::outcome(classify::client_error(
                    format!("sending to {}", self.location),
                    e.into(),
                )),
                true,
            ),
            Err(_) => (
                classify::outcome(timeout(
                    format!("waiting for {} to settle the message", self.location),
                    SEND_TIMEOUT,
                )),
                true,
            ),
        };
        if broken {
            if let Some(link) = self.link.take() {
                self.namespace.forget(&link.live).await;
            }
        }
        outcome
    }

    /// Attaches a sender link, authorizing the entity first.
    async fn attach(&mut self) -> Result<Link, BrokerError> {
        let live = self.namespace.live().await?;
        tracing::debug!(entity = %self.location, "authorizing and attaching");
        let renew_at = match self.authorize(&live).await {
            Ok(at) => at,
            Err(e) => {
                if !classify::is_permanent(&e) {
                    self.namespace.forget(&live).await;
                }
                return Err(e);
            }
        };
        let session = AmqpSession::new();
        let sender = AmqpSender::new();
        let name = format!("herald-{}-{}", self.name, uuid::Uuid::new_v4());
        let attached = tokio::time::timeout(OPEN_TIMEOUT, async {
            session.begin(&live.connection, None).await?;
            sender.attach(&session, name, self.name.clone(), None).await
        })
        .await;
        match attached {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = classify::client_error(format!("attaching to {}", self.location), e.into());
                if !classify::is_permanent(&e) {
                    self.namespace.forget(&live).await;
                }
                return Err(e);
            }
            Err(_) => {
                self.namespace.forget(&live).await;
                return Err(timeout(
                    format!("attaching to {}", self.location),
                    OPEN_TIMEOUT,
                ));
            }
        }
        tracing::debug!(entity = %self.location, "attached");
        let max_message = sender
            .max_message_size()
            .await
            .ok()
            .flatten()
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_MESSAGE)
            .min(usize::MAX as u64) as usize;
        Ok(Link {
            live,
            _session: session,
            sender,
            max_message,
            renew_at,
        })
    }

    /// Puts a token for the entity on the connection; returns when to renew it.
    async fn authorize(&self, live: &OpenConnection) -> Result<OffsetDateTime, BrokerError> {
        let token = self
            .namespace
            .tokens
            .token(&self.audience, SERVICE_BUS_SCOPE)
            .await?;
        let authorized = tokio::time::timeout(
            OPEN_TIMEOUT,
            live.cbs.authorize_path(
                self.audience.clone(),
                Some(token.kind.to_owned()),
                &token.value,
                token.expires,
            ),
        )
        .await;
        match authorized {
            Ok(Ok(())) => Ok(renew_at(OffsetDateTime::now_utc(), token.expires)),
            Ok(Err(e)) => Err(classify::client_error(
                format!("authorizing {}", self.location),
                e.into(),
            )),
            Err(_) => Err(timeout(
                format!("authorizing {}", self.location),
                OPEN_TIMEOUT,
            )),
        }
    }
}

/// Takes the next batch: jobs of one session id whose encoded size fits in `max` bytes
/// (always at least one job).
fn take_batch(jobs: &mut std::iter::Peekable<std::vec::IntoIter<Job>>, max: usize) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut size = BATCH_OVERHEAD;
    while let Some(next) = jobs.peek() {
        let fits = size + next.encoded.len() + 8 <= max;
        let same_session = batch.first().is_none_or(|b| b.session == next.session);
        if !batch.is_empty() && (!fits || !same_session) {
            break;
        }
        size += next.encoded.len() + 8;
        batch.push(jobs.next().expect("peeked"));
    }
    batch
}

/// What goes on the wire for `batch`: the message itself when alone, otherwise a batch
/// envelope whose data sections are the encoded messages, with the first message's id and
/// session id as Service Bus expects.
fn envelope(batch: &[Job]) -> (AmqpMessage, Option<u32>) {
    if let [one] = batch {
        return (one.message.clone(), None);
    }
    let first = batch[0].message.properties.as_ref();
    let envelope = AmqpMessage {
        body: AmqpMessageBody::Binary(batch.iter().map(|j| j.encoded.clone()).collect()),
        properties: Some(azure_core_amqp::message::AmqpMessageProperties {
            message_id: first.and_then(|p| p.message_id.clone()),
            group_id: first.and_then(|p| p.group_id.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    (envelope, Some(BATCH_FORMAT))
}
