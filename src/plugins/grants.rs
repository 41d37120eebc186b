//! What the host grants one execution besides computing: emitting an event of the plug-in's
//! solution and HTTP to the hosts its registration lists. The sandbox knows only these traits;
//! ingestion (emitting) and the destinations (HTTP through the network policy) implement them,
//! so the sandbox sits below both.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// An HTTP request a plug-in makes.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL, whose host the registration allows.
    pub url: url::Url,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// Time left before the execution's deadline.
    pub timeout: Duration,
}

/// An HTTP answer, as the plug-in gets it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body, at most the fetcher's limit.
    pub body: Vec<u8>,
}

/// Sends plug-ins' HTTP requests (through the network policy: private and loopback addresses
/// are refused unless allowed).
#[async_trait]
pub trait Fetch: Send + Sync {
    /// Sends `request`; `Err` says why it was not sent or not answered.
    async fn fetch(&self, request: Request) -> Result<Response, String>;
}

/// Stores events that plug-ins emit.
#[async_trait]
pub trait Emit: Send + Sync {
    /// Submits the event `name` of `solution` with `params`, at `depth` in its chain; answers
    /// its id, or why it was refused (not cataloged, invalid parameters, too deep).
    async fn emit(
        &self,
        solution: &str,
        name: &str,
        params: Map<String, Value>,
        depth: u32,
    ) -> Result<String, String>;
}

/// What one execution may do besides computing.
#[derive(Clone, Default)]
pub struct Grants {
    /// The plug-in's solution: the only one whose events it may emit.
    pub solution: Option<String>,
    /// The depth of the event being handled: an emitted event is one deeper.
    pub depth: u32,
    /// Emitting, when the place where the plug-in runs allows it.
    pub emit: Option<Arc<dyn Emit>>,
    /// HTTP, to the hosts of `allowed_hosts` only.
    pub fetch: Option<Arc<dyn Fetch>>,
    /// Hosts the registration lists (`api.example.com`, or `*.example.com` for its
    /// subdomains); nothing else is reachable.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("solution", &self.solution)
            .field("depth", &self.depth)
            .field("emit", &self.emit.is_some())
            .field("fetch", &self.fetch.is_some())
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// Whether `host` is one of `allowed` (exactly, ignoring case, or a subdomain of a `*.`
/// entry). Addresses are never matched by a pattern: an IP literal must be listed as such.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|entry| {
        let entry = entry.trim_end_matches('.').to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => {
                host.parse::<std::net::IpAddr>().is_err()
                    && host.len() > parent.len() + 1
                    && host.ends_with(parent)
                    && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
            }
            None => host == entry,
        }
    })
}

/// Checks an allow-list entry as a registration gives it: a host name, `*.` and a host name,
/// or an IP address; no scheme, port or path.
pub fn check_allowed_host(entry: &str) -> Result<(), String> {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.is_empty() || name.len() > 253 {
        return Err("must be a host name (1 to 253 characters)".into());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return if entry.starts_with("*.") {
            Err("`*.` applies to host names, not addresses".into())
        } else {
            Ok(())
        };
    }
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{entry}` is not a host name: write `api.example.com` or `*.example.com`, without a scheme, port or path"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_listed_hosts_are_allowed() {
        let allowed = list(&["api.example.com", "*.contoso.com"]);
        assert!(host_allowed(&allowed, "api.example.com"));
        assert!(host_allowed(&allowed, "API.Example.com."));
        assert!(host_allowed(&allowed, "crm.contoso.com"));
        assert!(!host_allowed(&allowed, "contoso.com"));
        assert!(!host_allowed(&allowed, "evilcontoso.com"));
        assert!(!host_allowed(&allowed, "example.com"));
        assert!(!host_allowed(&allowed, "169.254.169.254"));
        assert!(!host_allowed(&[], "api.example.com"));
    }

    #[test]
    fn entries_are_host_names_or_addresses() {
        assert!(check_allowed_host("api.example.com").is_ok());
        assert!(check_allowed_host("*.example.com").is_ok());
        assert!(check_allowed_host("127.0.0.1").is_ok());
        assert!(check_allowed_host("*.127.0.0.1").is_err());
        assert!(check_allowed_host("https://api.example.com").is_err());
        assert!(check_allowed_host("api.example.com:443").is_err());
        assert!(check_allowed_host("").is_err());
    }
}
