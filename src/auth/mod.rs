//! API keys: `Authorization: Bearer <key>`, kept only as SHA-256 hashes, each scoped to
//! solutions and optionally allowed to administer endpoints, subscriptions and deliveries.
//!
//! Keys are 32 random bytes, so a plain SHA-256 is enough (no password-hashing work factor
//! is needed for high-entropy secrets); lookups compare hashes, so the time a lookup takes
//! says nothing about the key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::{Scope, OPERATIONAL_SOLUTION};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name, recorded as the caller of events.
    pub name: String,
    /// Solutions the key may send events for; `None` for all.
    pub solutions: Option<Vec<String>>,
    /// Whether it may manage endpoints, subscriptions and deliveries.
    pub admin: bool,
    /// Herald itself: the only caller of the operational events (solution `herald`).
    pub system: bool,
}

impl Principal {
    /// Herald itself, sending its operational events.
    pub fn herald() -> Self {
        Self {
            name: OPERATIONAL_SOLUTION.into(),
            solutions: Some(vec![OPERATIONAL_SOLUTION.into()]),
            admin: false,
            system: true,
        }
    }

    /// Whether the key may send events of `solution`: a solution it may use, but never
    /// Herald's own operational events, which only Herald sends.
    pub fn may_send(&self, solution: &str) -> bool {
        if solution == OPERATIONAL_SOLUTION {
            return self.system;
        }
        self.may_use(solution)
    }

    /// Whether the key may see and subscribe to events of `solution`.
    pub fn may_use(&self, solution: &str) -> bool {
        self.scope().covers(solution)
    }

    /// The solutions the key acts in, which every query it reaches is limited to.
    pub fn scope(&self) -> Scope {
        Scope::of(self.solutions.as_deref())
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    Missing,
    /// The key is not known.
    #[error("invalid API key")]
    Invalid,
    /// The client sent too many wrong keys lately: it waits this long before any key of its
    /// is looked at again.
    #[error("too many wrong API keys from this address")]
    Throttled(Duration),
    /// A source's post without its key (or to no such source).
    #[error("not this source's key: send it as the service endpoint is registered (`?code=`, its header or its query parameter)")]
    SourceKey,
}

/// The known keys, by hash, and the clients that sent wrong ones.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: Arc<HashMap<[u8; 32], Principal>>,
    wrong: Arc<Mutex<Throttle>>,
}

impl ApiKeys {
    /// These keys, each given by its SHA-256 hash.
    pub fn new(keys: impl IntoIterator<Item = ([u8; 32], Principal)>) -> Self {
        Self {
            by_hash: Arc::new(keys.into_iter().collect()),
            wrong: Default::default(),
        }
    }

    /// The principal of an `Authorization` header value, without counting wrong keys (for
    /// callers that are not on the network).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        self.by_hash
            .get(&hash(key))
            .cloned()
            .ok_or(AuthError::Invalid)
    }

    /// The same keys, letting a client send `limit` wrong keys a window (0: no limit).
    pub fn with_wrong_key_limit(self, limit: u32) -> Self {
        let mut wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
        wrong.limit = limit;
        drop(wrong);
        self
    }

    /// The principal of an `Authorization` header value sent by `client`: a client that
    /// sent its limit of wrong keys within [`Throttle::WINDOW`] waits out the window before
    /// any key of its is looked at again, so keys cannot be guessed at speed.
    pub fn authenticate_from(
        &self,
        client: Option<IpAddr>,
        header: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let Some(client) = client else {
            return self.authenticate(header);
        };
        let now = Instant::now();
        let mut wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = wrong.wait(client, now) {
            return Err(AuthError::Throttled(wait));
        }
        let answer = self.authenticate(header);
        if answer == Err(AuthError::Invalid) {
            wrong.failed(client, now);
        }
        answer
    }
}

/// Wrong keys per client address, counted over a window.
#[derive(Debug)]
pub struct Throttle {
    clients: HashMap<IpAddr, (u32, Instant)>,
    /// Wrong keys a client may send within [`Self::WINDOW`] (0: any number).
    limit: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            clients: HashMap::new(),
            limit: Self::LIMIT,
        }
    }
}

