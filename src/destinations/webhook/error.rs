//! Why a webhook send failed, with the HTTP client's error as its cause.

use crate::destinations::network::BlockedAddress;

/// Why a webhook send failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The receiver answered with a status that is not a success.
    #[error("receiver answered {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// The receiver answered with a redirect, which Herald does not follow.
    #[error("receiver answered {status} (redirects are not followed; register the final URL)")]
    Redirect {
        /// The status.
        status: u16,
    },
    /// The URL points at an address the network policy refuses.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
    /// The endpoint's URL cannot be parsed.
    #[error("invalid URL")]
    Url(#[from] url::ParseError),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout(#[source] reqwest::Error),
    /// No connection could be made.
    #[error("could not connect")]
    Connect(#[source] reqwest::Error),
    /// A synchronous step's answer body is larger than Herald reads.
    #[error("the answer body is over {} KiB", .0 / 1024)]
    AnswerTooLarge(usize),
    /// The request failed otherwise (TLS, the connection dropped…).
    #[error("request failed")]
    Request(#[source] reqwest::Error),
}

impl WebhookError {
    /// The error of a request that got no answer: the SSRF guard's refusal (raised inside
    /// the client's resolver) when it is somewhere in the chain, else by what failed.
    pub fn from_transport(e: reqwest::Error) -> Self {
        // reqwest names the URL in its message, and a URL may carry a key (`?code=`): errors
        // are kept and shown, so they never name it.
        let e = e.without_url();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(blocked) = err.downcast_ref::<BlockedAddress>() {
                return WebhookError::Blocked(blocked.clone());
            }
            source = err.source();
        }
        if e.is_timeout() {
            WebhookError::Timeout(e)
        } else if e.is_connect() {
            WebhookError::Connect(e)
        } else {
            WebhookError::Request(e)
        }
    }
}
