//! The webhook HTTP client: one keep-alive pool for all endpoints, no redirects, the SSRF
//! guard as its resolver, and a request per delivery signed with every active secret.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE, ORIGIN, RETRY_AFTER, USER_AGENT};

use super::{classify, failure, request_builder, sign, WebhookError};
use crate::destinations::network::NetworkPolicy;
use crate::destinations::{Destination, Outbound, Outcome};
use crate::model::exchange::{masked_url, RESPONSE_START};
use crate::model::{Exchange, Validation, WebhookSettings};

/// The shared HTTP client for webhooks.
#[derive(Clone)]
pub struct WebhookClient {
    pub(super) http: reqwest::Client,
    pub(super) policy: NetworkPolicy,
    default_timeout: Duration,
    /// Herald's origin (a DNS name), sent as `Origin` to receivers that granted it.
    origin: Option<Arc<str>>,
}

impl WebhookClient {
    /// A client applying `policy` at every send, with `timeout` unless an endpoint sets its own.
    pub fn new(policy: NetworkPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Never a proxy from the environment (`HTTP_PROXY`…): a proxy resolves the
            // receiver's name itself, past the policy's check at every send.
            .no_proxy()
            .dns_resolver(Arc::new(policy.clone()))
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            policy,
            default_timeout: timeout,
            origin: None,
        })
    }

    /// The same client, naming Herald `origin` to receivers that require the CloudEvents
    /// handshake (`WebHook-Request-Origin`, then `Origin` on every delivery).
    pub fn with_origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Herald's origin, when set.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The time a receiver of `settings` has to answer.
    pub fn timeout_for(&self, settings: &WebhookSettings) -> Duration {
        settings.timeout.unwrap_or(self.default_timeout)
    }

    /// The HTTP client, with the network policy as its resolver (plug-ins' HTTP).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The network policy (for checks at registration).
    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// A destination for one endpoint.
    pub fn destination(&self, settings: WebhookSettings) -> WebhookDestination {
        WebhookDestination {
            client: self.clone(),
            settings,
        }
    }
}

/// One webhook endpoint.
pub struct WebhookDestination {
    client: WebhookClient,
    settings: WebhookSettings,
}

#[async_trait]
impl Destination for WebhookDestination {
    async fn send(&self, message: &Outbound<'_>, exchange: &mut Exchange) -> Outcome {
        let request = match self.request(
            message,
            self.settings.timeout.unwrap_or(self.client.default_timeout),
            Some(exchange),
        ) {
            Ok(r) => r,
            Err(error) => return failure(error),
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // The start of the answer, for operators; a body that breaks off, or trickles
                // in for longer than a second, is shown as far as it came (the status decides
                // the outcome, not the body). A success that will not be kept is not read.
                let start = if status.is_success() && !exchange.kept_on_success {
                    Vec::new()
                } else {
                    tokio::time::timeout(ANSWER_WAIT, read_start(response, RESPONSE_START))
                        .await
                        .unwrap_or_default()
                };
                exchange.answered(&status_line(status), &start);
                classify(
                    status.as_u16(),
                    retry_after.as_deref(),
                    time::OffsetDateTime::now_utc(),
                )
            }
            Err(e) => failure(WebhookError::from_transport(e)),
        }
    }
}

/// How long the start of a delivery's answer is waited for, once its status came.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A synchronous step's answer body is read up to this size; a larger one is refused.
pub const STEP_ANSWER_LIMIT: usize = 1024 * 1024;

/// How a synchronous step answered.
#[derive(Debug)]
pub enum StepAnswer {
    /// 2xx: the event may go on.
    Accepted {
        /// The body, when it is JSON (`application/json` or `…+json`) and not empty: what the
        /// step changes or sets. Any other body is not read.
        json: Option<bytes::Bytes>,
    },
    /// Any other status: the event is cancelled; the receiver's message is the caller's error.
    Refused {
        /// The status.
        status: u16,
        /// The receiver's answer body (trimmed), or a description when it had none.
        message: String,
    },
    /// No answer (connection refused, timeout, blocked address).
    Unreachable(WebhookError),
}

