//! Durable storage of events, deliveries, attempts, endpoints and subscriptions, behind one
//! trait so SQLite (embedded default) and PostgreSQL (clusters) are interchangeable.

pub mod console;
pub mod grants;
pub mod health;
pub mod messages;
pub mod plugins;
pub mod postgres;
pub mod prune;
pub mod rates;
mod record;
pub mod retention;
pub(crate) mod routes;
pub(crate) mod rows;
pub mod sealing;
mod sql;
pub mod sqlite;
mod url;

pub use messages::{Callback, Messages, TextCallback, Watchers, TAIL_TEXT_MAX};
pub use retention::{
    Cutoffs, EventScan, Horizons, PassReport, Removed, RetentionState, StoreStats, TableStats,
};
pub use url::{StoreUrl, StoreUrlError};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    Attempt, AttemptResult, Delivery, DeliveryId, DeliveryQuery, DeliveryStatus, Endpoint,
    EndpointId, Event, EventId, IngestOutcome, LeasedDelivery, NewEvent, ReplayFilter, Scope,
    Subscription, SubscriptionId,
};

/// What to lease.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    /// Who leases (an instance id).
    pub owner: &'a str,
    /// The time now.
    pub now: OffsetDateTime,
    /// Until when.
    pub until: OffsetDateTime,
    /// At most this many.
    pub limit: u32,
    /// At most this many per endpoint.
    pub per_endpoint: u32,
    /// Endpoints that are busy: leave their deliveries.
    pub skip_endpoints: &'a [EndpointId],
}

/// A hand-off's mark and lease, to write (see `dispatch::ledger`).
#[derive(Debug, Clone, Copy)]
pub struct HandoffMark {
    /// The hand-off.
    pub handoff: i64,
    /// Every delivery of an event at this place or below is settled.
    pub through: i64,
    /// Until when its instance holds it.
    pub until: OffsetDateTime,
}

/// Which hand-offs to take over.
#[derive(Debug, Clone, Copy)]
pub enum Takeover<'a> {
    /// Those whose lease ended before this time (their instances stopped writing them).
    Expired(OffsetDateTime),
    /// Those of this owner (a restart of an embedded store: the previous run's).
    Owner(&'a str),
    /// This one (closed by its own instance at shutdown).
    One(i64),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite's writer thread got an error from the database.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations could not be applied.
    #[error("schema migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer Herald: this one refuses to run against it.
    #[error("the database schema is newer than this Herald (it has migration {0}, which this build does not know); run a Herald at least as new as the one that migrated it")]
    SchemaTooNew(i64),
    /// A stored JSON column could not be read back.
    #[error("corrupt stored value in {what}: {source}")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The group commit this write was part of failed (the cause is shared by its batch).
    #[error("the group commit failed: {0}")]
    GroupCommit(#[source] std::sync::Arc<StoreError>),
    /// The group-commit writer stopped (the store is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// The events were handed off under a hand-off another instance has closed meanwhile
    /// (this one was cut off from the database for longer than its lease): nothing was stored.
    #[error("this instance's hand-off was taken over by another instance; nothing was stored")]
    HandoffClosed,
    /// A unique name is already taken.
    #[error("{0} is already taken")]
    Conflict(String),
    /// An endpoint's sealed settings do not open (a key is missing, or the row was altered).
    #[error("the settings of endpoint \"{endpoint}\" do not open: {source}")]
    Sealing {
        /// The endpoint's name.
        endpoint: String,
        /// Why.
        #[source]
        source: sealing::SealingError,
    },
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::SchemaTooNew(v),
            other => StoreError::Migrate(other),
        }
    }
}

impl StoreError {
    /// Whether the failure may pass by itself (the database is busy, full, unreachable, or
    /// shutting down), so a caller should try again later (`503` + `Retry-After`), rather
    /// than a fault of Herald's or of the request.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => transient_sqlx(e),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                transient_sqlite(e.extended_code)
            }
            StoreError::Sqlite(_) => false,
            StoreError::GroupCommit(cause) => cause.is_transient(),
            StoreError::Closed | StoreError::HandoffClosed => true,
            StoreError::Migrate(_)
            | StoreError::SchemaTooNew(_)
            | StoreError::Corrupt { .. }
            | StoreError::Conflict(_)
            | StoreError::Sealing { .. } => false,
        }
    }
}

