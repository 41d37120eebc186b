//! A Service Bus namespace: its URL, its token source, and the one connection (with its
//! claims-based-security link) its entities share, opened on demand and forgotten when broken.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Url;
use azure_core_amqp::{
    AmqpClaimsBasedSecurity, AmqpClaimsBasedSecurityApis, AmqpConnection, AmqpConnectionApis,
    AmqpConnectionOptions, AmqpSession, AmqpSessionApis,
};

use super::{timeout, OPEN_TIMEOUT};
use crate::destinations::azure::classify;
use crate::destinations::azure::credential::TokenSource;
use crate::destinations::azure::error::BrokerError;
use crate::destinations::network::NetworkPolicy;

/// A namespace: its URL, its tokens and its connection when open.
pub(super) struct Namespace {
    pub(super) url: Url,
    /// Checked before every connection.
    pub(super) policy: NetworkPolicy,
    pub(super) tokens: TokenSource,
    pub(super) live: tokio::sync::Mutex<Option<Arc<OpenConnection>>>,
}

/// An open connection with its claims-based-security link.
pub(super) struct OpenConnection {
    pub(super) connection: AmqpConnection,
    pub(super) cbs: AmqpClaimsBasedSecurity,
}

impl Namespace {
    /// The open connection, opened now if there is none.
    pub(super) async fn live(&self) -> Result<Arc<OpenConnection>, BrokerError> {
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
        let host = self.url.host_str().unwrap_or_default();
        let port = self.url.port().unwrap_or(5671);
        self.policy.check_host(host, port).await?;
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
    pub(super) async fn forget(&self, broken: &Arc<OpenConnection>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            *live = None;
            let _ = tokio::time::timeout(Duration::from_secs(2), broken.connection.close()).await;
        }
    }
}
