//! The health board: every instance's in-memory copy of the endpoints' health records, read
//! at the hand-off and the dispatcher's gate without a query. The store holds the truth (the
//! lease query reads it); the board is refreshed when this instance changes a record, when
//! another announces a change, and on the dispatcher's health rounds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::model::{EndpointHealth, EndpointId, Grant, HealthState};
use crate::store::health::Resume;
use crate::store::StoreError;

/// The endpoints' health as last read or written here. Cheap to clone.
#[derive(Clone, Default)]
pub struct HealthBoard {
    records: Arc<RwLock<HashMap<EndpointId, EndpointHealth>>>,
    /// Endpoints a `429` slowed down, until when.
    slowed: Arc<RwLock<HashMap<EndpointId, time::OffsetDateTime>>>,
    /// Webhook handshakes (CloudEvents abuse protection).
    grants: Arc<RwLock<HashMap<EndpointId, Grant>>>,
}

impl HealthBoard {
    /// An endpoint's state (healthy when it has no record).
    pub fn state(&self, id: EndpointId) -> HealthState {
        self.read()
            .get(&id)
            .map_or(HealthState::Healthy, |h| h.state)
    }

    /// Whether the endpoint has a record (it failed lately, or is not healthy): without one,
    /// a success changes nothing and need not be reported.
    pub fn has_record(&self, id: EndpointId) -> bool {
        let records = self.read();
        !records.is_empty() && records.contains_key(&id)
    }

    /// An endpoint's record, if it has one.
    pub fn get(&self, id: EndpointId) -> Option<EndpointHealth> {
        self.read().get(&id).cloned()
    }

    /// Every record, for the health rounds and the API.
    pub fn all(&self) -> Vec<EndpointHealth> {
        self.read().values().cloned().collect()
    }

    /// Keeps `h` (drops the record when it is pristine).
    pub fn set(&self, h: EndpointHealth) {
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        if h.is_pristine() {
            records.remove(&h.endpoint_id);
        } else {
            records.insert(h.endpoint_id, h);
        }
    }

    /// Replaces every record with what the store holds.
    pub fn replace(&self, all: Vec<EndpointHealth>) {
        let fresh = all.into_iter().map(|h| (h.endpoint_id, h)).collect();
        *self.records.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Whether a `429` slowed `id` down and that still holds.
    pub fn slowed(&self, id: EndpointId) -> bool {
        let slowed = self.slowed.read().unwrap_or_else(|p| p.into_inner());
        !slowed.is_empty()
            && slowed
                .get(&id)
                .is_some_and(|until| *until > time::OffsetDateTime::now_utc())
    }

    /// Notes that a `429` slowed `id` down until `until`.
    pub fn mark_slowed(&self, id: EndpointId, until: time::OffsetDateTime) {
        let mut slowed = self.slowed.write().unwrap_or_else(|p| p.into_inner());
        let entry = slowed.entry(id).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Replaces the slowed-down endpoints with what the store holds.
    pub fn replace_slowed(&self, all: HashMap<EndpointId, time::OffsetDateTime>) {
        *self.slowed.write().unwrap_or_else(|p| p.into_inner()) = all;
    }

    /// Endpoint `id`'s handshake, as last read or made here.
    pub fn grant(&self, id: EndpointId) -> Option<Grant> {
        self.grants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Keeps `g`.
    pub fn set_grant(&self, g: Grant) {
        self.grants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(g.endpoint_id, g);
    }

    /// Replaces every handshake with what the store holds.
    pub fn replace_grants(&self, all: Vec<Grant>) {
        *self.grants.write().unwrap_or_else(|p| p.into_inner()) =
            all.into_iter().map(|g| (g.endpoint_id, g)).collect();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<EndpointId, EndpointHealth>> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl super::Registry {
    /// The health board this registry keeps current.
    pub fn health(&self) -> &HealthBoard {
        &self.health
    }

    /// Disables endpoint `id` (as text, from a URL) for `reason`: its waiting deliveries, and
    /// those that come while it stays disabled, are held (not sent, not dropped).
    pub async fn disable_endpoint(
        &self,
        scope: &crate::model::Scope,
        id: EndpointId,
        reason: &str,
    ) -> Result<EndpointHealth, super::RegistryError> {
        if reason.chars().any(char::is_control) {
            return Err(super::RegistryError::invalid(
                "reason",
                "must not hold control characters (line breaks, tabs…)",
            ));
        }
        let id = self.endpoint_to_change(scope, id).await?.id;
        let now = time::OffsetDateTime::now_utc();
        let change = |h: EndpointHealth| h.disabled(reason, now);
        let (_, after) = self.store.health().change_health(id, now, &change).await?;
        self.health.set(after.clone());
        Ok(after)
    }

    /// Enables endpoint `id` again (healthy, nothing counted); its held deliveries are sent in
    /// the order they were created, or kept to replay by time range. Returns the record and
    /// how many held deliveries were made due.
    pub async fn enable_endpoint(
        &self,
        scope: &crate::model::Scope,
        id: EndpointId,
        resume: Resume,
    ) -> Result<(EndpointHealth, u64), super::RegistryError> {
        let id = self.endpoint_to_change(scope, id).await?.id;
        let now = time::OffsetDateTime::now_utc();
        let change = |h: EndpointHealth| h.enabled(now);
        let (_, after) = self.store.health().change_health(id, now, &change).await?;
        self.health.set(after.clone());
        let resumed = match resume {
            Resume::Deliver => self.store.health().resume_held(id, now).await?,
            Resume::Keep => 0,
        };
        Ok((after, resumed))
    }

    /// Endpoint `id`'s health record as the store holds it.
    pub async fn endpoint_health(&self, id: EndpointId) -> Result<EndpointHealth, StoreError> {
        let h = self.store.health().health(id).await?;
        self.health.set(h.clone());
        Ok(h)
    }
}
