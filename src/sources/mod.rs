//! Sources: where events come from besides HTTP. A source reads changes from outside Herald
//! and submits each as a cataloged event through the same ingestion call as the API, with an
//! idempotency key derived from its position, and moves its position only once they are
//! stored. One folder per kind: `postgres/` reads an application's PostgreSQL by logical
//! replication (table rows and outbox rows); `dataverse/` maps what a Dataverse environment
//! posts to Herald's Dataverse route.

pub mod dataverse;
pub mod postgres;
mod status;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::ingest::Ingestor;
use crate::model::SecretString;
use crate::telemetry::Tracing;
pub use status::{SourceState, SourceStatus, SourceView};

/// A source declared in the configuration (`[[sources]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Its name, which cataloged tables give as their `source`.
    pub name: String,
    /// Its kind: `postgres` (an application's database) or `dataverse` (a Dataverse
    /// environment's webhook service endpoint posting to `/v1/sources/{name}/events`).
    pub kind: SourceKind,
    /// `postgres`: the database, as `postgres://user:password@host:port/database?sslmode=require`
    /// (`sslmode`: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`; `sslrootcert`
    /// for the last two); or sealed by `herald source seal`. Never shown.
    #[serde(default)]
    pub url: Option<SecretString>,
    /// `dataverse`: how the service endpoint authenticates (its `AuthType` and `AuthValue`):
    /// `{ type = "webhook_key", key = "…" }`, `{ type = "http_header", name, value }` or
    /// `{ type = "http_query_string", name, value }`.
    #[serde(default)]
    pub auth: Option<dataverse::DataverseAuth>,
    /// `dataverse`: the solution whose tables and events its posts become.
    #[serde(default)]
    pub solution: Option<String>,
    /// The logical replication slot (default `herald_<name>`).
    #[serde(default)]
    pub slot: Option<String>,
    /// The publication (default `herald_<name>`).
    #[serde(default)]
    pub publication: Option<String>,
    /// Outbox tables: tables whose rows are custom events.
    #[serde(default)]
    pub outboxes: Vec<postgres::outbox::OutboxConfig>,
    /// The first wait before connecting again after a failure; doubled up to `retry_max`.
    #[serde(default = "retry_min", with = "humantime_serde")]
    pub retry_min: Duration,
    /// The longest wait between attempts to connect.
    #[serde(default = "retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Changes stored per write inside one source transaction.
    #[serde(default = "batch")]
    pub batch: usize,
}

fn retry_min() -> Duration {
    Duration::from_millis(500)
}
fn retry_max() -> Duration {
    Duration::from_secs(30)
}
fn batch() -> usize {
    1000
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// PostgreSQL logical replication (`pgoutput`).
    Postgres,
    /// A Dataverse environment's webhook service endpoint.
    Dataverse,
}

impl SourceConfig {
    /// The replication slot's name.
    pub fn slot(&self) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| format!("herald_{}", self.name))
    }

    /// The publication's name.
    pub fn publication(&self) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| format!("herald_{}", self.name))
    }
}

