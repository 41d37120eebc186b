//! The network policy, for every destination kind: webhook URLs and AMQP hosts (Service Bus,
//! Event Hubs) must resolve to public addresses, unless the configuration allows a network.
//! Checked when an endpoint is registered and again at every connection: for webhooks inside
//! the HTTP client's DNS resolver, so a name that later resolves to a private address (DNS
//! rebinding) is still refused; for AMQP before the connection opens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// A host that resolves to an address that is not allowed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{host} resolves to {addr}, which is not a public address; allow its network in webhooks.allow_networks (it applies to every destination) if this is intended")]
pub struct BlockedAddress {
    /// The host name of the URL.
    pub host: String,
    /// The refused address.
    pub addr: IpAddr,
}

/// Why a webhook URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Parse(#[from] url::ParseError),
    /// Not http or https.
    #[error("the URL scheme must be https or http, not `{0}`")]
    Scheme(String),
    /// No host, or credentials in the URL.
    #[error("the URL must have a host and no user name or password")]
    Host,
    /// The host does not resolve, or resolves to a refused address.
    #[error(transparent)]
    Refused(#[from] HostError),
}

/// Why a host was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host did not resolve.
    #[error("{host} does not resolve: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host resolves to a refused address.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
}

/// Which non-public networks destinations may reach.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: Arc<Vec<IpNet>>,
}

impl NetworkPolicy {
    /// A policy allowing these non-public networks (public addresses are always allowed).
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow: Arc::new(allow),
        }
    }

    /// Whether `ip` may be reached.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|net| net.contains(&canonical(ip)))
    }

    /// Checks a URL at registration: its scheme, and every address its host resolves to.
    pub async fn check_url(&self, text: &str) -> Result<Url, UrlError> {
        let url = Url::parse(text)?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Host);
        }
        let host = url
            .host_str()
            .ok_or(UrlError::Host)?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        self.check_host(&host, port).await?;
        Ok(url)
    }

    /// Checks a host (an AMQP namespace) before a connection to it: every address it
    /// resolves to must be allowed. A refused host is refused before any connection is
    /// tried, so the answer never tells whether a port behind it is open.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), HostError> {
        let host = host.trim_matches(['[', ']']);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| HostError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        match addrs.iter().find(|a| !self.allows(a.ip())) {
            Some(a) => Err(HostError::Blocked(BlockedAddress {
                host: host.to_owned(),
                addr: a.ip(),
            })),
            None => Ok(()),
        }
    }

    /// Checks a URL whose host is an IP literal (which never goes through the resolver).
    pub fn check_literal(&self, url: &Url) -> Result<(), BlockedAddress> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.allows(ip) {
            Ok(())
        } else {
            Err(BlockedAddress {
                host: ip.to_string(),
                addr: ip,
            })
        }
    }
}

/// The HTTP client's resolver: resolves, then keeps only allowed addresses.
impl Resolve for NetworkPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            match (allowed.is_empty(), resolved.first()) {
                (true, Some(first)) => Err(Box::new(BlockedAddress {
                    host,
                    addr: first.ip(),
                }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address, so one rule covers both forms.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is globally reachable (IANA special-purpose registries). Written here
/// because `IpAddr::is_global` is not stable.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, cloud metadata services included
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// The IPv4 address in two 16-bit segments.
fn v4_of(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Forms that carry an IPv4 address, which a gateway or the host's own stack may reach:
    // judged by that address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64, the well-known prefix.
        return is_public_v4(v4_of(s[6], s[7]));
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        // IPv4-compatible (`::a.b.c.d`, deprecated but still routed by some stacks).
        return is_public_v4(v4_of(s[6], s[7]));
    }
    if s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        // IPv4-translated (`::ffff:0:a.b.c.d`, SIIT).
        return is_public_v4(v4_of(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4: the relay's IPv4 address follows the prefix.
        return is_public_v4(v4_of(s[1], s[2]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // NAT64 for local use (RFC 8215): a network of the operator's own.
        return false;
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside sites)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x0200)) // IETF protocol assignments (Teredo etc.)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "fec0::1",
            "fef0::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in [
            "8.8.8.8",
            "20.50.2.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:0:808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn an_allowed_network_lets_its_addresses_through() {
        let policy = NetworkPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.allows("127.0.0.1".parse().unwrap()));
        assert!(policy.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!policy.allows("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn registration_refuses_loopback_and_metadata_urls() {
        let policy = NetworkPolicy::default();
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
        ] {
            assert!(
                matches!(
                    policy.check_url(url).await,
                    Err(UrlError::Refused(HostError::Blocked(_)))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            policy.check_url("ftp://example.com/").await,
            Err(UrlError::Scheme(_))
        ));
    }
}