/// SQLite result codes (the primary code, the low byte of an extended code) and PostgreSQL
/// SQLSTATE classes that mean "not now" rather than "never".
fn transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            if let Ok(sqlite) = code.parse::<i32>() {
                transient_sqlite(sqlite)
            } else {
                // 08: connection exception; 53: insufficient resources (disk full, out of
                // memory, too many connections); 57P01-57P03: the server is shutting down or
                // starting; 40001/40P01: serialization failure, deadlock (try again).
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(&*code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            }
        }
        _ => false,
    }
}

/// Whether an SQLite result code (extended or primary: the primary code is its low byte)
/// means "not now": SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_NOMEM 7, SQLITE_IOERR 10,
/// SQLITE_FULL 13, SQLITE_CANTOPEN 14, SQLITE_PROTOCOL 15.
fn transient_sqlite(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
}

/// The part of the store that is the same SQL on every backend ([`sql::Shared`], which tells
/// the other instances of what it changes through the backend's [`Messages`]).
#[async_trait]
pub trait Records: Send + Sync {
    /// An event and its deliveries, if it is of a solution of `scope`.
    async fn event(
        &self,
        scope: &Scope,
        id: EventId,
    ) -> Result<Option<(Event, Vec<Delivery>)>, StoreError>;

    /// Creates or replaces an endpoint (by id). Fails with `Conflict` if the name is taken.
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;
    /// One endpoint.
    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError>;
    /// One endpoint by name.
    async fn endpoint_by_name(&self, name: &str) -> Result<Option<Endpoint>, StoreError>;
    /// All endpoints, by name.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Deletes an endpoint and its subscriptions, cancelling their unfinished deliveries.
    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError>;

