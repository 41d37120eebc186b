//! Service Bus and Event Hubs endpoint settings from what a user gives: the endpoint's fields or
//! a connection string in the form Microsoft prints (`Endpoint=sb://…;SharedAccessKeyName=…;
//! SharedAccessKey=…`, optionally `EntityPath=…` and `UseDevelopmentEmulator=true`). Both
//! kinds take them alike; each kind's folder says which fields it takes.

use crate::destinations::kind::{Checks, InputError};
use crate::destinations::network::HostError;
use crate::destinations::view::{CredentialView, DestinationView};
use crate::model::{AzureCredential, AzureSettings, SecretString};

/// What an endpoint's input gives to build [`AzureSettings`] from.
#[derive(Debug, Default)]
pub struct AzureInput<'a> {
    /// A connection string.
    pub connection_string: Option<&'a str>,
    /// A namespace: `contoso.servicebus.windows.net`, `sb://host[:port]`, `amqps://host[:port]`,
    /// or `amqp://host:port` for an emulator.
    pub namespace: Option<&'a str>,
    /// The queue, topic or hub (or the connection string's `EntityPath`).
    pub entity: Option<&'a str>,
    /// The credential (or the connection string's key or signature).
    pub credential: Option<AzureCredential>,
    /// A fixed Event Hubs partition.
    pub partition_id: Option<&'a str>,
}

/// A field of the input that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn wrong(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Builds and checks settings from an endpoint's input.
pub fn settings_from(input: AzureInput<'_>) -> Result<AzureSettings, FieldError> {
    let (host, port, emulator, path, conn_credential) =
        match (input.connection_string, input.namespace) {
            (Some(_), Some(_)) => {
                return Err(wrong(
                    "namespace",
                    "give either `connection_string` or `namespace`, not both",
                ))
            }
            (Some(cs), None) => {
                let cs = ConnectionString::parse(cs).map_err(|m| wrong("connection_string", m))?;
                (cs.host, cs.port, cs.emulator, cs.entity_path, cs.credential)
            }
            (None, Some(ns)) => {
                let (host, port, emulator) =
                    parse_namespace(ns).map_err(|m| wrong("namespace", m))?;
                (host, port, emulator, None, None)
            }
            (None, None) => {
                return Err(wrong(
                    "namespace",
                    "is required (or give a `connection_string`)",
                ))
            }
        };
    let entity = match (input.entity, path) {
        (Some(e), Some(p)) if !e.eq_ignore_ascii_case(&p) => {
            return Err(wrong(
                "entity",
                format!("is \"{e}\" but the connection string's EntityPath is \"{p}\""),
            ))
        }
        (Some(e), _) => e.to_owned(),
        (None, Some(p)) => p,
        (None, None) => {
            return Err(wrong(
                "entity",
                "is required: the queue, topic or event hub to send to",
            ))
        }
    };
    check_entity_name(&entity).map_err(|m| wrong("entity", m))?;
    let credential = match (input.credential, conn_credential) {
            (Some(_), Some(_)) => {
                return Err(wrong(
                    "credential",
                    "the connection string already carries a key or signature; give one or the other",
                ))
            }
            (Some(c), None) | (None, Some(c)) => c,
            (None, None) => {
                return Err(wrong(
                    "credential",
                    "is required: {\"type\": \"sas_key\" | \"sas_token\" | \"managed_identity\" | \"workload_identity\" | \"client_secret\" | \"azure_cli\" | \"default\", …}",
                ))
            }
        };
    check_credential(&credential)?;
    if let Some(p) = input.partition_id {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(wrong(
                "partition_id",
                "must be a partition number such as \"0\"",
            ));
        }
    }
    Ok(AzureSettings {
        host,
        port,
        emulator,
        entity,
        credential,
        partition_id: input.partition_id.map(str::to_owned),
    })
}