impl WebhookDestination {
    /// Builds the signed request of a delivery, with `timeout`; `Err` when the URL is unusable.
    /// What was sent is noted in `exchange`, when given, with secrets and signatures masked.
    fn request(
        &self,
        message: &Outbound<'_>,
        timeout: std::time::Duration,
        exchange: Option<&mut Exchange>,
    ) -> Result<reqwest::RequestBuilder, WebhookError> {
        let built = request_builder::build(&self.settings, message)?;
        let id = message.delivery_id.to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let origin = match (self.settings.validation, self.client.origin.as_deref()) {
            // The origin the receiver granted travels on every delivery (CloudEvents webhooks).
            (Validation::Cloudevents, Some(origin)) => Some(origin),
            _ => None,
        };
        let signature = sign(
            self.settings.secrets.iter().map(|s| &s.secret),
            &id,
            timestamp,
            &built.body,
        );
        if let Some(x) = exchange {
            note(x, &built, [&id, &timestamp.to_string(), &signature], origin);
        }
        self.client.policy.check_literal(&built.url)?;
        let mut request = self
            .client
            .http
            .post(built.url)
            .timeout(timeout)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_str(&built.content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            )
            .header(USER_AGENT, super::USER_AGENT)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
        for (name, value) in &built.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        Ok(request.body(built.body))
    }

    /// Calls the endpoint once as a synchronous step (Dataverse's synchronous webhooks); the
    /// caller decides whether an answer is worth another call.
    pub async fn call_step(
        &self,
        message: &Outbound<'_>,
        timeout: std::time::Duration,
    ) -> StepAnswer {
        let request = match self.request(message, timeout, None) {
            Ok(r) => r,
            Err(error) => return StepAnswer::Unreachable(error),
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let is_json = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(|t| t.trim().to_ascii_lowercase())
                    .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
                if !is_json {
                    return StepAnswer::Accepted { json: None };
                }
                match read_capped(response, STEP_ANSWER_LIMIT).await {
                    Ok(body) if body.iter().all(u8::is_ascii_whitespace) => {
                        StepAnswer::Accepted { json: None }
                    }
                    Ok(body) => StepAnswer::Accepted { json: Some(body) },
                    Err(e) => StepAnswer::Unreachable(e),
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("the step answered {status}")
                } else {
                    text.chars().take(2000).collect()
                };
                StepAnswer::Refused { status, message }
            }
            Err(e) => StepAnswer::Unreachable(WebhookError::from_transport(e)),
        }
    }
}

/// Notes the request of `built` in `x`: the URL with its query masked, then the headers in
/// the order the client sets them; secret values and signatures masked. (The timestamp and
/// signature are the client's; the signature's schemes are shown, never its value.)
fn note(
    x: &mut Exchange,
    built: &request_builder::Built,
    [id, timestamp, signature]: [&str; 3],
    origin: Option<&str>,
) {
    x.target = format!("POST {}", masked_url(built.url.as_str()));
    x.sent(&built.body);
    x.header("content-type", &built.content_type);
    x.header("user-agent", super::USER_AGENT);
    x.header("webhook-id", id);
    x.header("webhook-timestamp", timestamp);
    x.signature("webhook-signature", signature);
    for (name, value) in &built.headers {
        if built.secret.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            x.masked(name);
        } else {
            x.header(name, value);
        }
    }
    if let Some(origin) = origin {
        x.header("origin", origin);
    }
}

/// `HTTP 400 Bad Request`.
fn status_line(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// Up to `limit` bytes of the body of `response` (fewer if it breaks off); the rest is not read.
async fn read_start(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut start = Vec::new();
    while start.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                start.extend_from_slice(&chunk[..chunk.len().min(limit - start.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    start
}

/// The body of `response`, refused past `limit` bytes without reading the rest.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, WebhookError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(WebhookError::AnswerTooLarge(limit));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(WebhookError::from_transport)?
    {
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::AnswerTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
