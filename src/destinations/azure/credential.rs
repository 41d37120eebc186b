//! Tokens for claims-based security: SAS tokens Herald signs from a key, a ready-made SAS
//! token, or Microsoft Entra ID tokens from `azure_identity`.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::error::{SetupError, TokenError};
use crate::model::AzureCredential;

/// The CBS token type of SAS tokens.
pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";
/// The CBS token type of Entra ID tokens.
pub const JWT_TOKEN_TYPE: &str = "jwt";
/// The Entra ID scope of Service Bus.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";

/// How long the SAS tokens Herald signs last.
const SAS_LIFETIME: Duration = Duration::from_secs(3600);

/// A token for one audience.
pub struct Token {
    /// The token.
    pub value: Secret,
    /// Its CBS type.
    pub kind: &'static str,
    /// When it stops working.
    pub expires: OffsetDateTime,
}

/// Where tokens come from.
#[derive(Clone)]
pub enum TokenSource {
    /// Signs SAS tokens with a policy key.
    Key {
        /// The policy name.
        name: String,
        /// The key.
        key: Secret,
    },
    /// A ready-made SAS token.
    Fixed {
        /// The token.
        token: Secret,
        /// Its `se` expiry.
        expires: OffsetDateTime,
    },
    /// Microsoft Entra ID.
    Entra(Arc<dyn TokenCredential>),
}

impl TokenSource {
    /// The source of `credential`; `Err` says why it cannot be used on this host.
    pub fn new(credential: &AzureCredential) -> Result<Self, SetupError> {
        Ok(match credential {
            AzureCredential::SasKey { key_name, key } => TokenSource::Key {
                name: key_name.clone(),
                key: Secret::new(key.expose().to_owned()),
            },
            AzureCredential::SasToken { token } => TokenSource::Fixed {
                expires: sas_expiry(token.expose()).ok_or(SetupError::SasTokenExpiry)?,
                token: Secret::new(token.expose().to_owned()),
            },
            AzureCredential::ManagedIdentity { client_id } => {
                TokenSource::Entra(managed_identity(client_id.clone())?)
            }
            AzureCredential::WorkloadIdentity {
                client_id,
                tenant_id,
            } => TokenSource::Entra(workload_identity(client_id.clone(), tenant_id.clone())?),
            AzureCredential::ClientSecret {
                tenant_id,
                client_id,
                client_secret: secret,
            } => TokenSource::Entra(client_secret(tenant_id, client_id, secret.expose())?),
            AzureCredential::AzureCli => TokenSource::Entra(developer_tools()?),
            AzureCredential::Default => TokenSource::Entra(host_identity()?),
        })
    }

    /// A token for `audience` (an `sb://host/entity` URI), with `scope` for Entra ID.
    pub async fn token(&self, audience: &str, scope: &str) -> Result<Token, TokenError> {
        match self {
            TokenSource::Key { name, key } => {
                let expires = OffsetDateTime::now_utc() + SAS_LIFETIME;
                let value = sas_token(audience, name, key.secret(), expires.unix_timestamp());
                Ok(Token {
                    value: Secret::new(value),
                    kind: SAS_TOKEN_TYPE,
                    expires,
                })
            }
            TokenSource::Fixed { token, expires } => {
                if *expires <= OffsetDateTime::now_utc() {
                    return Err(TokenError::Expired);
                }
                Ok(Token {
                    value: token.clone(),
                    kind: SAS_TOKEN_TYPE,
                    expires: *expires,
                })
            }
            TokenSource::Entra(credential) => {
                // Identity endpoints fail transiently (throttling, network): retry later.
                let t = credential
                    .get_token(&[scope], None)
                    .await
                    .map_err(TokenError::Entra)?;
                Ok(Token {
                    value: t.token,
                    kind: JWT_TOKEN_TYPE,
                    expires: t.expires_on,
                })
            }
        }
    }

    /// The Entra ID credential, if this source is one.
    pub fn entra(&self) -> Option<Arc<dyn TokenCredential>> {
        match self {
            TokenSource::Entra(c) => Some(c.clone()),
            _ => None,
        }
    }
}

