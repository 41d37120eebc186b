//! Per-endpoint bookkeeping of the dispatcher: deliveries held (leased, not finished) and the
//! semaphore that bounds how many are sent at once.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// One endpoint's gate.
pub(super) struct Gate {
    /// Deliveries leased and not finished.
    pub held: u32,
    /// Sends allowed at once.
    pub limit: u32,
    /// A lease round left the endpoint out as full since it last had room.
    pub skipped: bool,
    /// Deliveries to the endpoint may be waiting in the store: fresh ones are not handed off
    /// (they would overtake them) until a lease round finds fewer than it could take.
    pub backlog: bool,
    /// Bounds sends at once.
    pub sending: Arc<Semaphore>,
}

impl Gate {
    /// A gate allowing `limit` sends at once.
    pub fn new(limit: u32) -> Self {
        Self {
            held: 0,
            limit,
            skipped: false,
            backlog: false,
            sending: Arc::new(Semaphore::new(limit as usize)),
        }
    }
}
