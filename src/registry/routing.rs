//! The in-memory snapshot of enabled subscriptions that ingestion matches events against,
//! reloaded from the store by the registry after every change it makes (and, on a shared
//! store, when another instance announces one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::model::{EventDefinition, RowImages, Subscription};
use crate::store::{Store, StoreError};

/// The enabled subscriptions, held in memory for matching at ingestion and reloaded from
/// the store after every change.
#[derive(Clone, Default)]
pub struct Routing {
    subscriptions: Arc<RwLock<Arc<Vec<Subscription>>>>,
    version: Arc<AtomicU64>,
}

impl Routing {
    /// Records that endpoints or subscriptions changed in this process, so cached copies
    /// (the dispatcher's) are read again.
    pub fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Increases with every change made in this process.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Reloads the snapshot from the store.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut subs: Vec<Subscription> = store
            .records()
            .subscriptions()
            .await?
            .into_iter()
            .filter(|s| s.enabled)
            .collect();
        subs.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.name.cmp(&b.name)));
        *self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(subs);
        self.changed();
        Ok(())
    }

    /// The enabled subscriptions an occurrence of `event` with `params` (and, for a row
    /// change, `images`) goes to, by rank.
    pub fn matching(
        &self,
        event: &EventDefinition,
        params: &Map<String, Value>,
        images: Option<&RowImages>,
    ) -> Vec<Subscription> {
        let subs = self
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        subs.iter()
            .filter(|s| s.solution == event.solution)
            .filter(|s| match (&s.event, &s.category) {
                (Some(name), _) => event.unique_name == name.as_str(),
                (None, Some(category)) => event.category.as_ref() == Some(category),
                (None, None) => false,
            })
            .filter(|s| s.filter.matches(params))
            .filter(|s| images.is_none_or(|i| i.passes(&s.row.filtering_attributes)))
            .cloned()
            .collect()
    }
}
