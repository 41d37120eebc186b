//! Endpoint health, decided as pure functions over the shared record ([`EndpointHealth`]):
//! what a batch of attempt outcomes makes of it ([`observe`]), what the passing of time
//! makes of a failing one ([`tick`]: the failure budget's notices and auto-disable), and
//! which operational notices a change amounts to ([`notices`]). The store applies them in a
//! transaction, so every instance of a cluster sees one state.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{EndpointHealth, HealthNotice, HealthState};

/// When an endpoint is failing, how it is probed, and when it is disabled.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// Consecutive failed attempts that make an endpoint failing.
    pub consecutive_failures: u32,
    /// A share of failed attempts (0 < r ≤ 1) within [`Self::window`] that makes it failing,
    /// once the window holds at least [`Self::min_attempts`] attempts.
    pub failure_rate: f64,
    /// The failure-rate window; it opens at a failure.
    pub window: Duration,
    /// Attempts the window needs before its rate counts.
    pub min_attempts: u32,
    /// The wait before the first probe; it doubles after each failed probe…
    pub probe_interval: Duration,
    /// …up to this.
    pub probe_interval_max: Duration,
    /// Failing continuously this long (from the first failure after the last success)
    /// disables the endpoint; `None` never does. Notices go out at 50, 70, 90 and 100 % of it.
    pub disable_after: Option<Duration>,
    /// Deliveries per second to an endpoint without a rate limit after it answers `429`
    /// (halved by each further `429` that is not part of the same refusal).
    pub rate_after_429: f64,
    /// How long a `429` lowers an endpoint's rate.
    pub slow_for: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(60),
            min_attempts: 20,
            probe_interval: Duration::from_secs(5),
            probe_interval_max: Duration::from_secs(300),
            // As Svix: five days.
            disable_after: Some(Duration::from_secs(5 * 24 * 3600)),
            rate_after_429: 10.0,
            slow_for: Duration::from_secs(60),
        }
    }
}

/// The shares of the failure budget that are announced, in per cent.
pub const BUDGET_STEPS: [u32; 4] = [50, 70, 90, 100];

/// Why an endpoint that failed for its whole budget is disabled.
pub fn auto_disable_reason(budget: Duration) -> String {
    format!(
        "every attempt failed for {}; deliveries are held until the endpoint is enabled again",
        humantime::format_duration(budget)
    )
}

/// Attempt outcomes of one endpoint, in the order they ended, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Attempts.
    pub attempts: u32,
    /// Failed attempts.
    pub failures: u32,
    /// Whether one succeeded.
    pub succeeded: bool,
    /// Failures after the last success (all of them when none succeeded).
    pub trailing_failures: u32,
    /// When the first of the trailing failures ended.
    pub trailing_since: Option<OffsetDateTime>,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// A probe is among them (its end frees the probe slot).
    pub probe: bool,
}

impl Observed {
    /// Adds one outcome that ended at `at`.
    pub fn add(&mut self, success: bool, at: OffsetDateTime, error: Option<&str>, probe: bool) {
        self.attempts += 1;
        self.probe |= probe;
        if success {
            self.succeeded = true;
            self.trailing_failures = 0;
            self.trailing_since = None;
        } else {
            self.failures += 1;
            self.trailing_failures += 1;
            self.trailing_since.get_or_insert(at);
            self.last_error = error.map(str::to_owned);
        }
    }

    /// Adds `later`: outcomes that ended after these.
    pub fn then(&mut self, later: &Observed) {
        self.attempts += later.attempts;
        self.failures += later.failures;
        self.probe |= later.probe;
        if later.succeeded {
            self.succeeded = true;
            self.trailing_failures = later.trailing_failures;
            self.trailing_since = later.trailing_since;
        } else {
            self.trailing_failures += later.trailing_failures;
            self.trailing_since = self.trailing_since.or(later.trailing_since);
        }
        if later.last_error.is_some() {
            self.last_error.clone_from(&later.last_error);
        }
    }
}

