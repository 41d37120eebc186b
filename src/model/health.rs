//! Endpoint health as stored and shared by every instance: healthy, failing (deliveries wait
//! while one probe at a time is tried on a backoff) or disabled (deliveries are held). The
//! transitions are the dispatcher's (`dispatch/health.rs`); this is the plain data.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ids::EndpointId;

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Deliveries go as they are due.
    #[default]
    Healthy,
    /// Failing: its deliveries wait, without spending attempts, while one probe at a time is
    /// tried on a backoff; a success makes it healthy again.
    Failing,
    /// Disabled (by an operator, or after failing for too long): its deliveries are held
    /// until it is enabled again.
    Disabled,
}

impl HealthState {
    /// The stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Failing => "failing",
            HealthState::Disabled => "disabled",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Healthy, Self::Failing, Self::Disabled]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// One endpoint's health record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Where it stands.
    pub state: HealthState,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The first failure since the last success: the failure budget counts from here.
    pub failing_since: Option<OffsetDateTime>,
    /// Start of the failure-rate window (opened by a failure).
    pub window_start: Option<OffsetDateTime>,
    /// Attempts in the window.
    pub window_attempts: u32,
    /// Failed attempts in the window.
    pub window_failures: u32,
    /// Probes that failed since it went failing (the backoff's exponent).
    pub probes: u32,
    /// Failing: when the next probe may be sent.
    pub probe_at: Option<OffsetDateTime>,
    /// Failing: a probe is out until then (its lease), so no other is sent.
    pub probe_until: Option<OffsetDateTime>,
    /// The highest share of the failure budget (per cent) announced in this failing spell.
    pub notified_percent: u32,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// When the state last changed.
    pub changed_at: OffsetDateTime,
}

impl EndpointHealth {
    /// A healthy endpoint with nothing counted.
    pub fn new(endpoint_id: EndpointId, now: OffsetDateTime) -> Self {
        Self {
            endpoint_id,
            state: HealthState::Healthy,
            consecutive_failures: 0,
            failing_since: None,
            window_start: None,
            window_attempts: 0,
            window_failures: 0,
            probes: 0,
            probe_at: None,
            probe_until: None,
            notified_percent: 0,
            last_error: None,
            disabled_reason: None,
            changed_at: now,
        }
    }

    /// Enabled by an operator: healthy, nothing counted.
    pub fn enabled(self, now: OffsetDateTime) -> Self {
        Self::new(self.endpoint_id, now)
    }

    /// Disabled by an operator, for `reason`.
    pub fn disabled(mut self, reason: &str, now: OffsetDateTime) -> Self {
        if self.state != HealthState::Disabled {
            self.state = HealthState::Disabled;
            self.changed_at = now;
        }
        self.disabled_reason = Some(reason.to_owned());
        (self.probe_at, self.probe_until) = (None, None);
        self
    }

    /// Healthy with nothing counted: a success changes nothing, so it need not be written.
    pub fn is_pristine(&self) -> bool {
        self.state == HealthState::Healthy
            && self.consecutive_failures == 0
            && self.window_start.is_none()
    }

    /// Whether a probe is out at `now`.
    pub fn probing(&self, now: OffsetDateTime) -> bool {
        self.state == HealthState::Failing && self.probe_until.is_some_and(|t| t > now)
    }

    /// When a failing endpoint may next send (a probe), if it is failing.
    pub fn next_probe(&self) -> Option<OffsetDateTime> {
        (self.state == HealthState::Failing).then(|| {
            let at = self.probe_at.unwrap_or(self.changed_at);
            self.probe_until.map_or(at, |until| until.max(at))
        })
    }
}

/// Something that happened to an endpoint's health, announced as an operational event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthNotice {
    /// Failing for this share (per cent) of the failure budget.
    Failing {
        /// The endpoint.
        endpoint_id: EndpointId,
        /// 50, 70, 90 or 100.
        percent: u32,
        /// Failing since.
        since: OffsetDateTime,
        /// Failed attempts since the last success.
        failures: u32,
        /// The last error.
        last_error: Option<String>,
    },
    /// Disabled after failing for the whole budget.
    Disabled {
        /// The endpoint.
        endpoint_id: EndpointId,
        /// Why.
        reason: String,
        /// Failing since.
        since: Option<OffsetDateTime>,
    },
    /// Healthy again after failing.
    Recovered {
        /// The endpoint.
        endpoint_id: EndpointId,
        /// It had been failing since.
        since: Option<OffsetDateTime>,
        /// Failed attempts before the success.
        failures: u32,
    },
}

/// The built-in solution of Herald's own operational events; only Herald sends them.
pub const OPERATIONAL_SOLUTION: &str = "herald";

/// Something Herald announces about itself, as an event of its built-in `herald` solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An endpoint's health changed.
    Health(HealthNotice),
    /// A delivery was dead-lettered.
    DeadLettered {
        /// The delivery.
        delivery_id: super::DeliveryId,
        /// Its event.
        event_id: super::EventId,
        /// The event's unique name.
        event_name: String,
        /// Its subscription.
        subscription_id: super::SubscriptionId,
        /// Its endpoint.
        endpoint_id: EndpointId,
        /// Attempts made.
        attempts: u32,
        /// Why.
        reason: String,
    },
}
