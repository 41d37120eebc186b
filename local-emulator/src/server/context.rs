//! What every connection shares: the broker, the access policies, the limits and the faults
//! armed for testing. Sessions and management requests read it; the connection loop holds it.

use super::cbs::Policy;
use crate::broker::handle::BrokerHandle;
use std::sync::Arc;

/// What every connection shares.
pub struct Context {
    /// The broker.
    pub broker: BrokerHandle,
    /// Shared access policies for SAS tokens and SASL PLAIN.
    pub policies: Vec<Policy>,
    /// Accept JWTs without checking them (development mode).
    pub allow_jwt: bool,
    /// Largest Service Bus message.
    pub max_message_size: u64,
    /// Largest Event Hubs message or batch.
    pub hub_max_message_size: u64,
    /// Largest frame the broker accepts.
    pub max_frame: u32,
    /// Faults armed for testing.
    pub faults: Arc<crate::faults::Faults>,
    /// The administration API, for connections that open with a TLS handshake.
    pub https: Option<Arc<crate::tls::Https>>,
}