/// What `seen` makes of `h` at `now`.
pub fn observe(
    mut h: EndpointHealth,
    seen: &Observed,
    policy: &HealthPolicy,
    now: OffsetDateTime,
) -> EndpointHealth {
    if h.window_start
        .is_some_and(|start| start + policy.window <= now)
    {
        (h.window_start, h.window_attempts, h.window_failures) = (None, 0, 0);
    }
    if h.window_start.is_none() && seen.failures > 0 {
        h.window_start = Some(now);
    }
    if h.window_start.is_some() {
        h.window_attempts += seen.attempts;
        h.window_failures += seen.failures;
    }
    if seen.last_error.is_some() {
        h.last_error.clone_from(&seen.last_error);
    }
    if seen.succeeded {
        h.consecutive_failures = seen.trailing_failures;
        h.failing_since = seen.trailing_since;
        if h.state == HealthState::Failing {
            h.state = HealthState::Healthy;
            h.changed_at = now;
            (h.probes, h.probe_at, h.probe_until) = (0, None, None);
            h.notified_percent = 0;
            // A fresh start: the window's failures belong to the spell that ended.
            (h.window_start, h.window_attempts, h.window_failures) = (None, 0, 0);
            return h;
        }
    } else {
        h.consecutive_failures += seen.trailing_failures;
        if h.failing_since.is_none() {
            h.failing_since = seen.trailing_since.or(Some(now));
        }
    }
    match h.state {
        HealthState::Healthy if tripped(&h, policy) => {
            h.state = HealthState::Failing;
            // Tripped by the rate with a success last: the budget counts from now.
            h.failing_since.get_or_insert(now);
            h.changed_at = now;
            h.probes = 0;
            h.probe_at = Some(now + policy.probe_interval);
            h.probe_until = None;
            h.notified_percent = 0;
        }
        HealthState::Failing if seen.probe && !seen.succeeded => {
            h.probes += 1;
            h.probe_at = Some(now + probe_backoff(policy, h.probes));
            h.probe_until = None;
        }
        _ => {}
    }
    h
}

/// Whether `h`'s failures make a healthy endpoint failing.
fn tripped(h: &EndpointHealth, policy: &HealthPolicy) -> bool {
    h.consecutive_failures >= policy.consecutive_failures.max(1)
        || (h.window_attempts >= policy.min_attempts.max(1)
            && f64::from(h.window_failures) >= policy.failure_rate * f64::from(h.window_attempts))
}

/// The wait before the next probe after `failed` failed probes.
pub fn probe_backoff(policy: &HealthPolicy, failed: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed.min(20));
    policy
        .probe_interval
        .saturating_mul(factor)
        .min(policy.probe_interval_max.max(policy.probe_interval))
}

/// What the passing of time makes of `h` at `now`: a failing endpoint crosses steps of its
/// failure budget (the highest newly crossed is recorded, to be announced once) and, at the
/// whole budget, is disabled.
pub fn tick(mut h: EndpointHealth, policy: &HealthPolicy, now: OffsetDateTime) -> EndpointHealth {
    let (HealthState::Failing, Some(since), Some(budget)) =
        (h.state, h.failing_since, policy.disable_after)
    else {
        return h;
    };
    let elapsed: Duration = (now - since).try_into().unwrap_or(Duration::ZERO);
    let percent = if budget.is_zero() {
        100
    } else {
        (elapsed.as_secs_f64() / budget.as_secs_f64() * 100.0).min(100.0) as u32
    };
    if let Some(step) = BUDGET_STEPS.into_iter().rev().find(|s| *s <= percent) {
        h.notified_percent = h.notified_percent.max(step);
    }
    if percent >= 100 {
        h.state = HealthState::Disabled;
        h.changed_at = now;
        h.disabled_reason = Some(auto_disable_reason(budget));
        (h.probe_at, h.probe_until) = (None, None);
    }
    h
}

/// When a failing endpoint next crosses a step of its budget, for the keeper's timer.
pub fn next_step(h: &EndpointHealth, policy: &HealthPolicy) -> Option<OffsetDateTime> {
    let (HealthState::Failing, Some(since), Some(budget)) =
        (h.state, h.failing_since, policy.disable_after)
    else {
        return None;
    };
    let step = BUDGET_STEPS.into_iter().find(|s| *s > h.notified_percent)?;
    Some(since + budget.mul_f64(f64::from(step) / 100.0))
}

