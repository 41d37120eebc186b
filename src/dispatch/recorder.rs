//! Records attempt results in batches: one transaction for all results waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::AttemptResult;
use crate::store::Store;

/// Results taken into one transaction at most.
const BATCH: usize = 256;

/// Records what arrives on `rx`; after `stop`, what is still queued, then returns.
pub(super) async fn run(
    store: Arc<dyn Store>,
    owner: String,
    mut rx: mpsc::Receiver<AttemptResult>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let taken = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            _ = stop.cancelled(), if !rx.is_closed() => {
                // Nothing more is accepted; what is queued is still recorded.
                rx.close();
                continue;
            }
        };
        if taken == 0 {
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.record(&owner, &batch).await {
                Ok(()) => break,
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
        batch.clear();
    }
}
