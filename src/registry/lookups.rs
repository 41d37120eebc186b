//! Endpoint and subscription records as the dispatcher and the synchronous steps read them, cached
//! so a burst of deliveries to one endpoint costs one read. A change made through this process's API applies at once
//! (the routing version moves); one made by another instance within a second.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Endpoint, EndpointId, Subscription, SubscriptionId};
use crate::store::{Store, StoreError};

/// How long a record read from the store is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

type Entry<V> = (Instant, u64, Option<V>);

struct Cache<K, V>(Mutex<HashMap<K, Entry<V>>>);

impl<K: Eq + Hash + Copy, V: Clone> Cache<K, V> {
    fn get(&self, key: K, version: u64) -> Option<Option<V>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .filter(|(at, v, _)| *v == version && at.elapsed() < FRESH_FOR)
            .map(|(_, _, value)| value.clone())
    }

    fn put(&self, key: K, version: u64, value: Option<V>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (at, _, _)| at.elapsed() < FRESH_FOR);
        }
        map.insert(key, (Instant::now(), version, value));
    }
}

/// The cached lookups.
pub struct Lookups {
    endpoints: Cache<EndpointId, Endpoint>,
    subscriptions: Cache<SubscriptionId, Subscription>,
}

impl Default for Lookups {
    fn default() -> Self {
        Self {
            endpoints: Cache(Mutex::default()),
            subscriptions: Cache(Mutex::default()),
        }
    }
}

impl Lookups {
    /// An endpoint, `None` if it does not exist; `version` is the routing version now.
    pub async fn endpoint(
        &self,
        store: &dyn Store,
        version: u64,
        id: EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        if let Some(hit) = self.endpoints.get(id, version) {
            return Ok(hit);
        }
        let value = store.records().endpoint(id).await?;
        self.endpoints.put(id, version, value.clone());
        Ok(value)
    }

    /// A subscription, `None` if it does not exist.
    pub async fn subscription(
        &self,
        store: &dyn Store,
        version: u64,
        id: SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        if let Some(hit) = self.subscriptions.get(id, version) {
            return Ok(hit);
        }
        let value = store.records().subscription(id).await?;
        self.subscriptions.put(id, version, value.clone());
        Ok(value)
    }
}