impl Throttle {
    /// Wrong keys a client may send within [`Self::WINDOW`], by default.
    pub const LIMIT: u32 = 20;
    /// The window the wrong keys are counted over, and the wait after too many.
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Clients remembered at most (the oldest windows are forgotten first).
    pub const MAX_CLIENTS: usize = 10_000;

    /// How long `client` must wait before its keys are looked at again, if it must.
    pub fn wait(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let (count, since) = self.clients.get(&client)?;
        let elapsed = now.saturating_duration_since(*since);
        (self.limit > 0 && *count >= self.limit && elapsed < Self::WINDOW)
            .then(|| Self::WINDOW - elapsed)
    }

    /// Counts a wrong key from `client`.
    pub fn failed(&mut self, client: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if self.clients.len() >= Self::MAX_CLIENTS && !self.clients.contains_key(&client) {
            self.clients
                .retain(|_, (_, since)| now.saturating_duration_since(*since) < Self::WINDOW);
            if self.clients.len() >= Self::MAX_CLIENTS {
                // Every window is fresh: forget the oldest half rather than grow.
                let mut starts: Vec<Instant> = self.clients.values().map(|(_, s)| *s).collect();
                starts.sort();
                let cut = starts[starts.len() / 2];
                self.clients.retain(|_, (_, since)| *since > cut);
            }
        }
        let entry = self.clients.entry(client).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

impl ApiKeys {
    /// The principal of the key whose SHA-256 is `hash`.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<Principal> {
        self.by_hash.get(hash).cloned()
    }
}

/// SHA-256 of a key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random API key (`hk_` + 43 characters).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_recognised_by_its_hash_only() {
        let key = generate_key();
        let keys = ApiKeys::new([(
            hash(&key),
            Principal {
                name: "pos".into(),
                solutions: Some(vec!["contoso".into()]),
                admin: false,
                system: false,
            },
        )]);
        let p = keys.authenticate(Some(&format!("Bearer {key}"))).unwrap();
        assert!(p.may_use("contoso") && !p.may_use("fabrikam"));
        assert_eq!(
            keys.authenticate(Some("Bearer hk_wrong")),
            Err(AuthError::Invalid)
        );
        assert_eq!(keys.authenticate(Some(&key)), Err(AuthError::Missing));
        assert_eq!(keys.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn a_client_that_sends_too_many_wrong_keys_waits_out_the_window() {
        let mut t = Throttle::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let start = Instant::now();
        for _ in 0..Throttle::LIMIT - 1 {
            t.failed(client, start);
        }
        assert_eq!(t.wait(client, start), None, "under the limit");
        t.failed(client, start);
        let later = start + Duration::from_secs(10);
        assert_eq!(t.wait(client, later), Some(Duration::from_secs(50)));
        assert_eq!(t.wait(other, later), None, "others are not slowed");
        assert_eq!(
            t.wait(client, start + Throttle::WINDOW),
            None,
            "the window passed"
        );
        t.failed(client, start + Throttle::WINDOW);
        assert_eq!(
            t.wait(client, start + Throttle::WINDOW),
            None,
            "a new window counts anew"
        );
    }

    #[test]
    fn the_throttle_remembers_a_bounded_number_of_clients() {
        let mut t = Throttle::default();
        let start = Instant::now();
        for i in 0..(Throttle::MAX_CLIENTS as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed(ip, start + Duration::from_micros(u64::from(i)));
        }
        assert!(t.clients.len() <= Throttle::MAX_CLIENTS);
    }

    #[test]
    fn wrong_keys_from_one_address_are_throttled_and_right_ones_from_others_pass() {
        let key = generate_key();
        let keys = ApiKeys::new([(
            hash(&key),
            Principal {
                name: "pos".into(),
                solutions: None,
                admin: false,
                system: false,
            },
        )]);
        let guesser: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..Throttle::LIMIT {
            assert_eq!(
                keys.authenticate_from(Some(guesser), Some("Bearer hk_guess")),
                Err(AuthError::Invalid)
            );
        }
        let right = format!("Bearer {key}");
        assert!(matches!(
            keys.authenticate_from(Some(guesser), Some(&right)),
            Err(AuthError::Throttled(_))
        ));
        assert!(keys
            .authenticate_from(Some("198.51.100.2".parse().unwrap()), Some(&right))
            .is_ok());
    }
}