fn check_credential(c: &AzureCredential) -> Result<(), FieldError> {
    match c {
        AzureCredential::SasKey { key_name, key } => {
            if key_name.trim().is_empty() {
                return Err(wrong("credential.key_name", "must not be empty"));
            }
            if key.expose().is_empty() {
                return Err(wrong("credential.key", "must not be empty"));
            }
        }
        AzureCredential::SasToken { token } => {
            let t = token.expose();
            if !t.starts_with("SharedAccessSignature ") || !t.contains("se=") {
                return Err(wrong(
                    "credential.token",
                    "must be a `SharedAccessSignature sr=…&sig=…&se=…&skn=…` token",
                ));
            }
        }
        AzureCredential::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            for (field, v) in [
                ("credential.tenant_id", tenant_id.as_str()),
                ("credential.client_id", client_id.as_str()),
                ("credential.client_secret", client_secret.expose()),
            ] {
                if v.trim().is_empty() {
                    return Err(wrong(field, "must not be empty"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Entity names as Service Bus and Event Hubs accept them: 1 to 260 characters of letters,
/// digits, `.`, `-`, `_` and `/`, starting and ending with a letter or digit.
fn check_entity_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 260 {
        return Err("must be 1 to 260 characters".into());
    }
    if !name.chars().all(ok_char) || !ends_ok(name.chars().next()) || !ends_ok(name.chars().last())
    {
        return Err(format!(
            "\"{name}\" is not a valid entity name: letters, digits, '.', '-', '_' and '/', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Splits a namespace into host, port and whether it is a plain-AMQP emulator.
fn parse_namespace(ns: &str) -> Result<(String, Option<u16>, bool), String> {
    let ns = ns.trim().trim_end_matches('/');
    let (scheme, rest) = match ns.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("sb".to_owned(), ns),
    };
    let emulator = match scheme.as_str() {
        "sb" | "amqps" => false,
        "amqp" => true,
        other => {
            return Err(format!(
                "scheme \"{other}\" is not supported: use a host name, sb://, amqps://, or amqp:// for a local emulator"
            ))
        }
    };
    let (host, port) = split_host_port(rest)?;
    Ok((host, port, emulator))
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (s, None),
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("\"{p}\" is not a port number"))?,
            ),
        ),
        None => (s, None),
    };
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(format!("\"{s}\" is not a host name"));
    }
    Ok((host.to_owned(), port))
}

/// A parsed connection string.
#[derive(Debug)]
pub struct ConnectionString {
    /// The namespace host.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
    /// `UseDevelopmentEmulator=true`.
    pub emulator: bool,
    /// `EntityPath`.
    pub entity_path: Option<String>,
    /// The key or signature it carries.
    pub credential: Option<AzureCredential>,
}

impl ConnectionString {
    /// Parses `Key=Value;…` as Microsoft writes it (keys are case-insensitive, a
    /// `SharedAccessSignature` value contains `=` of its own).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut signature = None;
        let mut entity_path = None;
        let mut emulator = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("\"{}\" is not a Key=Value pair", redact_pair(part)))?;
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.to_owned()),
                "sharedaccesskey" => key = Some(v.to_owned()),
                "sharedaccesssignature" => signature = Some(v.to_owned()),
                "entitypath" => entity_path = Some(v.to_owned()).filter(|p| !p.is_empty()),
                "usedevelopmentemulator" => {
                    emulator = v.parse::<bool>().map_err(|_| {
                        format!("UseDevelopmentEmulator must be true or false, not \"{v}\"")
                    })?
                }
                // Accepted and not needed here, as the Azure SDKs do.
                "transporttype" | "operationtimeout" => {}
                other => return Err(format!("unknown key \"{other}\"")),
            }
        }
        let endpoint = endpoint.ok_or("has no Endpoint=sb://…")?;
        let rest = endpoint
            .strip_prefix("sb://")
            .or_else(|| endpoint.strip_prefix("Sb://"))
            .ok_or_else(|| format!("Endpoint must start with sb://, not \"{endpoint}\""))?;
        let (host, port) = split_host_port(rest.trim_end_matches('/'))?;
        let credential = match (key_name, key, signature) {
            (Some(key_name), Some(key), None) => Some(AzureCredential::SasKey {
                key_name,
                key: SecretString::new(key),
            }),
            (None, None, Some(token)) => Some(AzureCredential::SasToken {
                token: SecretString::new(token),
            }),
            (None, None, None) => None,
            (Some(_), None, None) => {
                return Err("has SharedAccessKeyName without SharedAccessKey".into())
            }
            (None, Some(_), None) => {
                return Err("has SharedAccessKey without SharedAccessKeyName".into())
            }
            _ => {
                return Err(
                    "has both a shared access key and a SharedAccessSignature; keep one".into(),
                )
            }
        };
        Ok(ConnectionString {
            host,
            port,
            emulator,
            entity_path,
            credential,
        })
    }
}

/// `Key=…` with the value hidden, for error messages (it may be a secret).
fn redact_pair(part: &str) -> String {
    match part.split_once('=') {
        Some((k, _)) => format!("{k}=…"),
        // Without `=` it may be a pasted key: never echo it.
        None => format!("a part of {} characters", part.chars().count()),
    }
}

