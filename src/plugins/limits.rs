//! What one execution of a plug-in may use, and the name of the limit it ran into. The
//! decisions are pure functions with their tests; the sandbox applies them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits of every execution, from configuration (`[plugins]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Instructions one execution may run (wasmtime's fuel: about one unit per instruction).
    pub fuel: u64,
    /// Wall-clock time one execution may take, host calls (HTTP, emitting) included.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Bytes one linear memory may hold (a component has a few: `memories` caps them).
    pub memory: usize,
    /// Elements of one table.
    pub table_elements: usize,
    /// Core instances, tables and memories one component may make.
    pub instances: usize,
    /// Tables of one component.
    pub tables: usize,
    /// Memories of one component.
    pub memories: usize,
    /// Bytes of one uploaded component.
    pub upload: usize,
    /// Bytes of one answer (the JSON a plug-in returns).
    pub answer: usize,
    /// Log lines one execution may write (more are counted, not written).
    pub log_lines: u32,
    /// Calls of `fetch` and `emit` one execution may make.
    pub host_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // About 0.1–0.5 s of straight-line code: far beyond what a step should need, and
            // the deadline stops what fuel does not (host calls).
            fuel: 500_000_000,
            deadline: Duration::from_secs(2),
            memory: 128 * 1024 * 1024,
            table_elements: 200_000,
            instances: 64,
            tables: 64,
            memories: 8,
            upload: 32 * 1024 * 1024,
            answer: 1024 * 1024,
            log_lines: 64,
            host_calls: 16,
        }
    }
}

/// A limit an execution ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The instruction budget.
    Fuel(u64),
    /// The wall-clock deadline.
    Deadline(Duration),
    /// The memory cap, in bytes.
    Memory(usize),
    /// The elements of a table.
    TableElements(usize),
    /// The size of the answer, in bytes.
    Answer(usize),
    /// The calls of `fetch` and `emit`.
    HostCalls(u32),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Fuel(n) => write!(f, "its instruction budget ({n} units of fuel)"),
            Limit::Deadline(d) => write!(f, "its deadline ({} ms)", d.as_millis()),
            Limit::Memory(b) => write!(f, "its memory cap ({})", bytes(*b)),
            Limit::TableElements(n) => write!(f, "its table cap ({n} elements)"),
            Limit::Answer(b) => write!(f, "the size of an answer ({})", bytes(*b)),
            Limit::HostCalls(n) => write!(f, "its host calls ({n} per execution)"),
        }
    }
}

/// `b` bytes as people read them.
fn bytes(b: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if b >= MIB && b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} bytes")
    }
}

/// Whether a memory may grow to `desired` bytes under `limits`.
pub fn memory_may_grow(limits: &Limits, desired: usize) -> Result<(), Limit> {
    if desired > limits.memory {
        Err(Limit::Memory(limits.memory))
    } else {
        Ok(())
    }
}

/// Whether a table may grow to `desired` elements.
pub fn table_may_grow(limits: &Limits, desired: usize) -> Result<(), Limit> {
    if desired > limits.table_elements {
        Err(Limit::TableElements(limits.table_elements))
    } else {
        Ok(())
    }
}

/// Epoch ticks the deadline lasts, with one tick every `tick`: rounded up, at least one, so a
/// deadline shorter than a tick still stops the execution (within one tick more).
pub fn deadline_ticks(deadline: Duration, tick: Duration) -> u64 {
    let ticks = deadline.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// Whether a warm instance goes back to the pool after a call: only after a clean answer, and
/// at most `max_calls` times, so state a plug-in keeps by mistake does not live forever.
pub fn reusable(clean: bool, calls: u32, max_calls: u32) -> bool {
    clean && calls < max_calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_stops_at_its_cap() {
        let limits = Limits {
            memory: 10 * 65536,
            ..Limits::default()
        };
        assert!(memory_may_grow(&limits, 10 * 65536).is_ok());
        assert_eq!(
            memory_may_grow(&limits, 11 * 65536),
            Err(Limit::Memory(10 * 65536))
        );
    }

    #[test]
    fn tables_stop_at_their_cap() {
        let limits = Limits::default();
        assert!(table_may_grow(&limits, limits.table_elements).is_ok());
        assert!(table_may_grow(&limits, limits.table_elements + 1).is_err());
    }

    #[test]
    fn a_deadline_shorter_than_a_tick_still_lasts_one_tick() {
        let tick = Duration::from_millis(10);
        assert_eq!(deadline_ticks(Duration::from_millis(1), tick), 1);
        assert_eq!(deadline_ticks(Duration::from_millis(10), tick), 1);
        assert_eq!(deadline_ticks(Duration::from_millis(11), tick), 2);
        assert_eq!(deadline_ticks(Duration::from_secs(2), tick), 200);
    }

    #[test]
    fn an_instance_is_reused_only_after_clean_calls_and_up_to_its_count() {
        assert!(reusable(true, 1, 100));
        assert!(!reusable(false, 1, 100));
        assert!(!reusable(true, 100, 100));
    }

    #[test]
    fn limits_name_their_value() {
        assert_eq!(
            Limit::Memory(128 * 1024 * 1024).to_string(),
            "its memory cap (128 MiB)"
        );
        assert_eq!(
            Limit::Deadline(Duration::from_secs(2)).to_string(),
            "its deadline (2000 ms)"
        );
    }
}
