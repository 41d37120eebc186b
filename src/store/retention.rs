//! What pruning removes and what the store holds: the cutoffs one pruning batch applies, what
//! it removed, the horizons that let a lookup tell "pruned" from "never existed", and rows and
//! bytes by table. The loop that prunes is [`super::prune`]; the statements are the backends'.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::rows::millis;

/// The times before which finished rows have expired (each from a retention window and now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Succeeded deliveries (with their attempts) that finished before this.
    pub succeeded: OffsetDateTime,
    /// Dead-lettered and cancelled deliveries that finished before this.
    pub dead_lettered: OffsetDateTime,
    /// Events accepted before this, once none of their deliveries is left.
    pub events: OffsetDateTime,
    /// An event holding an idempotency key accepted at or after this is kept (its key is
    /// still honoured), whatever `events` says.
    pub idempotency: OffsetDateTime,
}

impl Cutoffs {
    /// The finished statuses pruning removes, in order, each with its cutoff (unix ms) and
    /// whether it is a dead letter (what replay reads): succeeded deliveries, then
    /// dead-lettered and cancelled ones.
    pub fn finished(&self) -> [(&'static str, i64, bool); 3] {
        let dead = millis(self.dead_lettered);
        [
            ("succeeded", millis(self.succeeded), false),
            ("dead_lettered", dead, true),
            ("cancelled", dead, true),
        ]
    }

    /// Events accepted before this (unix ms) may go, and keyed ones only if accepted before
    /// the second: `(events, idempotency)`.
    pub fn events_millis(&self) -> (i64, i64) {
        (millis(self.events), millis(self.idempotency))
    }
}

/// Rows one batch (or a pass) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Deliveries.
    pub deliveries: u64,
    /// Attempts (of those deliveries).
    pub attempts: u64,
    /// Events.
    pub events: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Self) {
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.events += other.events;
    }
}

/// One step of the scan over expired events.
#[derive(Debug, Clone, Default)]
pub struct EventScan {
    /// Events removed.
    pub removed: u64,
    /// The last event id looked at: where the next step starts. `None` when the scan reached
    /// the cutoff (the pass is over).
    pub next: Option<String>,
}

/// What one pruning pass did, as kept in the store (the newest pass of any instance).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassReport {
    /// The instance that ran it.
    pub instance: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Rows it removed.
    pub removed: Removed,
    /// Bytes it gave back to the file system (SQLite's incremental vacuum; 0 on PostgreSQL,
    /// where autovacuum keeps freed space for reuse).
    pub reclaimed_bytes: u64,
}

/// The newest creation time of any row pruning removed (`None`: nothing removed yet), so a
/// lookup of a missing id made before it can say the row may have been pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Horizons {
    /// Deliveries of any status.
    pub deliveries: Option<OffsetDateTime>,
    /// Dead-lettered or cancelled deliveries (what replay reads).
    pub dead_letters: Option<OffsetDateTime>,
    /// Events.
    pub events: Option<OffsetDateTime>,
}

/// What retention has done so far: the horizons and the last pass.
#[derive(Debug, Clone, Default)]
pub struct RetentionState {
    /// What pruning has removed up to.
    pub horizons: Horizons,
    /// The newest pass of any instance.
    pub last_pass: Option<PassReport>,
}

/// Rows and bytes of one table (its indexes and, on PostgreSQL, TOAST included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// The table.
    pub table: String,
    /// Rows (PostgreSQL: the statistics collector's live-row count, which lags a little).
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// What the store holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    /// By table, by name.
    pub tables: Vec<TableStats>,
    /// The database's size on disk: SQLite's file and its WAL; PostgreSQL's database.
    pub total_bytes: u64,
    /// Of which free for reuse (SQLite's free pages), if known.
    pub free_bytes: Option<u64>,
}
