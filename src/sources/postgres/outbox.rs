//! Outbox tables: the application writes its row and its event in one transaction, the event
//! as a row of an outbox table (a column naming the cataloged event, one holding its
//! parameters as JSON, optional correlation and idempotency columns). Each inserted row is
//! submitted like a POST of that event; a row that is not a valid event is recorded as a
//! `herald_SourceRowRefused` event with the reason. Once stored, rows may be deleted.

use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::connection::Target;
use super::pgoutput::{Datum, Relation};
use super::{json_or_text, text_of, Pending, Transaction, QUERY_TIMEOUT};
use crate::catalog::Catalog;
use crate::ingest::Submission;

/// An outbox table of a source (`[[sources.outboxes]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The table, `schema.table`.
    pub relation: String,
    /// The solution whose events its rows are: a row naming another solution's event is
    /// refused.
    pub solution: String,
    /// The column naming the event (default `event_name`).
    #[serde(default = "event_column")]
    pub event_column: String,
    /// The column holding the parameters as JSON (default `params`).
    #[serde(default = "params_column")]
    pub params_column: String,
    /// A column holding the correlation id (else the source transaction's).
    #[serde(default)]
    pub correlation_column: Option<String>,
    /// A column holding the event's idempotency key (else one made from the row's position).
    #[serde(default)]
    pub idempotency_column: Option<String>,
    /// The column that identifies a row (default `id`), to delete it.
    #[serde(default = "key_column")]
    pub key_column: String,
    /// Delete each row once its event is stored.
    #[serde(default)]
    pub delete_stored: bool,
}

fn event_column() -> String {
    "event_name".into()
}
fn params_column() -> String {
    "params".into()
}
fn key_column() -> String {
    "id".into()
}

/// A SQL identifier Herald writes into statements: letters, digits and `_`.
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

impl OutboxConfig {
    /// Checks it against the catalog; the problem in words.
    pub fn check(&self, catalog: &Catalog) -> Result<(), String> {
        let formed = self
            .relation
            .split_once('.')
            .is_some_and(|(s, t)| identifier(s) && identifier(t));
        if !formed {
            return Err(format!(
                "outbox relation \"{}\" must be `schema.table` (letters, digits and `_`)",
                self.relation
            ));
        }
        let columns = [&self.event_column, &self.params_column, &self.key_column]
            .into_iter()
            .chain(&self.correlation_column)
            .chain(&self.idempotency_column);
        for c in columns {
            if !identifier(c) {
                return Err(format!(
                    "outbox column \"{c}\" must be letters, digits and `_`"
                ));
            }
        }
        if !catalog
            .solutions()
            .iter()
            .any(|s| s.unique_name == self.solution)
        {
            return Err(format!(
                "outbox {} names solution \"{}\", which the catalog does not have",
                self.relation, self.solution
            ));
        }
        Ok(())
    }

    /// The table quoted for SQL.
    pub fn quoted(&self) -> String {
        let (schema, table) = self
            .relation
            .split_once('.')
            .unwrap_or(("public", &self.relation));
        format!("\"{schema}\".\"{table}\"")
    }
}

/// An outbox of a running source.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Its configuration.
    pub config: OutboxConfig,
}

/// A stored outbox row to delete.
#[derive(Debug, Clone)]
pub struct RowKey {
    relation: String,
    value: String,
}

impl Outbox {
    /// The outbox `config`.
    pub fn new(config: &OutboxConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// The submission an inserted row makes. Whatever it holds, it is submitted: a row that
    /// is not a valid event is refused by ingestion and recorded with the reason.
    pub(super) fn submission(
        &self,
        catalog: &Catalog,
        relation: &Relation,
        new: &[Datum],
        key: String,
        tx: &Transaction,
    ) -> Pending {
        let c = &self.config;
        let column = |name: &str| text_of(relation, new, name);
        let params = column(&c.params_column).map_or(Value::Null, json_or_text);
        let name = column(&c.event_column).unwrap_or_default().to_owned();
        // The outbox's solution only: its rows never speak for another.
        let refusal = catalog
            .cataloged(&name)
            .filter(|d| d.solution != c.solution)
            .map(|d| {
                format!(
                    "event \"{name}\" belongs to solution \"{}\", and outbox {} writes events of \"{}\" only",
                    d.solution, c.relation, c.solution
                )
            });
        let idempotency = c
            .idempotency_column
            .as_deref()
            .and_then(column)
            .map_or_else(|| key.clone(), str::to_owned);
        Pending {
            shown: Some(params.to_string()),
            submission: Submission {
                name,
                params,
                idempotency_key: Some(idempotency),
                correlation_id: Some(
                    c.correlation_column
                        .as_deref()
                        .and_then(column)
                        .map_or_else(|| tx.correlation.clone(), str::to_owned),
                ),
                depth: 1,
                traceparent: None,
                images: None,
            },
            key,
            correlation: tx.correlation.clone(),
            refusal,
            outbox_row: c
                .delete_stored
                .then(|| column(&c.key_column))
                .flatten()
                .map(|value| RowKey {
                    relation: c.relation.clone(),
                    value: value.to_owned(),
                }),
        }
    }
}

/// Deletes stored outbox rows over an ordinary session.
pub struct Cleaner {
    pool: Option<PgPool>,
    outboxes: Vec<OutboxConfig>,
}

impl Cleaner {
    /// A cleaner for the outboxes that delete their rows (a session opens on first use).
    pub fn new(target: &Target, outboxes: &[Outbox]) -> Self {
        let outboxes: Vec<OutboxConfig> = outboxes
            .iter()
            .filter(|o| o.config.delete_stored)
            .map(|o| o.config.clone())
            .collect();
        let pool = (!outboxes.is_empty())
            .then(|| target.ordinary().ok())
            .flatten()
            .map(|options| {
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(QUERY_TIMEOUT)
                    .connect_lazy_with(options)
            });
        Self { pool, outboxes }
    }

    /// Deletes `rows`. A failure leaves them in the outbox, where they are harmless: their
    /// events are stored and the slot has moved past them.
    pub async fn delete(&self, rows: Vec<RowKey>) {
        let Some(pool) = &self.pool else {
            return;
        };
        for outbox in &self.outboxes {
            let keys: Vec<&str> = rows
                .iter()
                .filter(|r| r.relation == outbox.relation)
                .map(|r| r.value.as_str())
                .collect();
            if keys.is_empty() {
                continue;
            }
            let sql = format!(
                "DELETE FROM {} WHERE \"{}\"::text = ANY($1)",
                outbox.quoted(),
                outbox.key_column
            );
            let deleted =
                tokio::time::timeout(QUERY_TIMEOUT, sqlx::query(&sql).bind(&keys).execute(pool))
                    .await;
            match deleted {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(outbox = %outbox.relation, error = %e, "deleting stored outbox rows failed; they stay")
                }
                Err(_) => {
                    tracing::warn!(outbox = %outbox.relation, "deleting stored outbox rows timed out; they stay")
                }
            }
        }
    }
}
