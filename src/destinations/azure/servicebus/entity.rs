//! The task of one queue or topic: it owns the sender link (on a session of its own), sends
//! what is waiting as batches, renews the entity's token before it expires, and re-opens the
//! link and connection after a failure, sending once more at once.

use std::sync::Arc;
use std::time::Duration;

use azure_core_amqp::{
    AmqpClaimsBasedSecurityApis, AmqpSendOptions, AmqpSender, AmqpSenderApis, AmqpSession,
    AmqpSessionApis,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::batch::{envelope, take_batch};
use super::namespace::{Namespace, OpenConnection};
use super::{timeout, Job, DEFAULT_MAX_MESSAGE, MAX_BATCH, OPEN_TIMEOUT, SEND_TIMEOUT};
use crate::destinations::azure::classify;
use crate::destinations::azure::credential::{renew_at, SERVICE_BUS_SCOPE};
use crate::destinations::azure::error::BrokerError;
use crate::destinations::Outcome;

/// The entity task's state.
pub(super) struct Entity {
    pub(super) namespace: Arc<Namespace>,
    pub(super) name: String,
    pub(super) audience: String,
    pub(super) location: String,
    pub(super) link: Option<Link>,
}

/// An attached sender link, on a session of its own: a broker refusing one entity's attach
/// (say, a missing queue) then cannot disturb the links of other entities.
pub(super) struct Link {
    live: Arc<OpenConnection>,
    _session: AmqpSession,
    sender: AmqpSender,
    max_message: usize,
    renew_at: OffsetDateTime,
}

impl Entity {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
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