/// What to announce of a change from `before` to `after` (made by [`observe`] or [`tick`]).
pub fn notices(before: &EndpointHealth, after: &EndpointHealth) -> Vec<HealthNotice> {
    let id = after.endpoint_id;
    let mut out = Vec::new();
    if after.notified_percent > before.notified_percent && after.failing_since.is_some() {
        out.push(HealthNotice::Failing {
            endpoint_id: id,
            percent: after.notified_percent,
            since: after.failing_since.unwrap_or(after.changed_at),
            failures: after.consecutive_failures,
            last_error: after.last_error.clone(),
        });
    }
    match (before.state, after.state) {
        (HealthState::Failing, HealthState::Disabled) => out.push(HealthNotice::Disabled {
            endpoint_id: id,
            reason: after.disabled_reason.clone().unwrap_or_default(),
            since: after.failing_since,
        }),
        (HealthState::Failing, HealthState::Healthy) => out.push(HealthNotice::Recovered {
            endpoint_id: id,
            since: before.failing_since,
            failures: before.consecutive_failures,
        }),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointId;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-03 10:00:00 UTC);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: secs(60),
            min_attempts: 10,
            probe_interval: secs(5),
            probe_interval_max: secs(60),
            disable_after: Some(secs(100)),
            ..HealthPolicy::default()
        }
    }

    fn seen(outcomes: &[bool], probe: bool) -> Observed {
        let mut o = Observed::default();
        for (i, ok) in outcomes.iter().enumerate() {
            let error = (!ok).then_some("receiver answered 503");
            o.add(*ok, T0 + secs(i as u64), error, probe);
        }
        o
    }

    fn fresh() -> EndpointHealth {
        EndpointHealth::new(EndpointId::new(), T0)
    }

    #[test]
    fn outcomes_joined_in_order_sum_up_as_if_seen_together() {
        let outcomes = [true, false, true, false, false];
        let whole = seen(&outcomes, false);
        let mut joined = Observed::default();
        for (i, ok) in outcomes.iter().enumerate() {
            let mut one = Observed::default();
            one.add(
                *ok,
                T0 + secs(i as u64),
                (!ok).then_some("receiver answered 503"),
                false,
            );
            joined.then(&one);
        }
        assert_eq!(joined, whole);
    }

    #[test]
    fn consecutive_failures_make_an_endpoint_failing_with_a_probe_scheduled() {
        let p = policy();
        let h = observe(fresh(), &seen(&[false, false], false), &p, T0);
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!(h.consecutive_failures, 2);
        assert_eq!(h.failing_since, Some(T0));
        let h = observe(h, &seen(&[false], false), &p, T0 + secs(10));
        assert_eq!(h.state, HealthState::Failing);
        assert_eq!(h.probe_at, Some(T0 + secs(15)));
        assert_eq!(
            h.failing_since,
            Some(T0),
            "the budget counts from the first failure"
        );
        assert_eq!(h.last_error.as_deref(), Some("receiver answered 503"));
    }

    #[test]
    fn a_success_resets_the_streak_and_only_later_failures_count() {
        let h = observe(
            fresh(),
            &seen(&[false, false, true, false], false),
            &policy(),
            T0,
        );
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!(h.consecutive_failures, 1);
        assert_eq!(h.failing_since, Some(T0 + secs(3)));
    }

    #[test]
    fn a_high_failure_rate_makes_an_endpoint_failing_without_a_streak() {
        let p = policy();
        let mut h = fresh();
        // Alternating: never three in a row, but half of the attempts fail.
        for _ in 0..5 {
            h = observe(h, &seen(&[false, true], false), &p, T0);
        }
        assert_eq!(h.state, HealthState::Failing, "{h:?}");
    }

    #[test]
    fn the_failure_rate_window_closes_after_its_time() {
        let p = policy();
        let mut h = fresh();
        for _ in 0..4 {
            h = observe(h, &seen(&[false, true], false), &p, T0);
        }
        assert_eq!(h.window_attempts, 8);
        h = observe(h, &seen(&[false, true], false), &p, T0 + secs(61));
        assert_eq!((h.window_attempts, h.window_failures), (2, 1));
        assert_eq!(h.state, HealthState::Healthy);
    }

    #[test]
    fn failed_probes_back_off_exponentially_up_to_the_cap() {
        let p = policy();
        let mut h = observe(fresh(), &seen(&[false; 3], false), &p, T0);
        let mut waits = Vec::new();
        for n in 1..=6u64 {
            let now = T0 + secs(n * 100);
            h.probe_until = Some(now);
            h = observe(h, &seen(&[false], true), &p, now);
            assert_eq!(h.probe_until, None, "the probe slot is free again");
            waits.push((h.probe_at.unwrap() - now).whole_seconds());
        }
        assert_eq!(waits, [10, 20, 40, 60, 60, 60]);
    }

    #[test]
    fn a_stray_failure_while_failing_leaves_the_probe_alone() {
        let p = policy();
        let mut h = observe(fresh(), &seen(&[false; 3], false), &p, T0);
        h.probe_until = Some(T0 + secs(30));
        let after = observe(h.clone(), &seen(&[false], false), &p, T0 + secs(6));
        assert_eq!(after.probe_until, h.probe_until);
        assert_eq!(after.probes, 0);
    }

    #[test]
    fn a_successful_probe_makes_it_healthy_and_says_so() {
        let p = policy();
        let failing = observe(fresh(), &seen(&[false; 4], false), &p, T0);
        let healthy = observe(failing.clone(), &seen(&[true], true), &p, T0 + secs(20));
        assert_eq!(healthy.state, HealthState::Healthy);
        assert!(healthy.is_pristine(), "{healthy:?}");
        assert_eq!(
            notices(&failing, &healthy),
            [HealthNotice::Recovered {
                endpoint_id: failing.endpoint_id,
                since: Some(T0),
                failures: 4
            }]
        );
    }

    #[test]
    fn the_failure_budget_is_announced_at_each_step_then_the_endpoint_is_disabled() {
        let p = policy();
        let mut h = observe(fresh(), &seen(&[false; 3], false), &p, T0);
        let mut announced = Vec::new();
        for t in [10, 49, 50, 69, 75, 95, 99, 100, 120] {
            let before = h.clone();
            h = tick(h, &p, T0 + secs(t));
            for n in notices(&before, &h) {
                match n {
                    HealthNotice::Failing { percent, .. } => announced.push(format!("{percent}%")),
                    HealthNotice::Disabled { .. } => announced.push("disabled".into()),
                    HealthNotice::Recovered { .. } => announced.push("recovered".into()),
                }
            }
        }
        assert_eq!(announced, ["50%", "70%", "90%", "100%", "disabled"]);
        assert_eq!(h.state, HealthState::Disabled);
        assert!(h.disabled_reason.unwrap().contains("1m 40s"));
    }

    #[test]
    fn the_next_budget_step_is_when_the_keeper_looks_again() {
        let p = policy();
        let mut h = observe(fresh(), &seen(&[false; 3], false), &p, T0);
        assert_eq!(next_step(&h, &p), Some(T0 + secs(50)));
        h = tick(h, &p, T0 + secs(55));
        assert_eq!(next_step(&h, &p), Some(T0 + secs(70)));
    }

    #[test]
    fn without_a_budget_a_failing_endpoint_is_never_disabled() {
        let p = HealthPolicy {
            disable_after: None,
            ..policy()
        };
        let h = observe(fresh(), &seen(&[false; 3], false), &p, T0);
        let later = tick(h.clone(), &p, T0 + secs(10_000_000));
        assert_eq!(later, h);
    }

    #[test]
    fn a_disabled_endpoint_ignores_outcomes_and_enabling_starts_afresh() {
        let p = policy();
        let h = fresh().disabled("maintenance", T0);
        let after = observe(h.clone(), &seen(&[true], false), &p, T0);
        assert_eq!(after.state, HealthState::Disabled);
        assert!(notices(&h, &after).is_empty());
        let back = after.enabled(T0 + secs(1));
        assert!(back.is_pristine());
    }
}
