//! The CloudEvents webhook abuse-protection handshake's record ("HTTP 1.1 Web Hooks for Event
//! Delivery", section 4): whether a receiver granted Herald's origin the right to deliver to
//! a URL, at what rate, or will say so through a callback.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ids::EndpointId;

/// Where a handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Asked: an `OPTIONS` is out, or the receiver will answer through the callback URL.
    Requested,
    /// The receiver allowed Herald's origin.
    Granted,
    /// The receiver did not allow it; asked again later.
    Refused,
}

impl GrantState {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            GrantState::Requested => "requested",
            GrantState::Granted => "granted",
            GrantState::Refused => "refused",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Requested, Self::Granted, Self::Refused]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

/// One endpoint's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The URL the handshake was made for.
    pub url: String,
    /// Where it stands.
    pub state: GrantState,
    /// Requests per minute the receiver allowed (`None`: any).
    pub allowed_per_minute: Option<u32>,
    /// A callback may come until then.
    pub callback_until: Option<OffsetDateTime>,
    /// After a refusal: when to ask again.
    pub next_try_at: Option<OffsetDateTime>,
    /// Handshakes made for this URL.
    pub attempts: u32,
    /// Why the last one did not grant.
    pub last_error: Option<String>,
}

/// How a receiver answered a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeAnswer {
    /// Allowed, at this many requests per minute (`None`: any).
    Granted(Option<u32>),
    /// It will grant, or not, by calling the callback URL.
    Callback,
    /// Not allowed, with why.
    Refused(String),
}
