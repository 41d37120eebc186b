//! Statistics per plug-in version, as Dataverse keeps plug-in type statistics: executions,
//! failures, mean, p50 and p99 duration, fuel used, the last error. Kept by each instance of Herald
//! for the executions it ran (the API and console show this instance's; `/metrics` lets a
//! monitoring system add instances up).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::{PluginError, Version};

/// Durations kept per version for the percentiles: the latest ones.
const SAMPLES: usize = 1024;

/// What the executions of one plug-in version did, on this instance.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct VersionStatistics {
    /// The version.
    pub version: u32,
    /// Executions run.
    pub executions: u64,
    /// Executions that failed (a trap, a limit, the host); a plug-in's own refusal is not a
    /// failure.
    pub failures: u64,
    /// Executions the plug-in answered with an error of its own (a step's cancel, an
    /// asynchronous plug-in's failed attempt).
    pub refusals: u64,
    /// Mean duration, in milliseconds.
    pub mean_ms: f64,
    /// Median of the latest executions' durations, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of the latest executions' durations, in milliseconds.
    pub p99_ms: f64,
    /// Mean fuel (instructions) per execution.
    pub mean_fuel: u64,
    /// The last failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
}

#[derive(Debug, Default)]
struct Counts {
    executions: u64,
    failures: u64,
    refusals: u64,
    total: Duration,
    fuel: u128,
    samples: Vec<Duration>,
    next: usize,
    last_error: Option<(String, time::OffsetDateTime)>,
}

/// The statistics of every version run on this instance.
#[derive(Debug, Default)]
pub struct Statistics {
    by_version: Mutex<HashMap<Version, Counts>>,
}

impl Statistics {
    /// Counts one execution of `version`.
    pub fn record(
        &self,
        version: &Version,
        took: Duration,
        fuel: u64,
        error: Option<&PluginError>,
        refused: bool,
    ) {
        let mut map = self.by_version.lock().expect("statistics poisoned");
        let counts = map.entry(version.clone()).or_default();
        counts.executions += 1;
        counts.total += took;
        counts.fuel += u128::from(fuel);
        if counts.samples.len() < SAMPLES {
            counts.samples.push(took);
        } else {
            counts.samples[counts.next] = took;
            counts.next = (counts.next + 1) % SAMPLES;
        }
        if refused {
            counts.refusals += 1;
        }
        if let Some(e) = error {
            counts.failures += 1;
            counts.last_error = Some((e.to_string(), time::OffsetDateTime::now_utc()));
        }
    }

    /// The statistics of every version of `name` run here, newest version first.
    pub fn of(&self, name: &str) -> Vec<VersionStatistics> {
        let map = self.by_version.lock().expect("statistics poisoned");
        let mut out: Vec<VersionStatistics> = map
            .iter()
            .filter(|(v, _)| v.name == name)
            .map(|(v, c)| summarize(v.version, c))
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.version));
        out
    }
}

fn summarize(version: u32, c: &Counts) -> VersionStatistics {
    let n = c.executions.max(1);
    VersionStatistics {
        version,
        executions: c.executions,
        failures: c.failures,
        refusals: c.refusals,
        mean_ms: c.total.as_secs_f64() * 1000.0 / n as f64,
        p50_ms: percentile(&c.samples, 0.5).as_secs_f64() * 1000.0,
        p99_ms: percentile(&c.samples, 0.99).as_secs_f64() * 1000.0,
        mean_fuel: u64::try_from(c.fuel / u128::from(n)).unwrap_or(u64::MAX),
        last_error: c.last_error.as_ref().map(|(m, _)| m.clone()),
        last_error_at: c.last_error.as_ref().and_then(|(_, at)| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
    }
}

/// The `q` quantile of `samples` (nearest rank), zero for none.
fn percentile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_99th_percentile_is_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn failures_are_counted_with_their_message() {
        let stats = Statistics::default();
        let v = Version {
            name: "p".into(),
            version: 2,
        };
        stats.record(&v, Duration::from_millis(2), 100, None, true);
        let e = PluginError::Trapped {
            plugin: "p@2".into(),
            message: "boom".into(),
        };
        stats.record(&v, Duration::from_millis(4), 300, Some(&e), false);
        let s = &stats.of("p")[0];
        assert_eq!(
            (s.executions, s.failures, s.refusals, s.mean_fuel),
            (2, 1, 1, 200)
        );
        assert!((s.mean_ms - 3.0).abs() < 1e-9);
        assert_eq!(s.last_error.as_deref(), Some("plug-in p@2 failed: boom"));
        assert!(stats.of("q").is_empty());
    }
}
