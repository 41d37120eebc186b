//! What each source is doing, as operators see it (`herald source status`, the console,
//! `/readyz` detail, `/metrics`): its state, position, lag and last error. Written by the
//! source's own task, read by everyone else.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;

/// The state of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Connecting (or waiting to connect again).
    Starting,
    /// Reading changes.
    Streaming,
    /// Taking what a Dataverse environment posts.
    Listening,
    /// Not reading: the last attempt failed; retried with backoff.
    Down,
    /// Stopped with Herald.
    Stopped,
}

/// One source's status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    /// The source's name.
    pub name: String,
    /// Its kind (`postgres`).
    pub kind: String,
    /// Where it reads from, without credentials.
    pub location: String,
    /// Its replication slot and publication.
    pub slot: String,
    /// The publication it reads.
    pub publication: String,
    /// The solutions whose events it makes.
    pub solutions: Vec<String>,
    /// The cataloged tables it reads.
    pub tables: Vec<String>,
    /// The outbox tables it reads.
    pub outboxes: Vec<String>,
    /// Its state.
    pub state: SourceState,
    /// Since when it has been in that state.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The last failure, if any since it last streamed.
    pub last_error: Option<String>,
    /// When the next attempt to connect is due, while down.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// The position stored and acknowledged (the slot may move past it only from here).
    pub position: Option<String>,
    /// The source's write position, as last heard.
    pub source_position: Option<String>,
    /// Bytes of WAL the slot has not had confirmed (source position − confirmed position).
    pub lag_bytes: Option<u64>,
    /// Bytes of WAL the slot keeps on the source's disk (source position − restart position).
    pub retained_bytes: Option<u64>,
    /// Seconds between the last stored transaction's commit at the source and its storing.
    pub lag_seconds: Option<f64>,
    /// Row changes stored as events.
    pub changes: u64,
    /// Changes read again after a restart and recognised as stored (not stored twice).
    pub replayed: u64,
    /// Outbox rows refused (dead-lettered with their reason).
    pub refused: u64,
    /// Source transactions stored.
    pub transactions: u64,
    /// What the source did that has no event (a `TRUNCATE`), the latest last.
    pub notices: Vec<String>,
}

impl SourceView {
    /// A source that has not started: `kind` reading from `location` for `solutions`.
    pub fn new(name: &str, kind: &str, location: String, solutions: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            kind: kind.to_owned(),
            location,
            slot: String::new(),
            publication: String::new(),
            solutions,
            tables: Vec::new(),
            outboxes: Vec::new(),
            state: SourceState::Starting,
            since: OffsetDateTime::now_utc(),
            last_error: None,
            retry_at: None,
            position: None,
            source_position: None,
            lag_bytes: None,
            retained_bytes: None,
            lag_seconds: None,
            changes: 0,
            replayed: 0,
            refused: 0,
            transactions: 0,
            notices: Vec::new(),
        }
    }
}

/// The shared status of one source.
#[derive(Debug, Clone)]
pub struct SourceStatus(Arc<Mutex<SourceView>>);

/// Notices kept.
const NOTICES: usize = 10;

impl SourceStatus {
    /// A source not started yet.
    pub fn new(view: SourceView) -> Self {
        Self(Arc::new(Mutex::new(view)))
    }

    /// A copy of what it says now.
    pub fn view(&self) -> SourceView {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SourceView> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the status with `f`.
    pub fn update(&self, f: impl FnOnce(&mut SourceView)) {
        let mut view = self.lock();
        f(&mut view);
        let name = view.name.clone();
        metrics::gauge!("herald_source_up", "source" => name.clone()).set(f64::from(u8::from(
            matches!(view.state, SourceState::Streaming | SourceState::Listening),
        )));
        if let Some(lag) = view.lag_bytes {
            metrics::gauge!("herald_source_lag_bytes", "source" => name.clone()).set(lag as f64);
        }
        if let Some(retained) = view.retained_bytes {
            metrics::gauge!("herald_source_retained_bytes", "source" => name.clone())
                .set(retained as f64);
        }
        if let Some(seconds) = view.lag_seconds {
            metrics::gauge!("herald_source_lag_seconds", "source" => name).set(seconds);
        }
    }

    /// Enters `state` (keeping the last error until it streams again).
    pub fn enter(&self, state: SourceState) {
        self.update(|v| {
            if v.state != state {
                v.since = OffsetDateTime::now_utc();
            }
            v.state = state;
            if state == SourceState::Streaming {
                v.last_error = None;
                v.retry_at = None;
            }
        });
    }

    /// Down with `error`, to be retried at `retry_at`.
    pub fn down(&self, error: String, retry_at: OffsetDateTime) {
        self.update(|v| {
            if v.state != SourceState::Down {
                v.since = OffsetDateTime::now_utc();
            }
            v.state = SourceState::Down;
            v.last_error = Some(error);
            v.retry_at = Some(retry_at);
        });
    }

    /// Remembers something the source did that made no event.
    pub fn notice(&self, text: String) {
        tracing::warn!(source = %self.lock().name, "{text}");
        self.update(|v| {
            if v.notices.len() == NOTICES {
                v.notices.remove(0);
            }
            v.notices.push(text);
        });
    }
}
