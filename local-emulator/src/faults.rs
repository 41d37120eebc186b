//! Faults to inject on request, for testing how clients recover: settlements that never
//! arrive (the broker stored the message, then the connection died before it could say so).
//! Set through the library API or the side port (`PUT /faults`).

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};

/// Faults waiting to happen.
#[derive(Debug, Default)]
pub struct Faults {
    lose_settlements: AtomicU32,
}

/// The faults to arm, as the side port takes them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// How many of the next messages sent to an entity are stored and then have their
    /// connection dropped instead of being settled.
    #[serde(default)]
    pub lose_settlements: u32,
}

impl Faults {
    /// Arms the faults of a plan (replacing what was armed).
    pub fn arm(&self, plan: FaultPlan) {
        self.lose_settlements
            .store(plan.lose_settlements, Ordering::SeqCst);
    }

    /// What is still armed.
    pub fn armed(&self) -> FaultPlan {
        FaultPlan {
            lose_settlements: self.lose_settlements.load(Ordering::SeqCst),
        }
    }

    /// Whether this settlement is to be lost (uses one up).
    pub fn lose_settlement(&self) -> bool {
        self.lose_settlements
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_fault_happens_as_many_times_as_asked() {
        let f = Faults::default();
        assert!(!f.lose_settlement());
        f.arm(FaultPlan {
            lose_settlements: 2,
        });
        assert!(f.lose_settlement() && f.lose_settlement());
        assert!(!f.lose_settlement());
    }
}
