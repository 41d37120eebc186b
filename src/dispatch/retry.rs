//! The retry policy, a pure function: after a failed attempt, when to try again, or why to
//! give up. Default schedule as Azure Event Grid (10 s, 30 s, 1 min, 5 min, 10 min, 30 min,
//! 1 h, 3 h, 6 h, then every 12 h), at most 30 attempts within 24 hours.

use std::time::Duration;

use time::OffsetDateTime;

/// When to retry and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delays after the 1st, 2nd… failed attempt; the last repeats.
    pub schedule: Vec<Duration>,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Time after the event's acceptance beyond which no attempt is made.
    pub ttl: Duration,
}

/// What to do after a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time.
    RetryAt(OffsetDateTime),
    /// Give up: dead-letter with this reason.
    GiveUp(String),
}

impl RetryPolicy {
    /// After attempt number `attempt` (1-based) failed at `now`, for a delivery created at
    /// `created_at`. `retry_after` is the destination's wish, `jitter` a number in [0, 1)
    /// spreading retries by ±20 % so a recovering receiver is not hit by a thundering herd.
    pub fn after_failure(
        &self,
        attempt: u32,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp(format!("gave up after {attempt} attempts"));
        }
        let base = self
            .schedule
            .get(attempt as usize - 1)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let delay = base
            .mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
            .max(retry_after.unwrap_or_default());
        let at = now + delay;
        if at > created_at + self.ttl {
            return Decision::GiveUp(format!(
                "expired: not delivered within {} of the event",
                humantime::format_duration(self.ttl)
            ));
        }
        Decision::RetryAt(at)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |mins: u64| Duration::from_secs(mins * 60);
        Self {
            schedule: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                m(1),
                m(5),
                m(10),
                m(30),
                m(60),
                m(180),
                m(360),
                m(720),
            ],
            max_attempts: 30,
            ttl: m(24 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    fn delay_after(attempt: u32, jitter: f64) -> Duration {
        match RetryPolicy::default().after_failure(attempt, T0, T0, None, jitter) {
            Decision::RetryAt(at) => (at - T0).try_into().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delays_follow_the_event_grid_schedule_within_jitter() {
        assert_eq!(delay_after(1, 0.5), Duration::from_secs(10));
        assert_eq!(delay_after(2, 0.5), Duration::from_secs(30));
        assert_eq!(delay_after(4, 0.5), Duration::from_secs(300));
        assert_eq!(delay_after(1, 0.0), Duration::from_secs(8));
        assert_eq!(delay_after(1, 0.999_999).as_secs(), 11);
    }

    #[test]
    fn retry_after_from_the_receiver_lengthens_the_delay() {
        let d =
            RetryPolicy::default().after_failure(1, T0, T0, Some(Duration::from_secs(120)), 0.5);
        assert_eq!(d, Decision::RetryAt(T0 + Duration::from_secs(120)));
    }

    #[test]
    fn a_delivery_gives_up_after_max_attempts() {
        let d = RetryPolicy::default().after_failure(30, T0, T0, None, 0.5);
        assert_eq!(d, Decision::GiveUp("gave up after 30 attempts".into()));
    }

    #[test]
    fn a_delivery_expires_when_the_next_attempt_would_pass_its_time_to_live() {
        let now = T0 + Duration::from_secs(23 * 3600);
        let d = RetryPolicy::default().after_failure(10, T0, now, None, 0.5);
        assert!(matches!(d, Decision::GiveUp(reason) if reason.starts_with("expired")));
    }
}
