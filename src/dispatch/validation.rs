//! The CloudEvents abuse-protection handshake at the endpoint gate: a webhook endpoint that
//! requires it gets no delivery until its receiver grants Herald's origin. The first delivery
//! that finds no grant makes the handshake (one instance at a time, claimed in the store);
//! deliveries wait meanwhile without spending attempts, and the lease query leaves the
//! endpoint alone while an answer, a callback or the next try is awaited. A refusal is asked
//! again on the probe backoff; a callback may come for ten minutes, as the specification says.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use time::OffsetDateTime;

use super::health::probe_backoff;
use super::Inner;
use crate::destinations::webhook::handshake::HandshakeRequest;
use crate::model::{
    DestinationSettings, Endpoint, GrantState, HandshakeAnswer, LeasedDelivery, NextState,
    Validation,
};
use crate::store::grants::Answered;

/// How long a receiver may take to call back (the specification's ten minutes).
const CALLBACK_WINDOW: Duration = Duration::from_secs(600);

/// The path of the callback a receiver grants through (`/v1/webhook-validation/{token}`).
pub const CALLBACK_PATH: &str = "/v1/webhook-validation/";

impl Inner {
    /// `Ok(allowed requests per minute)` when the endpoint may be sent to (`Ok(None)`: no
    /// handshake needed, or no rate given); `Err(next state)` while its receiver has not
    /// granted delivery.
    pub(super) async fn validated(
        &self,
        endpoint: &Endpoint,
        d: &LeasedDelivery,
    ) -> Result<Option<u32>, NextState> {
        let DestinationSettings::Webhook(w) = &endpoint.settings else {
            return Ok(None);
        };
        if w.validation == Validation::None {
            return Ok(None);
        }
        let board = self.registry.health();
        let granted = |g: &crate::model::Grant| g.url == w.url && g.state == GrantState::Granted;
        if let Some(g) = board.grant(endpoint.id).filter(granted) {
            return Ok(g.allowed_per_minute);
        }
        let wait = |why: String| Err(NextState::Wait(d.created_at, why));
        // Another instance may have got the grant (or a callback came) since the board was read.
        match self.store.grants().grant(endpoint.id).await {
            Ok(Some(g)) => {
                board.set_grant(g.clone());
                if granted(&g) {
                    return Ok(g.allowed_per_minute);
                }
            }
            Ok(None) => {}
            Err(e) => {
                return wait(format!(
                    "waiting: reading the webhook handshake failed: {e}"
                ))
            }
        }
        let webhooks = self.destinations.webhooks();
        let timeout = webhooks.timeout_for(w);
        let now = OffsetDateTime::now_utc();
        let claimed = self
            .store
            .grants()
            .claim_handshake(
                endpoint.id,
                &w.url,
                now,
                now + timeout + Duration::from_secs(5),
            )
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => {
                return wait(
                    "waiting: the receiver has not granted delivery yet (CloudEvents webhook handshake)"
                        .into(),
                )
            }
            Err(e) => return wait(format!("waiting: claiming the webhook handshake failed: {e}")),
        }
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut token);
        let token = URL_SAFE_NO_PAD.encode(token);
        let callback = format!("{}{CALLBACK_PATH}{token}", self.config.origin.public_url);
        let origin = webhooks.origin().unwrap_or("localhost").to_owned();
        let ask = HandshakeRequest {
            origin: &origin,
            rate_per_minute: endpoint
                .rate_limit
                .map(|r| (r.per_second * 60.0).ceil().max(1.0) as u32),
            callback: &callback,
        };
        let answer = webhooks.handshake(w, &ask, timeout).await;
        let attempts = board.grant(endpoint.id).map_or(0, |g| g.attempts);
        let now = OffsetDateTime::now_utc();
        let answered = Answered {
            answer: &answer,
            token: &token,
            callback_until: now + CALLBACK_WINDOW,
            next_try_at: now + probe_backoff(&self.config.health, attempts),
        };
        if let Err(e) = self
            .store
            .grants()
            .record_handshake(endpoint.id, &w.url, answered, now)
            .await
        {
            tracing::warn!(error = %e, endpoint = %endpoint.id, "recording a webhook handshake failed");
        }
        if let Ok(Some(g)) = self.store.grants().grant(endpoint.id).await {
            board.set_grant(g);
        }
        match answer {
            HandshakeAnswer::Granted(rate) => {
                tracing::info!(endpoint = %endpoint.id, ?rate, "the receiver granted delivery");
                Ok(rate)
            }
            HandshakeAnswer::Callback => wait(
                "waiting: the receiver will grant delivery through its callback (CloudEvents webhook handshake)"
                    .into(),
            ),
            HandshakeAnswer::Refused(why) => {
                tracing::warn!(endpoint = %endpoint.id, reason = why, "the receiver did not grant delivery");
                wait(format!(
                    "waiting: the receiver did not grant delivery ({why}); asked again later"
                ))
            }
        }
    }
}
