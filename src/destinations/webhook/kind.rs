//! The webhook kind: an HTTPS (or HTTP) receiver, signed per Standard Webhooks. Its input as
//! the API takes it, the checks that make its settings (signing keys generated or kept, the
//! URL against the network policy, static headers and Dataverse authentication), its view and
//! its sender.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::super::kind::{Checks, InputError, Kind, Made, Unbuildable};
use super::super::network::{HostError, UrlError};
use super::super::view::{AuthView, DestinationView, HeaderView, SecretView};
use super::super::{Destination, Destinations};
use crate::model::{
    CustomHeader, Scheme, Secret, SecretId, SigningSecret, Validation, WebhookAuth, WebhookSettings,
};

/// The webhook kind.
pub struct Webhook;

/// Which Standard Webhooks signatures an endpoint's generated keys make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// HMAC-SHA256 with a shared `whsec_` secret.
    V1,
    /// ed25519: receivers verify with the published `whpk_` public key.
    V1a,
    /// Both, so receivers of either kind verify.
    Both,
}

/// A static header of a webhook endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderInput {
    /// Its name (not one Herald sets: `webhook-*`, `herald-*`, `content-type`…).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Its value; may be left out for a secret header that keeps its value.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub value: Option<String>,
    /// Whether the value is a secret (write-only).
    #[serde(default)]
    pub secret: bool,
}

/// A webhook endpoint's fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// The receiver's URL.
    #[serde(default)]
    #[schema(format = "uri", required = true)]
    pub url: Option<String>,
    /// A signing secret: `whsec_<base64 of 24 to 64 bytes>` (HMAC, `v1` signatures) or
    /// `whsk_<base64 of a 32-byte ed25519 seed>` (`v1a`). Generated when absent at creation
    /// (see `signing`; a `whsec_` is shown once in the answer, a `whsk_` never: receivers need
    /// only its public key); when absent at update, the secrets stay as they are.
    #[serde(default)]
    #[schema(
        pattern = r"^(?:whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/][AQgw]==)|whsk_(?:[A-Za-z0-9+/]{4}){10}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$"
    )]
    pub secret: Option<String>,
    /// Which signatures Herald generates keys for when `secret` is absent at creation: `v1`
    /// (HMAC, default), `v1a` (ed25519) or `both`.
    #[serde(default)]
    pub signing: Option<Signing>,
    /// Static headers sent with every request, beside `auth`. A header marked `secret` is
    /// write-only: never shown again, and on update, giving it without a `value` keeps the
    /// value it had. When absent at update, the headers stay as they are.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub headers: Option<Vec<HeaderInput>>,
    /// `cloudevents` to make the CloudEvents abuse-protection handshake (an `OPTIONS`
    /// request) before the first delivery; nothing is delivered until the receiver grants.
    /// `none` (default) delivers without asking.
    #[serde(default)]
    pub validation: Option<Validation>,
    /// Time the receiver has to answer, e.g. `"10s"`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub timeout: Option<Duration>,
    /// Dataverse's webhook authentication, sent besides the signature:
    /// `{"type": "HttpHeader", "values": {…}}`, `{"type": "WebhookKey", "key": "…"}` or
    /// `{"type": "HttpQueryString", "values": {…}}`. Write-only; kept when absent on update.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<WebhookAuth>,
}

impl Kind for Webhook {
    type Input = WebhookInput;
    type Settings = WebhookSettings;

    async fn settings(
        input: &WebhookInput,
        old: Option<&WebhookSettings>,
        checks: Checks<'_>,
    ) -> Result<Made<WebhookSettings>, InputError> {
        check_timeout(input, checks)?;
        let (secrets, generated) = signing_secrets(input, old, checks)?;
        let (url, checked) = checked_url(input, old, checks).await?;
        // Write-only values kept from before go to the host they were given for, never to
        // another: an update that moves the URL to another origin gives them again.
        let kept = old.filter(|o| {
            url::Url::parse(&o.url).is_ok_and(|before| before.origin() == checked.origin())
        });
        if let (Some(o), None) = (old, kept) {
            if o.auth.is_some() && input.auth.is_none() {
                return Err(InputError::new(
                    "auth",
                    "must be given again: the URL moves to another host, and Herald does not send the kept value there",
                ));
            }
            if o.headers.iter().any(|h| h.secret) && input.headers.is_none() {
                return Err(InputError::new(
                    "headers",
                    "must be given again, with the secret headers' values: the URL moves to another host, and Herald does not send the kept values there",
                ));
            }
        }
        // Like secrets, authentication values are write-only: absent means "keep".
        let auth = input
            .auth
            .clone()
            .or_else(|| kept.and_then(|o| o.auth.clone()));
        if let Some(auth) = &auth {
            check_auth(auth)?;
        }
        let headers = match &input.headers {
            Some(given) => custom_headers(given, kept.map_or(&[][..], |o| &o.headers))?,
            None => old.map(|o| o.headers.clone()).unwrap_or_default(),
        };
        let settings = WebhookSettings {
            url,
            secrets,
            timeout: input.timeout,
            auth,
            headers,
            validation: input
                .validation
                .or(old.map(|o| o.validation))
                .unwrap_or_default(),
        };
        Ok(Made {
            settings,
            generated,
        })
    }