    /// Creates or replaces a subscription (by id). Fails with `Conflict` if the name is taken.
    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError>;
    /// One subscription.
    async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>, StoreError>;
    /// All subscriptions, by name.
    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;
    /// Deletes a subscription, cancelling its unfinished deliveries.
    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError>;
    /// Disables a subscription (a receiver answered 410 Gone) and cancels its pending deliveries.
    async fn disable_subscription(
        &self,
        id: SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Gives back every lease held by `owner` (at start-up: work of a previous run).
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;
    /// Opens a hand-off for `owner`, leased until `until`; returns its id.
    async fn open_handoff(&self, owner: &str, until: OffsetDateTime) -> Result<i64, StoreError>;
    /// Closes the hand-offs `which` names and writes their unsettled deliveries (kept in their
    /// events' rows above the mark) as pending rows, due `now`; returns how many.
    async fn take_over(&self, which: Takeover<'_>, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// The earliest time a pending delivery is due (leaving out the endpoints in `skip`) or a
    /// lease ends, if any.
    async fn next_due(&self, skip: &[EndpointId]) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Deliveries of events of `scope` matching `query`, newest first.
    async fn deliveries(
        &self,
        scope: &Scope,
        query: &DeliveryQuery,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// One delivery with its attempts, if its event is of a solution of `scope`.
    async fn delivery(
        &self,
        scope: &Scope,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError>;
    /// Makes a delivery of `scope` due now: `None` if there is none, `Some(false)` if it is
    /// in a state that cannot be retried.
    async fn retry(
        &self,
        scope: &Scope,
        id: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError>;
    /// Makes the dead letters of `scope` matching `filter` due now; returns how many.
    async fn replay(
        &self,
        scope: &Scope,
        filter: &ReplayFilter,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// Number of deliveries per status.
    async fn counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// What pruning has removed so far and its last pass.
    async fn retention_state(&self) -> Result<RetentionState, StoreError>;
    /// Keeps `report` as the last pruning pass.
    async fn save_pass(&self, report: &PassReport) -> Result<(), StoreError>;
    /// Seals again, under the current key, the endpoint settings that are plain or sealed
    /// under an older key; returns how many. Fails, naming the key, if a row needs a key that
    /// is not configured.
    async fn reseal(&self) -> Result<u64, StoreError>;
}

/// Every statement both backends share ([`sql::Shared`] of either database), as one object a
/// backend hands out whole; [`Store`]'s accessors give its parts.
pub trait Statements:
    Records
    + health::HealthRecords
    + rates::RateRecords
    + grants::GrantRecords
    + console::ConsoleRecords
    + plugins::PluginRecords
{
}

impl<T> Statements for T where
    T: Records
        + health::HealthRecords
        + rates::RateRecords
        + grants::GrantRecords
        + console::ConsoleRecords
        + plugins::PluginRecords
{
}

/// What the store needs to do, whatever the database. Reads and administrative writes that are
/// the same SQL everywhere are [`Store::records`]; what differs by backend is here.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every statement both backends share, as one object.
    fn statements(&self) -> &dyn Statements;

    /// Events, deliveries, endpoints and subscriptions.
    fn records(&self) -> &dyn Records {
        self.statements()
    }

    /// Endpoint health, shared by every instance.
    fn health(&self) -> &dyn health::HealthRecords {
        self.statements()
    }

    /// Endpoint rate limits, shared by every instance.
    fn rates(&self) -> &dyn rates::RateRecords {
        self.statements()
    }

    /// Webhook handshakes (CloudEvents abuse protection), shared by every instance.
    fn grants(&self) -> &dyn grants::GrantRecords {
        self.statements()
    }

    /// The operator console's sessions, activity and pages.
    fn console(&self) -> &dyn console::ConsoleRecords {
        self.statements()
    }

    /// Plug-ins: every version's bytes.
    fn plugins(&self) -> &dyn plugins::PluginRecords {
        self.statements()
    }

    /// What the instances sharing this store tell each other.
    fn messages(&self) -> &dyn Messages;

    /// Stores events with their deliveries durably (on disk before returning), honouring
    /// idempotency keys. Results are in the order of `events`.
    async fn ingest(&self, events: Vec<NewEvent>) -> Result<Vec<IngestOutcome>, StoreError>;

    /// Leases up to `limit` due deliveries (pending and due, or with an expired lease),
    /// skipping the endpoints in `skip_endpoints`, until `lease_until`.
    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Vec<LeasedDelivery>, StoreError>;
    /// Records attempts and the resulting delivery states; a result only changes a delivery
    /// still leased by `owner` (one taken over after its lease expired is left to its new owner).
    /// With a `mark`, in the same transaction: writes the hand-off's mark and lease, and writes
    /// each result of a delivery kept in its event's row (`routed`, of that hand-off) as a row
    /// of its own, taking it out of the event's routes. Answers whether the hand-off is still
    /// open: when another instance closed it (took it over), neither the mark nor any routed
    /// result is written (fencing), and the caller must open a new one.
    async fn record(
        &self,
        owner: &str,
        mark: Option<&HandoffMark>,
        results: &[AttemptResult],
    ) -> Result<bool, StoreError>;

    /// Whether the store takes durable writes now (readiness: events can be accepted).
    async fn ready(&self) -> Result<(), StoreError>;

    /// Removes up to `limit` finished deliveries that `cutoffs` make expired (succeeded, then
    /// dead-lettered and cancelled ones), with their attempts; never a pending or in-flight
    /// one. Instances pruning at once take disjoint rows. One short transaction.
    async fn prune_deliveries(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed, StoreError>;
    /// Looks at up to `limit` events after `after` (by id, oldest first) accepted before
    /// `cutoffs.events`, and removes those with no delivery left whose idempotency key (if
    /// any) is no longer honoured.
    async fn prune_events(
        &self,
        cutoffs: &Cutoffs,
        after: Option<&str>,
        limit: u32,
    ) -> Result<EventScan, StoreError>;
    /// Gives up to `max_pages` free pages back to the file system; returns the bytes given
    /// back. SQLite's incremental vacuum; PostgreSQL keeps freed space for reuse (autovacuum).
    async fn reclaim(&self, max_pages: u32) -> Result<u64, StoreError>;
    /// Rows and bytes by table.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// The lease owner name this process uses: fixed for an embedded store (a restart
    /// releases the leases of the previous run at once), unique per process for a shared one
    /// (leases of a dead instance are taken over when they expire).
    fn lease_owner(&self) -> String;
}

/// Opens the store named by `settings.url`.
pub async fn open(settings: &StoreSettings) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match &settings.url {
        StoreUrl::Sqlite(path) => {
            std::sync::Arc::new(sqlite::SqliteStore::open(path, settings).await?)
        }
        StoreUrl::Postgres(url) => {
            std::sync::Arc::new(postgres::PgStore::open(url, settings).await?)
        }
    })
}

/// A unique-index violation as `Conflict(what)`, any other error as a database error.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which database.
    pub url: StoreUrl,
    /// PostgreSQL: most connections the pool opens.
    pub max_connections: u32,
    /// PostgreSQL: how long to wait for a connection before failing (then `503`).
    pub acquire_timeout: std::time::Duration,
    /// PostgreSQL: the schema to use (created if missing); the server's default when `None`.
    pub schema: Option<String>,
    /// How long an idempotency key is honoured: a key whose event was accepted longer ago may
    /// be used again (for a new event).
    pub idempotency_window: std::time::Duration,
    /// The keys endpoint settings are sealed with at rest.
    pub keys: std::sync::Arc<sealing::KeyRing>,
}
