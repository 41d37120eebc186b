//! The load generator: `wrk` (Debian's package), one thread, a fixed number of connections,
//! posting the same purchase for a fixed time. It is a separate process written in C, so it
//! is not the bottleneck the bench's own client would be (an in-process reqwest client
//! reached a quarter to a third of what wrk gets from the same bare handler).

use std::process::Command;
use std::time::Duration;

/// The purchase every request posts (about 150 bytes).
pub const PURCHASE: &str = r#"{"CustomerId":"6f1c1a2e-4d4b-4e0c-9a55-2b8f3c7d9e10","Total":42.5,"Currency":"EUR","PurchasedOn":"2026-11-22T10:30:00Z","Items":["SKU-1","SKU-2"]}"#;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub failed: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// Latency percentiles (over all requests).
    pub p50: Duration,
    pub p99: Duration,
}

impl Load {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Whether wrk is installed.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// Posts [`PURCHASE`] to `url` with `connections` connections for `duration`, with the
/// bearer `key`.
pub fn post(url: &str, key: &str, connections: u32, duration: Duration) -> Load {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.body = '{PURCHASE}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#
        ),
    )
    .expect("wrk script");
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("WRK "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no summary:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let n: Vec<u64> = line[4..]
        .split_whitespace()
        .map(|v| v.parse().expect("wrk prints integers"))
        .collect();
    let (requests, micros, status, socket, p50, p99) = (n[0], n[1], n[2], n[3], n[4], n[5]);
    Load {
        ok: requests.saturating_sub(status),
        failed: status + socket,
        elapsed: Duration::from_micros(micros),
        p50: Duration::from_micros(p50),
        p99: Duration::from_micros(p99),
    }
}