/// The settings of a Service Bus or Event Hubs endpoint from `given`, its namespace checked
/// against the network policy. `old` (the endpoint's settings before, of the same kind)
/// supplies the credential when `given` has none, for the same host only.
pub(super) async fn checked_settings(
    given: AzureInput<'_>,
    old: Option<&AzureSettings>,
    checks: Checks<'_>,
) -> Result<AzureSettings, InputError> {
    let field = if given.connection_string.is_some() {
        "connection_string"
    } else {
        "namespace"
    };
    let settings =
        settings_with_kept(given, old).map_err(|e| InputError::new(e.field, e.message))?;
    match checks
        .policy
        .check_host(&settings.host, settings.amqp_port())
        .await
    {
        Err(HostError::Blocked(blocked)) => {
            Err(InputError::new(field, format!("is refused: {blocked}")))
        }
        // A name that does not resolve yet (a namespace being deployed, DNS down at
        // start-up) is checked again before every connection.
        Ok(()) | Err(HostError::Resolve { .. }) => Ok(settings),
    }
}

/// The settings of `given`, the credential of `old` kept when `given` has none.
fn settings_with_kept(
    given: AzureInput<'_>,
    old: Option<&AzureSettings>,
) -> Result<AzureSettings, FieldError> {
    // Write-only credentials: an update that gives neither keeps the old one.
    let keep = given.connection_string.is_none() && given.credential.is_none();
    // A kept credential (a token, or an identity whose tokens every namespace accepts) is
    // sent to the namespace it was given for, never to another.
    if let (true, Some(old), Some(ns)) = (keep, old, given.namespace) {
        let moved = settings_from(AzureInput {
            namespace: Some(ns),
            entity: Some(&old.entity),
            credential: Some(old.credential.clone()),
            ..Default::default()
        })
        .is_ok_and(|new| {
            (new.host.as_str(), new.amqp_port()) != (old.host.as_str(), old.amqp_port())
        });
        if moved {
            return Err(wrong(
                "credential",
                "must be given again: the namespace moves to another host, and Herald does not send the kept credential there",
            ));
        }
    }
    match (keep, old) {
        (true, Some(old)) => settings_from(AzureInput {
            namespace: Some(given.namespace.unwrap_or(&old.namespace())),
            entity: Some(given.entity.unwrap_or(&old.entity)),
            credential: Some(old.credential.clone()),
            partition_id: given.partition_id,
            connection_string: None,
        }),
        _ => settings_from(given),
    }
}

/// Where a Service Bus or Event Hubs endpoint sends, nothing secret.
pub(super) fn view(a: &AzureSettings) -> DestinationView {
    let (kind, id) = a.credential.describe();
    DestinationView {
        namespace: Some(a.amqp_url()),
        entity: Some(a.entity.clone()),
        credential: Some(CredentialView { kind, id }),
        partition_id: a.partition_id.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_connection_strings_mean_plain_amqp_to_the_given_port() {
        let s = settings_from(AzureInput {
            connection_string: Some("Endpoint=sb://localhost:5673;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"),
            entity: Some("queue1"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.amqp_url(), "amqp://localhost:5673");
        assert_eq!(s.audience(), "sb://localhost:5673/queue1");
        assert!(
            matches!(s.credential, AzureCredential::SasKey { ref key_name, .. } if key_name == "RootManageSharedAccessKey")
        );
        assert!(!format!("{s:?}").contains("SAS_KEY_VALUE"));
    }

    #[test]
    fn cloud_connection_strings_use_tls_and_entity_path() {
        let s = settings_from(AzureInput {
            connection_string: Some("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=z;EntityPath=orders"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.amqp_url(), "amqps://contoso.servicebus.windows.net:5671");
        assert_eq!(s.entity, "orders");
        assert!(matches!(s.credential, AzureCredential::SasToken { .. }));
    }

    #[test]
    fn namespaces_and_mistakes() {
        let ok = |ns: &str| {
            settings_from(AzureInput {
                namespace: Some(ns),
                entity: Some("q"),
                credential: Some(AzureCredential::Default),
                ..Default::default()
            })
        };
        assert_eq!(
            ok("contoso.servicebus.windows.net").unwrap().amqp_url(),
            "amqps://contoso.servicebus.windows.net:5671"
        );
        assert_eq!(
            ok("amqp://127.0.0.1:6000").unwrap().amqp_url(),
            "amqp://127.0.0.1:6000"
        );
        assert_eq!(ok("http://x").unwrap_err().field, "namespace");
        assert_eq!(ok("sb://x:notaport").unwrap_err().field, "namespace");
        let err = settings_from(AzureInput {
            namespace: Some("x"),
            entity: Some("-bad"),
            credential: Some(AzureCredential::Default),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "entity");
        let err =
            ConnectionString::parse("Endpoint=sb://x/;SharedAccessKey=secretvalue").unwrap_err();
        assert!(!err.contains("secretvalue"), "{err}");
        let err =
            ConnectionString::parse("Endpoint=sb://x/;secretvaluewithoutequalsign").unwrap_err();
        assert!(!err.contains("secretvaluewithoutequalsign"), "{err}");
    }
}