/// Why the configured sources do not fit the catalog.
#[derive(Debug, thiserror::Error)]
pub enum SourceConfigError {
    /// A table names a source the configuration lacks.
    #[error("table \"{table}\" of the catalog reads from source \"{source_name}\", which the configuration does not declare under [[sources]]")]
    UnknownSource {
        /// The table.
        table: String,
        /// The source it names.
        source_name: String,
    },
    /// A source is not usable as given.
    #[error("source \"{name}\": {problem}")]
    Invalid {
        /// The source.
        name: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// Checks the sources against each other and the catalog.
pub fn check(configs: &[SourceConfig], catalog: &Catalog) -> Result<(), SourceConfigError> {
    for table in catalog.tables() {
        if let Some(source) = &table.source {
            if !configs.iter().any(|c| c.name == *source) {
                return Err(SourceConfigError::UnknownSource {
                    table: table.logical_name.clone(),
                    source_name: source.clone(),
                });
            }
        }
    }
    for (i, c) in configs.iter().enumerate() {
        let invalid = |problem: String| SourceConfigError::Invalid {
            name: c.name.clone(),
            problem,
        };
        if configs[..i].iter().any(|o| o.name == c.name) {
            return Err(invalid("two sources have this name".into()));
        }
        if c.kind == SourceKind::Postgres
            && configs[..i]
                .iter()
                .any(|o| o.kind == SourceKind::Postgres && o.slot() == c.slot())
        {
            return Err(invalid(format!(
                "another source reads slot {} too",
                c.slot()
            )));
        }
        let named = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        };
        if !named(&c.name) {
            return Err(invalid(
                "a name is lower-case letters, digits and `_`".into(),
            ));
        }
        if !named(&c.slot()) || !named(&c.publication()) {
            return Err(invalid(
                "slot and publication names are lower-case letters, digits and `_`, at most 63"
                    .into(),
            ));
        }
        if c.batch == 0 || c.retry_min.is_zero() || c.retry_max < c.retry_min {
            return Err(invalid(
                "batch must be at least 1, and 0 < retry_min <= retry_max".into(),
            ));
        }
        match c.kind {
            SourceKind::Postgres => {
                let url = c.url.as_ref().ok_or_else(|| {
                    invalid("a postgres source needs `url` (postgres://user:password@host:port/database)".into())
                })?;
                postgres::connection::Target::parse(url.expose())
                    .map_err(|e| invalid(e.to_string()))?;
                if c.auth.is_some() || c.solution.is_some() {
                    return Err(invalid(
                        "`auth` and `solution` are for dataverse sources; a postgres source's tables name their solutions".into(),
                    ));
                }
                for outbox in &c.outboxes {
                    outbox.check(catalog).map_err(invalid)?;
                }
            }
            SourceKind::Dataverse => {
                if c.auth.is_none() {
                    return Err(invalid("a dataverse source needs `auth`, as its service endpoint authenticates: { type = \"webhook_key\", key = \"…\" }".into()));
                }
                let solution = c.solution.as_deref().ok_or_else(|| {
                    invalid("a dataverse source needs `solution`: whose tables and events its posts become".into())
                })?;
                if !catalog
                    .solutions()
                    .iter()
                    .any(|s| s.unique_name == solution)
                {
                    return Err(invalid(format!(
                        "solution \"{solution}\" is not in the catalog"
                    )));
                }
                if c.url.is_some() || !c.outboxes.is_empty() {
                    return Err(invalid(
                        "`url` and `outboxes` are for postgres sources".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The running sources.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    statuses: Vec<SourceStatus>,
    dataverse: Arc<Vec<dataverse::DataverseSource>>,
}

impl Sources {
    /// Starts every source of `configs`; each submits to `ingestor` until `shutdown`.
    pub fn start(
        configs: &[SourceConfig],
        catalog: &Catalog,
        ingestor: Arc<Ingestor>,
        tracing: Tracing,
        shutdown: CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let mut statuses = Vec::new();
        let mut tasks = Vec::new();
        let mut dataverse = Vec::new();
        for config in configs {
            if config.kind == SourceKind::Dataverse {
                let source = dataverse::DataverseSource::new(config.clone());
                statuses.push(source.status.clone());
                dataverse.push(source);
                continue;
            }
            let source = postgres::PostgresSource::new(
                config.clone(),
                catalog,
                ingestor.clone(),
                tracing.clone(),
            );
            statuses.push(source.status());
            tasks.push(tokio::spawn(source.run(shutdown.clone())));
        }
        (
            Self {
                statuses,
                dataverse: Arc::new(dataverse),
            },
            tasks,
        )
    }

    /// What each source is doing.
    pub fn views(&self) -> Vec<SourceView> {
        self.statuses.iter().map(SourceStatus::view).collect()
    }

    /// What the sources `scope` may see are doing: those whose every solution it covers.
    pub fn views_for(&self, scope: &crate::model::Scope) -> Vec<SourceView> {
        self.views()
            .into_iter()
            .filter(|v| scope.may_change(&v.solutions))
            .collect()
    }

    /// The Dataverse source called `name`.
    pub fn dataverse(&self, name: &str) -> Option<&dataverse::DataverseSource> {
        self.dataverse.iter().find(|s| s.config.name == name)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
    }
}