/// When a token should be renewed: a tenth of its life (at most ten minutes) before it ends.
pub fn renew_at(now: OffsetDateTime, expires: OffsetDateTime) -> OffsetDateTime {
    let life: time::Duration = expires - now;
    let margin = std::cmp::min(life / 10_i32, time::Duration::minutes(10));
    expires - margin
}

fn identity(kind: &'static str) -> impl Fn(azure_core::Error) -> SetupError {
    move |source| SetupError::Identity { kind, source }
}

fn managed_identity(client_id: Option<String>) -> Result<Arc<dyn TokenCredential>, SetupError> {
    use azure_identity::{
        ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    };
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        ..Default::default()
    };
    Ok(ManagedIdentityCredential::new(Some(options)).map_err(identity("managed identity"))?)
}

fn workload_identity(
    client_id: Option<String>,
    tenant_id: Option<String>,
) -> Result<Arc<dyn TokenCredential>, SetupError> {
    use azure_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
    let options = WorkloadIdentityCredentialOptions {
        client_id,
        tenant_id,
        ..Default::default()
    };
    Ok(WorkloadIdentityCredential::new(Some(options)).map_err(identity("workload identity"))?)
}

fn client_secret(
    tenant: &str,
    client: &str,
    secret: &str,
) -> Result<Arc<dyn TokenCredential>, SetupError> {
    let credential = azure_identity::ClientSecretCredential::new(
        tenant,
        client.to_owned(),
        Secret::new(secret.to_owned()),
        None,
    )
    .map_err(identity("client secret"))?;
    Ok(credential)
}

fn developer_tools() -> Result<Arc<dyn TokenCredential>, SetupError> {
    Ok(azure_identity::DeveloperToolsCredential::new(None).map_err(identity("developer tools"))?)
}

/// The credential of `default`: chosen from what the host announces, not by trying each in
/// turn, so a wrong guess fails clearly instead of falling through to a surprising identity.
fn host_identity() -> Result<Arc<dyn TokenCredential>, SetupError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        workload_identity(None, None)
    } else if let (Some(t), Some(c), Some(s)) = (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
    ) {
        client_secret(&t, &c, &s)
    } else if env("IDENTITY_ENDPOINT").is_some() || env("MSI_ENDPOINT").is_some() {
        managed_identity(env("AZURE_CLIENT_ID"))
    } else {
        developer_tools()
    }
}

/// A SAS token for `resource`: `SharedAccessSignature sr=…&sig=…&se=…&skn=…`, where `sig` is
/// the HMAC-SHA256 of `url-encoded resource \n expiry` with the policy key.
pub fn sas_token(resource: &str, key_name: &str, key: &str, expires_unix: i64) -> String {
    let sr: String = url::form_urlencoded::byte_serialize(resource.as_bytes()).collect();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{sr}\n{expires_unix}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig: String = url::form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    let skn: String = url::form_urlencoded::byte_serialize(key_name.as_bytes()).collect();
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expires_unix}&skn={skn}")
}

/// The `se` expiry of a SAS token.
pub fn sas_expiry(token: &str) -> Option<OffsetDateTime> {
    let fields = token.strip_prefix("SharedAccessSignature ")?;
    let se = fields
        .split('&')
        .find_map(|kv| kv.strip_prefix("se="))?
        .parse::<i64>()
        .ok()?;
    OffsetDateTime::from_unix_timestamp(se).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_tokens_round_trip_their_expiry() {
        let t = sas_token(
            "sb://ns.servicebus.windows.net/q",
            "Root",
            "key",
            1_900_000_000,
        );
        assert!(
            t.starts_with("SharedAccessSignature sr=sb%3A%2F%2Fns.servicebus.windows.net%2Fq&sig=")
        );
        assert_eq!(sas_expiry(&t).unwrap().unix_timestamp(), 1_900_000_000);
        assert!(t.ends_with("&se=1900000000&skn=Root"));
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let hour = now + time::Duration::hours(1);
        assert_eq!(renew_at(now, hour), hour - time::Duration::minutes(6));
        let day = now + time::Duration::days(1);
        assert_eq!(renew_at(now, day), day - time::Duration::minutes(10));
    }
}