    fn view(w: &WebhookSettings) -> DestinationView {
        DestinationView {
            url: Some(crate::model::exchange::masked_url(&w.url)),
            secrets: w
                .secrets
                .iter()
                .map(|s| SecretView {
                    id: s.id,
                    scheme: s.secret.scheme(),
                    public_key: s.secret.public_key().map(|k| k.to_string()),
                    created_at: s.created_at,
                })
                .collect(),
            headers: w
                .headers
                .iter()
                .map(|h| HeaderView {
                    name: h.name.clone(),
                    value: (!h.secret).then(|| h.value.clone()),
                    secret: h.secret,
                })
                .collect(),
            timeout: w.timeout.map(|t| humantime::format_duration(t).to_string()),
            auth: w.auth.as_ref().map(|a| {
                let (kind, names) = a.describe();
                AuthView { kind, names }
            }),
            ..Default::default()
        }
    }

    fn sender(
        settings: &WebhookSettings,
        destinations: &Destinations,
    ) -> Result<Arc<dyn Destination>, Unbuildable> {
        Ok(Arc::new(
            destinations.webhooks().destination(settings.clone()),
        ))
    }
}

/// The time a receiver is given, at most half the lease.
fn check_timeout(input: &WebhookInput, checks: Checks<'_>) -> Result<(), InputError> {
    if let Some(t) = input.timeout {
        if t.is_zero() || t > checks.max_timeout {
            return Err(InputError::new(
                "timeout",
                format!(
                    "must be above 0s and at most {} (half of delivery.lease, so an attempt ends before another dispatcher may take its delivery)",
                    humantime::format_duration(checks.max_timeout)
                ),
            ));
        }
    }
    Ok(())
}

