//! The CloudEvents handshake records, shared by every instance: one instance at a time makes
//! an endpoint's handshake (a conditional `UPDATE` claims it), its answer is recorded, and a
//! receiver's asynchronous grant arrives by the callback token. A new URL starts afresh.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::rows::{corrupt, from_millis, millis, Columns};
use super::sql::on_every_backend;
use super::StoreError;
use crate::model::{EndpointId, Grant, GrantState, HandshakeAnswer};

/// What a handshake's answer leads to.
#[derive(Debug, Clone)]
pub struct Answered<'a> {
    /// The answer.
    pub answer: &'a HandshakeAnswer,
    /// The callback token sent with the request (kept while a callback may come).
    pub token: &'a str,
    /// A callback may come until then.
    pub callback_until: OffsetDateTime,
    /// After a refusal, ask again then.
    pub next_try_at: OffsetDateTime,
}

/// Handshakes in the store.
#[async_trait]
pub trait GrantRecords: Send + Sync {
    /// Every handshake record.
    async fn grants(&self) -> Result<Vec<Grant>, StoreError>;
    /// One endpoint's, if it has one.
    async fn grant(&self, id: EndpointId) -> Result<Option<Grant>, StoreError>;
    /// Claims the handshake of endpoint `id` for `url` until `busy_until`: `true` for the one
    /// caller that should make it now (none is granted, out, awaiting a callback or waiting to
    /// be asked again). A record for another URL is started afresh.
    async fn claim_handshake(
        &self,
        id: EndpointId,
        url: &str,
        now: OffsetDateTime,
        busy_until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records how the receiver answered.
    async fn record_handshake(
        &self,
        id: EndpointId,
        url: &str,
        answered: Answered<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The receiver called back with `token`: granted, at `allowed_per_minute`. Returns the
    /// endpoint, or `None` for an unknown or expired token.
    async fn grant_by_callback(
        &self,
        token: &str,
        allowed_per_minute: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<Option<EndpointId>, StoreError>;
}

on_every_backend!(GrantRecords {
    async fn grants(&self) -> Result<Vec<Grant>, StoreError> {
        sqlx::query::<DB>("SELECT * FROM endpoint_grants")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    async fn grant(&self, id: EndpointId) -> Result<Option<Grant>, StoreError> {
        sqlx::query::<DB>("SELECT * FROM endpoint_grants WHERE endpoint_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(grant_from_row)
            .transpose()
    }

    async fn claim_handshake(
        &self,
        id: EndpointId,
        url: &str,
        now: OffsetDateTime,
        busy_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlx::query::<DB>(
            "INSERT INTO endpoint_grants (endpoint_id, url, state, attempts, changed_at) VALUES ($1, $2, 'requested', 0, $3)
             ON CONFLICT (endpoint_id) DO UPDATE SET url = excluded.url, state = 'requested',
               allowed_per_minute = NULL, token = NULL, busy_until = NULL, callback_until = NULL,
               next_try_at = NULL, attempts = 0, last_error = NULL, changed_at = excluded.changed_at
             WHERE endpoint_grants.url <> excluded.url",
        )
        .bind(id.to_string())
        .bind(url.to_owned())
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        let done = sqlx::query::<DB>(
            "UPDATE endpoint_grants SET busy_until = $1
             WHERE endpoint_id = $2 AND url = $3 AND state <> 'granted'
               AND (busy_until IS NULL OR busy_until <= $4)
               AND (callback_until IS NULL OR callback_until <= $4)
               AND (next_try_at IS NULL OR next_try_at <= $4)",
        )
        .bind(millis(busy_until))
        .bind(id.to_string())
        .bind(url.to_owned())
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn record_handshake(
        &self,
        id: EndpointId,
        url: &str,
        a: Answered<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (state, allowed, token, callback_until, next_try_at, error) = match a.answer {
            HandshakeAnswer::Granted(rate) => (
                GrantState::Granted,
                rate.map(i64::from),
                None,
                None,
                None,
                None,
            ),
            HandshakeAnswer::Callback => (
                GrantState::Requested,
                None,
                Some(a.token.to_owned()),
                Some(millis(a.callback_until)),
                None,
                Some("waiting for the receiver to call back".to_owned()),
            ),
            HandshakeAnswer::Refused(why) => (
                GrantState::Refused,
                None,
                None,
                None,
                Some(millis(a.next_try_at)),
                Some(why.clone()),
            ),
        };
        sqlx::query::<DB>(
            "UPDATE endpoint_grants SET state = $1, allowed_per_minute = $2, token = $3, callback_until = $4,
               next_try_at = $5, last_error = $6, busy_until = NULL, attempts = attempts + 1, changed_at = $7
             WHERE endpoint_id = $8 AND url = $9",
        )
        .bind(state.as_str().to_owned())
        .bind(allowed)
        .bind(token)
        .bind(callback_until)
        .bind(next_try_at)
        .bind(error)
        .bind(millis(now))
        .bind(id.to_string())
        .bind(url.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn grant_by_callback(
        &self,
        token: &str,
        allowed_per_minute: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<Option<EndpointId>, StoreError> {
        let row = sqlx::query::<DB>(
            "UPDATE endpoint_grants SET state = 'granted', allowed_per_minute = $1, token = NULL,
               callback_until = NULL, last_error = NULL, changed_at = $2
             WHERE token = $3 AND state = 'requested' AND callback_until > $2
             RETURNING endpoint_id",
        )
        .bind(allowed_per_minute.map(i64::from))
        .bind(millis(now))
        .bind(token.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            r.text("endpoint_id")?
                .parse()
                .map_err(|e: crate::model::IdParseError| corrupt("endpoint id", e.to_string()))
        })
        .transpose()
    }
});

fn grant_from_row(row: &impl Columns) -> Result<Grant, StoreError> {
    let state = row.text("state")?;
    Ok(Grant {
        endpoint_id: row
            .text("endpoint_id")?
            .parse()
            .map_err(|e: crate::model::IdParseError| corrupt("endpoint id", e.to_string()))?,
        url: row.text("url")?,
        state: GrantState::parse(&state).ok_or_else(|| corrupt("grant state", state))?,
        allowed_per_minute: row
            .opt_int("allowed_per_minute")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        callback_until: row.opt_int("callback_until")?.map(from_millis),
        next_try_at: row.opt_int("next_try_at")?.map(from_millis),
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        last_error: row.opt_text("last_error")?,
    })
}
