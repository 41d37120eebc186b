//! A PostgreSQL source: the application's database read by logical replication (`pgoutput`,
//! a publication and a slot that `herald source setup` creates). Each row change of a
//! cataloged table becomes that table's event; each row inserted into an outbox table becomes
//! the custom event it names. Changes are stored (durably, through the ingestion call every
//! edge uses) before the slot is told it may move past them, under an idempotency key made
//! of the slot, the transaction's commit position and the change's place in it: a crash of
//! Herald, of the database or of the connection reads some changes again and stores none
//! twice.
//!
//! The replication protocol is `pgwire-replication`'s: it is maintained, has its own wire
//! code with TLS and SCRAM, lets the consumer say exactly which position is durable
//! (`update_applied_lsn`), and adds four crates. `tokio-postgres` has no replication mode
//! without a fork, and `pg_walstream` needs more (and newer) dependencies. It leaves
//! `pgoutput` itself to its user: `pgoutput.rs`.

pub mod connection;
pub mod outbox;
pub mod pgoutput;
mod rows;
pub mod setup;
mod slot;
mod values;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanKind;
use pgwire_replication::{Lsn, PgWireError, ReplicationClient, ReplicationEvent};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use self::connection::Target;
use self::outbox::Outbox;
use self::pgoutput::{Message, Relation};
use super::{SourceConfig, SourceState, SourceStatus, SourceView};
use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::ingest::{IngestError, Ingestor, Submission};
use crate::model::{row_event_name, TableDefinition};
use crate::telemetry::Tracing;

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The URL is unusable (the configuration check says so at start).
    #[error(transparent)]
    Url(#[from] connection::UrlError),
    /// The replication session failed.
    #[error("replication: {0}")]
    Replication(#[from] PgWireError),
    /// The slot or publication is missing.
    #[error("{0}; run `herald source setup {1}`")]
    NotSetUp(String, String),
    /// A message could not be read.
    #[error(transparent)]
    Decode(#[from] pgoutput::DecodeError),
    /// A change names a relation the stream never described.
    #[error("a change names relation {0}, which the stream did not describe")]
    UnknownRelation(u32),
    /// Storing failed: nothing was confirmed, the changes are read again.
    #[error("storing changes failed: {0}")]
    Store(#[from] IngestError),
    /// The server ended the stream.
    #[error("the server ended the replication stream")]
    Ended,
}

/// One PostgreSQL source.
pub struct PostgresSource {
    config: SourceConfig,
    tables: Vec<TableDefinition>,
    outboxes: Vec<Outbox>,
    prefixes: HashMap<String, String>,
    catalog: Catalog,
    ingestor: Arc<Ingestor>,
    status: SourceStatus,
    caller: Principal,
    tracing: Tracing,
}

impl PostgresSource {
    /// The source `config` reading the tables of `catalog` that name it.
    pub fn new(
        config: SourceConfig,
        catalog: &Catalog,
        ingestor: Arc<Ingestor>,
        tracing: Tracing,
    ) -> Self {
        let tables: Vec<TableDefinition> = catalog
            .tables()
            .iter()
            .filter(|t| t.source.as_deref() == Some(config.name.as_str()))
            .cloned()
            .collect();
        let outboxes: Vec<Outbox> = config.outboxes.iter().map(Outbox::new).collect();
        let mut solutions: Vec<String> = tables.iter().map(|t| t.solution.clone()).collect();
        solutions.extend(outboxes.iter().map(|o| o.config.solution.clone()));
        solutions.sort();
        solutions.dedup();
        let prefixes = catalog
            .solutions()
            .iter()
            .map(|s| (s.unique_name.clone(), s.publisher_prefix.clone()))
            .collect();
        let location = target(&config)
            .map(|t| t.location())
            .unwrap_or_else(|e| format!("(unusable: {e})"));
        let mut view = SourceView::new(&config.name, "postgres", location, solutions.clone());
        view.slot = config.slot();
        view.publication = config.publication();
        view.tables = tables.iter().map(|t| t.relation.clone()).collect();
        view.outboxes = outboxes.iter().map(|o| o.config.relation.clone()).collect();
        let status = SourceStatus::new(view);
        let caller = Principal {
            name: format!("source:{}", config.name),
            solutions: Some(solutions),
            admin: false,
            system: false,
        };
        Self {
            config,
            tables,
            outboxes,
            prefixes,
            catalog: catalog.clone(),
            ingestor,
            status,
            caller,
            tracing,
        }
    }

    /// Its status, shared.
    pub fn status(&self) -> SourceStatus {
        self.status.clone()
    }

    /// Reads changes until `shutdown`, connecting again with backoff after every failure.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wait = self.config.retry_min;
        loop {
            self.status.enter(SourceState::Starting);
            let started = Instant::now();
            match self.stream(&shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    // A stream that ran a while failed for a new reason: start the backoff over.
                    if started.elapsed() > self.config.retry_max * 2 {
                        wait = self.config.retry_min;
                    }
                    let retry_at = OffsetDateTime::now_utc() + wait;
                    tracing::warn!(source = %self.config.name, error = %e, retry_in = ?wait, "source down");
                    self.status.down(e.to_string(), retry_at);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    wait = (wait * 2).min(self.config.retry_max);
                }
            }
        }
        self.status.enter(SourceState::Stopped);
    }

    /// One replication session, until `shutdown` (`Ok`) or a failure.
    async fn stream(&self, shutdown: &CancellationToken) -> Result<(), StreamError> {
        let target = target(&self.config)?;
        let (slot, publication) = (self.config.slot(), self.config.publication());
        let application = format!("herald-{}", self.config.name);
        let mut client =
            ReplicationClient::connect(target.replication(&slot, &publication, &application))
                .await?;
        tokio::select! {
            started = client.wait_started() => started.map_err(|e| self.not_set_up(e))?,
            _ = shutdown.cancelled() => return Ok(()),
        }
        self.status.enter(SourceState::Streaming);
        tracing::info!(source = %self.config.name, %slot, "source streaming");
        let _watch = slot::watch(target.clone(), slot.clone(), self.status.clone());
        let cleaner = outbox::Cleaner::new(&target, &self.outboxes);
        let mut relations: HashMap<u32, Described> = HashMap::new();
        let mut transaction: Option<Transaction> = None;
        let mut pending: Vec<Pending> = Vec::new();
        // The last commit read whose changes are not all confirmed yet.
        let mut unconfirmed: Option<Committed> = None;
        // Small transactions share a write (group commit): a committed transaction's changes
        // wait this long for the next ones, unless the batch is full first.
        let mut flush_at: Option<tokio::time::Instant> = None;
        // The write in flight and the commit it confirms once done: the next changes are read
        // and prepared while it is written (one write at a time, confirmed in order).
        let mut writing: Option<(Write<'_>, Option<Committed>)> = None;
        // Waits for the write in flight and confirms what it stored.
        macro_rules! settle {
            () => {{
                if let Some((w, committed)) = writing.take() {
                    w.await?;
                    self.confirm(&client, committed);
                }
            }};
        }
        // Starts writing what waits, after the write in flight (confirmed first).
        macro_rules! write {
            () => {{
                settle!();
                let batch = std::mem::take(&mut pending);
                writing = Some((Box::pin(self.store(batch, &cleaner)), unconfirmed.take()));
                flush_at = None;
            }};
        }
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    client.stop();
                    return Ok(());
                }
                written = async { writing.as_mut().expect("guarded").0.as_mut().await }, if writing.is_some() => {
                    written?;
                    let (_, committed) = writing.take().expect("guarded");
                    self.confirm(&client, committed);
                    continue;
                }
                event = client.recv() => event?,
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)), if flush_at.is_some() => {
                    write!();
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(StreamError::Ended);
            };
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    commit_time_micros,
                    ..
                } => {
                    transaction = Some(Transaction::new(
                        &self.config.name,
                        &slot,
                        final_lsn,
                        commit_time_micros,
                    ));
                }
                ReplicationEvent::XLogData { data, .. } => {
                    let message = pgoutput::decode(&data)?;
                    if let Message::Relation(r) = message {
                        // What the relation is to Herald is decided once, not per change.
                        let reads = self.reads(&r);
                        relations.insert(r.id, Described { relation: r, reads });
                        continue;
                    }
                    let Some(tx) = transaction.as_mut() else {
                        continue;
                    };
                    if let Some(p) = self.change(tx, &relations, message)? {
                        pending.push(p);
                    }
                    if pending.len() >= self.config.batch {
                        // Every commit read so far is whole in this write: it confirms the last.
                        write!();
                    }
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    let tx = transaction.take();
                    let count = unconfirmed.as_ref().map_or(0, |c| c.transactions);
                    unconfirmed = Some(Committed {
                        end_lsn,
                        committed_at: tx.map(|t| t.committed_at),
                        transactions: count + 1,
                    });
                    if pending.len() >= self.config.batch {
                        write!();
                    } else if flush_at.is_none() {
                        flush_at = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    self.status
                        .update(|v| v.source_position = Some(wal_end.to_pg_string()));
                    if transaction.is_none() {
                        // The server has nothing more for now: store what waits, and wait.
                        write!();
                        settle!();
                        // Between transactions everything sent before this is stored: the
                        // slot may move to here (other tables' and databases' writes), as
                        // pg_recvlogical does, so it does not hold WAL for changes Herald skips.
                        if !wal_end.is_zero() {
                            client.update_applied_lsn(wal_end);
                        }
                    }
                }
                ReplicationEvent::Message { .. } => {}
                ReplicationEvent::StoppedAt { .. } => return Ok(()),
            }
        }
    }

    /// What `relation` is to this source: one of its tables, one of its outboxes, or neither.
    fn reads(&self, relation: &Relation) -> Reads {
        let qualified = format!("{}.{}", relation.namespace, relation.name);
        if let Some(i) = self
            .outboxes
            .iter()
            .position(|o| o.config.relation == qualified)
        {
            Reads::Outbox(i)
        } else if let Some(i) = self.tables.iter().position(|t| t.relation == qualified) {
            Reads::Table(i)
        } else {
            Reads::Nothing
        }
    }

    /// Tells the server that everything up to `committed` is stored (called only once it is).
    fn confirm(&self, client: &ReplicationClient, committed: Option<Committed>) {
        let Some(c) = committed else {
            return;
        };
        client.update_applied_lsn(c.end_lsn);
        self.status.update(|v| {
            v.position = Some(c.end_lsn.to_pg_string());
            v.transactions += c.transactions;
            if let Some(at) = c.committed_at {
                v.lag_seconds = Some((OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0));
            }
        });
    }

    /// A failure to start, said in the operator's terms when the slot or publication is
    /// missing.
    fn not_set_up(&self, e: PgWireError) -> StreamError {
        let text = e.to_string();
        if text.contains("does not exist") {
            StreamError::NotSetUp(text, self.config.name.clone())
        } else {
            StreamError::Replication(e)
        }
    }

    /// The submission a change makes, if it is one Herald turns into an event.
    fn change(
        &self,
        tx: &mut Transaction,
        relations: &HashMap<u32, Described>,
        message: Message,
    ) -> Result<Option<Pending>, StreamError> {
        let relation_id = match &message {
            Message::Insert { relation, .. }
            | Message::Update { relation, .. }
            | Message::Delete { relation, .. } => *relation,
            Message::Truncate {
                relations: truncated,
            } => {
                let names: Vec<String> = truncated
                    .iter()
                    .filter_map(|id| relations.get(id))
                    .map(|d| format!("{}.{}", d.relation.namespace, d.relation.name))
                    .collect();
                self.status.notice(format!(
                    "TRUNCATE of {} at {}: a truncate names no rows, so no Delete events were sent",
                    names.join(", "),
                    tx.final_lsn.to_pg_string()
                ));
                return Ok(None);
            }
            Message::Relation(_) | Message::Other => return Ok(None),
        };
        let Described { relation, reads } = relations
            .get(&relation_id)
            .ok_or(StreamError::UnknownRelation(relation_id))?;
        // Every change counts, so a change keeps its key whatever the catalog says.
        let key = tx.next_key();
        let table = match *reads {
            Reads::Outbox(i) => {
                return Ok(match message {
                    Message::Insert { new, .. } => {
                        Some(self.outboxes[i].submission(&self.catalog, relation, &new, key, tx))
                    }
                    _ => None,
                });
            }
            Reads::Table(i) => &self.tables[i],
            Reads::Nothing => return Ok(None),
        };
        let change = match &message {
            Message::Insert { new, .. } => rows::insert(table, relation, new),
            Message::Update { old, new, .. } => rows::update(table, relation, old.as_ref(), new),
            Message::Delete { old, .. } => rows::delete(table, relation, old),
            _ => return Ok(None),
        };
        if !table.messages.contains(&change.message) {
            return Ok(None);
        }
        let prefix = self
            .prefixes
            .get(&table.solution)
            .map_or(table.solution.as_str(), String::as_str);
        Ok(Some(Pending {
            submission: Submission {
                name: row_event_name(prefix, &table.logical_name, change.message),
                params: json!({ "Target": change.target }),
                idempotency_key: Some(key.clone()),
                correlation_id: Some(tx.correlation.clone()),
                depth: 1,
                traceparent: None,
                images: Some(change.images),
            },
            key,
            correlation: tx.correlation.clone(),
            refusal: None,
            outbox_row: None,
            shown: None,
        }))
    }

    /// Stores `batch` durably (one write) and records what a refused row was.
    async fn store(
        &self,
        batch: Vec<Pending>,
        cleaner: &outbox::Cleaner,
    ) -> Result<(), StreamError> {
        if batch.is_empty() {
            return Ok(());
        }
        let span = self
            .tracing
            .start("herald.source", SpanKind::Consumer, None);
        span.set("herald.source", self.config.name.clone());
        let (refused_before, mut batch): (Vec<Pending>, Vec<Pending>) =
            batch.into_iter().partition(|p| p.refusal.is_some());
        // Moved, not copied: a refusal shows the name and the text kept for it.
        let submissions = batch.iter_mut().map(Pending::take).collect();
        let results = self
            .ingestor
            .submit_all(&self.caller, submissions, &span)
            .await?;
        let (mut stored, mut replayed) = (0, 0);
        let mut refusals: Vec<Submission> = refused_before
            .iter()
            .map(|p| {
                refused(
                    &self.config.name,
                    p,
                    p.refusal.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        let mut delivered_rows: Vec<outbox::RowKey> = refused_before
            .into_iter()
            .filter_map(|p| p.outbox_row)
            .collect();
        for (p, result) in batch.into_iter().zip(results) {
            match result {
                Ok(a) if a.replayed => replayed += 1,
                Ok(_) => stored += 1,
                // A step that could not be reached, or the store: not the row's fault. Nothing
                // is confirmed; the stream starts again and what was stored reads as replayed.
                Err(
                    e @ (IngestError::StepUnreachable { .. }
                    | IngestError::StepFailed { .. }
                    | IngestError::Store(_)),
                ) => return Err(StreamError::Store(e)),
                Err(e) => refusals.push(refused(&self.config.name, &p, &reason(&e))),
            }
            if let Some(row) = p.outbox_row {
                delivered_rows.push(row);
            }
        }
        let refused_count = refusals.len() as u64;
        if !refusals.is_empty() {
            // Stored before the position moves, like the events: a refused row is never lost.
            // A refusal that cannot be recorded stops the stream (it is read again).
            for result in self
                .ingestor
                .submit_all(&Principal::herald(), refusals, &span)
                .await?
            {
                result?;
            }
        }
        self.status.update(|v| {
            v.changes += stored;
            v.replayed += replayed;
            v.refused += refused_count;
        });
        metrics::counter!("herald_source_changes_total", "source" => self.config.name.clone())
            .increment(stored);
        cleaner.delete(delivered_rows).await;
        Ok(())
    }
}

/// Where a postgres source's database is.
pub fn target(config: &SourceConfig) -> Result<Target, connection::UrlError> {
    Target::parse(config.url.as_ref().map_or("", |u| u.expose()))
}

/// The operational event that records a refused change (an outbox row whose event is not
/// cataloged or whose parameters are invalid).
fn refused(source: &str, pending: &Pending, reason: &str) -> Submission {
    Submission {
        name: "herald_SourceRowRefused".into(),
        params: json!({
            "SourceName": source,
            "Position": pending.key,
            "EventName": pending.submission.name,
            "Parameters": pending.shown.as_deref().unwrap_or_default(),
            "Reason": reason,
        }),
        idempotency_key: Some(format!("{}:refused", pending.key)),
        // The transaction's: the row's own may be why it was refused.
        correlation_id: Some(pending.correlation.clone()),
        depth: 1,
        traceparent: None,
        images: None,
    }
}

/// Why a change was refused, with each invalid parameter named.
fn reason(error: &IngestError) -> String {
    match error {
        IngestError::Invalid { problems, .. } => format!(
            "{error}: {}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.parameter, p.problem))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.to_string(),
    }
}

/// A relation as the stream described it, and what it is to the source.
struct Described {
    relation: Relation,
    reads: Reads,
}

/// What a relation is to a source.
#[derive(Debug, Clone, Copy)]
enum Reads {
    /// The table at this place of the source's tables.
    Table(usize),
    /// The outbox at this place of the source's outboxes.
    Outbox(usize),
    /// Neither (published for another reader).
    Nothing,
}

/// A write of changes in flight.
type Write<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StreamError>> + Send + 'a>>;

/// How long a committed transaction's changes wait for the next ones to share their write.
const LINGER: Duration = Duration::from_millis(2);

/// The last commit read and not yet confirmed.
#[derive(Debug)]
struct Committed {
    end_lsn: Lsn,
    /// When it committed at the source.
    committed_at: Option<OffsetDateTime>,
    /// How many transactions it confirms.
    transactions: u64,
}

/// A change waiting to be stored.
#[derive(Debug, Clone)]
pub struct Pending {
    submission: Submission,
    key: String,
    /// The source transaction's correlation id.
    correlation: String,
    /// Why it is refused before it is submitted (an outbox row naming another solution's
    /// event).
    refusal: Option<String>,
    /// The outbox row's key, to delete once stored.
    outbox_row: Option<outbox::RowKey>,
    /// An outbox row's parameters as text, for the record of its refusal.
    shown: Option<String>,
}

impl Pending {
    /// The submission, moved out (its name stays, for a refusal).
    fn take(&mut self) -> Submission {
        let s = &mut self.submission;
        Submission {
            name: s.name.clone(),
            params: std::mem::take(&mut s.params),
            idempotency_key: s.idempotency_key.take(),
            correlation_id: s.correlation_id.take(),
            depth: s.depth,
            traceparent: s.traceparent.take(),
            images: s.images.take(),
        }
    }
}

/// The source transaction being read.
#[derive(Debug)]
pub struct Transaction {
    /// What every key of the source's changes starts with: `pg:<source>:<slot>`.
    prefix: String,
    final_lsn: Lsn,
    index: u32,
    correlation: String,
    committed_at: OffsetDateTime,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl Transaction {
    fn new(source: &str, slot: &str, final_lsn: Lsn, commit_time_micros: i64) -> Self {
        let at = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(commit_time_micros + PG_EPOCH_MICROS) * 1000,
        )
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Self {
            prefix: format!("pg:{source}:{slot}"),
            final_lsn,
            index: 0,
            // Every change of one source transaction shares it.
            correlation: uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{source}/{slot}/{}", final_lsn.to_pg_string()).as_bytes(),
            )
            .to_string(),
            committed_at: at,
        }
    }

    /// The idempotency key of the transaction's next change.
    fn next_key(&mut self) -> String {
        self.index += 1;
        format!(
            "{}:{}:{}",
            self.prefix,
            self.final_lsn.to_pg_string(),
            self.index
        )
    }
}

/// How long a cleaner or watcher waits for the database before giving up on one round.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The value of a column of `relation` in `tuple`, as text.
fn text_of<'a>(relation: &Relation, tuple: &'a [pgoutput::Datum], column: &str) -> Option<&'a str> {
    relation
        .columns
        .iter()
        .position(|c| c.name == column)
        .and_then(|i| match tuple.get(i) {
            Some(pgoutput::Datum::Text(t)) => Some(t.as_str()),
            _ => None,
        })
}

/// A JSON value, or the text itself when it is not JSON.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