/// The signing secrets of `input`: the one it gives (keeping its id and age if `old` had it),
/// those of `old`, or new ones Herald generates (a shared one returned to show once).
fn signing_secrets(
    input: &WebhookInput,
    old: Option<&WebhookSettings>,
    checks: Checks<'_>,
) -> Result<(Vec<SigningSecret>, Option<String>), InputError> {
    if input.secret.is_none() && checks.declared {
        return Err(InputError::new(
            "secret",
            "is required for a declared webhook endpoint: its receiver must know it in advance (print one with `herald webhook secret`)",
        ));
    }
    if input.secret.is_none() && old.is_none() && checks.replacing {
        return Err(InputError::new(
            "secret",
            "is required when an endpoint becomes a webhook endpoint (or add one later with POST /v1/endpoints/{id}/secrets)",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let (secrets, generated) = match (&input.secret, old) {
        (Some(text), old) => {
            let secret = parse_secret(text)?;
            // The same secret keeps its id and age.
            let kept = old.and_then(|o| o.secrets.iter().find(|s| s.secret == secret));
            let s = kept.cloned().unwrap_or(SigningSecret {
                id: SecretId::new(),
                secret,
                created_at: now,
            });
            (vec![s], None)
        }
        (None, Some(old)) => (old.secrets.clone(), None),
        (None, None) => {
            let schemes: &[Scheme] = match input.signing.unwrap_or(Signing::V1) {
                Signing::V1 => &[Scheme::V1],
                Signing::V1a => &[Scheme::V1a],
                Signing::Both => &[Scheme::V1, Scheme::V1a],
            };
            let secrets: Vec<SigningSecret> = schemes
                .iter()
                .map(|scheme| SigningSecret {
                    id: SecretId::new(),
                    secret: Secret::generate_for(*scheme),
                    created_at: now,
                })
                .collect();
            // A shared secret is shown once; an ed25519 secret key never leaves Herald.
            let shown = secrets
                .iter()
                .find(|s| s.secret.scheme() == Scheme::V1)
                .map(|s| s.secret.expose());
            (secrets, shown)
        }
    };
    if input.signing.is_some() && (input.secret.is_some() || old.is_some()) {
        return Err(InputError::new(
            "signing",
            "applies only when Herald generates the keys of a new endpoint; to add a key of another scheme, POST /v1/endpoints/{id}/secrets with \"scheme\"",
        ));
    }
    Ok((secrets, generated))
}

/// The URL of `input` (a masked URL given back stands for the one it masks), checked against
/// the network policy: as stored, and as parsed.
async fn checked_url(
    input: &WebhookInput,
    old: Option<&WebhookSettings>,
    checks: Checks<'_>,
) -> Result<(String, url::Url), InputError> {
    let url = input
        .url
        .as_deref()
        .ok_or_else(|| InputError::new("url", "is required for a webhook endpoint"))?;
    // The URL as views show it (its query masked) keeps the query it stands for.
    let url = match old {
        Some(o) if url == crate::model::exchange::masked_url(&o.url) && url != o.url => {
            o.url.as_str()
        }
        _ => url,
    };
    let checked = checks.policy.check_url(url).await.map_err(|e| match e {
        UrlError::Refused(HostError::Blocked(blocked)) => {
            InputError::new("url", format!("is refused: {blocked}"))
        }
        other => InputError::new("url", other.to_string()),
    })?;
    Ok((url.to_owned(), checked))
}

/// A signing secret as given, or why it is not one.
pub fn parse_secret(text: &str) -> Result<Secret, InputError> {
    Secret::parse(text).map_err(|e| InputError::new("secret", e.to_string()))
}

/// Whether Herald (or HTTP) sets the header `name` itself, so that neither an endpoint's
/// `headers` nor its `auth` may.
fn reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Header authentication must be sendable and must not set what Herald sets itself.
fn check_auth(auth: &WebhookAuth) -> Result<(), InputError> {
    let WebhookAuth::HttpHeader { values } = auth else {
        return Ok(());
    };
    for (name, value) in values {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(InputError::new(
                "auth",
                format!("\"{name}\" cannot be used as a header name"),
            ));
        }
        if reserved_header(name) {
            return Err(InputError::new(
                "auth",
                format!("\"{name}\" is set by Herald itself"),
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(InputError::new(
                "auth",
                format!("the value of \"{name}\" is not a valid header value"),
            ));
        }
    }
    Ok(())
}

/// Header names Herald sets itself (or HTTP owns): an endpoint cannot set them.
const RESERVED_HEADERS: [&str; 10] = [
    "origin",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    "traceparent",
    "expect",
    "upgrade",
];
/// Prefixes of header names Herald sets itself.
const RESERVED_PREFIXES: [&str; 3] = ["webhook-", "herald-", "x-ms-dynamics-"];

/// Checks an endpoint's static headers; a secret header given without a value keeps the
/// value of the header of that name in `old`.
fn custom_headers(
    given: &[HeaderInput],
    old: &[CustomHeader],
) -> Result<Vec<CustomHeader>, InputError> {
    if given.len() > 20 {
        return Err(InputError::new("headers", "may hold at most 20 headers"));
    }
    let mut out: Vec<CustomHeader> = Vec::with_capacity(given.len());
    for (i, h) in given.iter().enumerate() {
        let field = format!("headers[{i}]");
        let lower = h.name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err(InputError::new(
                format!("{field}.name"),
                format!("\"{}\" is not a valid header name", h.name),
            ));
        }
        if reserved_header(&lower) {
            return Err(InputError::new(
                format!("{field}.name"),
                format!("\"{}\" is set by Herald itself", h.name),
            ));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&h.name)) {
            return Err(InputError::new(
                format!("{field}.name"),
                format!("\"{}\" is given twice", h.name),
            ));
        }
        let value = match (&h.value, h.secret) {
            (Some(v), _) => v.clone(),
            (None, true) => old
                .iter()
                .find(|o| o.secret && o.name.eq_ignore_ascii_case(&h.name))
                .map(|o| o.value.clone())
                .ok_or_else(|| {
                    InputError::new(
                        format!("{field}.value"),
                        "is required: this secret header has no value to keep",
                    )
                })?,
            (None, false) => {
                return Err(InputError::new(
                    format!("{field}.value"),
                    "is required (only a secret header may leave it out, to keep its value)",
                ))
            }
        };
        if value.len() > 4096 || reqwest::header::HeaderValue::from_str(&value).is_err() {
            return Err(InputError::new(
                format!("{field}.value"),
                "must be at most 4096 visible ASCII characters (spaces and tabs allowed)",
            ));
        }
        out.push(CustomHeader {
            name: h.name.clone(),
            value,
            secret: h.secret,
        });
    }
    Ok(out)
}
