//! The webhook sink: records every request with its Standard Webhooks verdict, and answers
//! with a status and delay that tests can set (to exercise retries).

pub mod signature;

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use signature::Verdict;

/// One request the sink received.
#[derive(Debug, Clone, Serialize)]
pub struct SinkRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Unix milliseconds when it arrived.
    pub received_ms: i64,
    /// Path after `/sink`.
    pub path: String,
    /// Headers, lower-cased names.
    pub headers: BTreeMap<String, String>,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// Signature verdict.
    pub verdict: Verdict,
    /// Status the sink answered.
    pub status: u16,
}

/// How the sink answers.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Behaviour {
    /// Status to answer.
    pub status: u16,
    /// For how many requests (then back to 200); `None` for all.
    #[serde(default)]
    pub count: Option<u32>,
    /// Delay before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            count: None,
            delay_ms: 0,
        }
    }
}

#[derive(Default)]
struct State {
    secrets: Vec<String>,
    records: Vec<SinkRecord>,
    behaviour: Behaviour,
}

/// Shared handle on the sink.
#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<State>>,
}

impl Sink {
    /// A sink verifying with `secrets` (`whsec_…`).
    pub fn new(secrets: Vec<String>) -> Sink {
        Sink {
            inner: Arc::new(Mutex::new(State {
                secrets,
                ..State::default()
            })),
        }
    }
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Adds a verification secret.
    pub fn add_secret(&self, secret: &str) {
        self.state().secrets.push(secret.to_owned());
    }
    /// Sets how the sink answers.
    pub fn set_behaviour(&self, b: Behaviour) {
        self.state().behaviour = b;
    }
    /// Everything received so far.
    pub fn records(&self) -> Vec<SinkRecord> {
        self.state().records.clone()
    }
    /// Forgets what was received.
    pub fn clear(&self) {
        self.state().records.clear();
    }

    /// Records a request; returns the status and the delay to answer with.
    pub fn receive(
        &self,
        path: &str,
        headers: BTreeMap<String, String>,
        body: &[u8],
    ) -> (u16, Duration) {
        let now = crate::broker::handle::now_ms();
        let mut s = self.state();
        let verdict = signature::verify(&s.secrets, &headers, body, now / 1000);
        let b = s.behaviour.clone();
        let status = b.status;
        if let Some(n) = b.count {
            s.behaviour = if n <= 1 {
                Behaviour::default()
            } else {
                Behaviour {
                    count: Some(n - 1),
                    ..b.clone()
                }
            };
        }
        let seq = s.records.len() as u64 + 1;
        s.records.push(SinkRecord {
            seq,
            received_ms: now,
            path: path.to_owned(),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
            verdict,
            status,
        });
        (status, Duration::from_millis(b.delay_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_answers_the_set_status_for_the_next_n_requests_then_200() {
        let s = Sink::new(vec![]);
        s.set_behaviour(Behaviour {
            status: 503,
            count: Some(2),
            delay_ms: 0,
        });
        let codes: Vec<u16> = (0..3)
            .map(|_| s.receive("/", BTreeMap::new(), b"x").0)
            .collect();
        assert_eq!(codes, vec![503, 503, 200]);
        assert_eq!(s.records().len(), 3);
    }
}
