//! Shares the broker between connections: one mutex around the state, a watch channel that
//! wakes receivers when anything changed, and an optional append-only journal (fsync'd JSON
//! lines) that makes the state survive restarts.

use super::{Broker, Op};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Why the journal could not be opened or replayed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of the journal is not a record.
    #[error("journal {path} line {line}: {source}")]
    Corrupt {
        /// The journal file.
        path: String,
        /// Line number.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// A cheap, cloneable handle on the shared broker.
#[derive(Clone)]
pub struct BrokerHandle {
    inner: Arc<Mutex<Broker>>,
    wake: Arc<watch::Sender<u64>>,
    journal: Option<Arc<Mutex<File>>>,
}

impl BrokerHandle {
    /// Shares `broker`; with `data_dir`, replays and then appends to `data_dir/journal.jsonl`.
    pub fn new(mut broker: Broker, data_dir: Option<&Path>) -> Result<BrokerHandle, JournalError> {
        let journal = match data_dir {
            None => None,
            Some(dir) => {
                let path = dir.join("journal.jsonl");
                let shown = path.display().to_string();
                let io = |source| JournalError::Io {
                    path: shown.clone(),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(io)?;
                if path.exists() {
                    let now = now_ms();
                    let f = File::open(&path).map_err(io)?;
                    for (i, line) in BufReader::new(f).lines().enumerate() {
                        let line = line.map_err(io)?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<Op>(&line) {
                            Ok(op) => broker.replay(op, now),
                            // A torn last line from a crash mid-write: everything before it counts.
                            Err(_) if is_last_line(&path, i) => break,
                            Err(source) => {
                                return Err(JournalError::Corrupt {
                                    path: shown,
                                    line: i + 1,
                                    source,
                                })
                            }
                        }
                    }
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io)?;
                Some(Arc::new(Mutex::new(f)))
            }
        };
        broker.drain_journal();
        let (wake, _) = watch::channel(0);
        Ok(BrokerHandle {
            inner: Arc::new(Mutex::new(broker)),
            wake: Arc::new(wake),
            journal,
        })
    }

    /// Runs `f` on the broker, journals what changed, and wakes receivers if anything did.
    pub fn with<R>(&self, f: impl FnOnce(&mut Broker, i64) -> R) -> R {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut b, now_ms());
        let ops = b.drain_journal();
        if !ops.is_empty() {
            if let Some(j) = &self.journal {
                let mut buf = Vec::new();
                for op in &ops {
                    if serde_json::to_writer(&mut buf, op).is_ok() {
                        buf.push(b'\n');
                    }
                }
                let mut file = j.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = file.write_all(&buf).and_then(|()| file.sync_data()) {
                    tracing::error!(error = %e, "journal write failed; state after this point is not durable");
                }
            }
            drop(b);
            self.notify();
        }
        r
    }

    /// Wakes every receiver.
    pub fn notify(&self) {
        self.wake.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that changes whenever the broker does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}

fn is_last_line(path: &Path, index: usize) -> bool {
    File::open(path)
        .map(|f| BufReader::new(f).lines().count() == index + 1)
        .unwrap_or(false)
}
