//! Records attempt results in batches: one transaction for all results waiting; then tells
//! the console's watchers what was recorded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Happening};
use crate::model::AttemptResult;
use crate::store::Store;

/// A result to record, and what watchers are told once it is.
pub(super) type ToRecord = (AttemptResult, Option<Happening>);

/// Results taken into one transaction at most.
const BATCH: usize = 256;

/// Records what arrives on `rx`; after `stop`, what is still queued, then returns.
pub(super) async fn run(
    store: Arc<dyn Store>,
    owner: String,
    mut rx: mpsc::Receiver<ToRecord>,
    activity: Activity,
    stop: CancellationToken,
) {
    let mut taken_in = Vec::with_capacity(BATCH);
    loop {
        let taken = tokio::select! {
            n = rx.recv_many(&mut taken_in, BATCH) => n,
            _ = stop.cancelled(), if !rx.is_closed() => {
                // Nothing more is accepted; what is queued is still recorded.
                rx.close();
                continue;
            }
        };
        if taken == 0 {
            return;
        }
        let (batch, told): (Vec<AttemptResult>, Vec<Option<Happening>>) =
            taken_in.drain(..).unzip();
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.record(&owner, &batch).await {
                Ok(()) => {
                    told.into_iter().flatten().for_each(|h| activity.tell(h));
                    break;
                }
                Err(e) => {
                    // Unrecorded results are safe: the leases expire and the deliveries are sent again.
                    tracing::warn!(error = %e, results = batch.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    if rx.is_closed() && backoff >= Duration::from_secs(10) {
                        break;
                    }
                }
            }
        }
    }
}
