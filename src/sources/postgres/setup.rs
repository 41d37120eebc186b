//! `herald source setup`: what a PostgreSQL source needs on the database — `wal_level =
//! logical`, a publication of its tables and outboxes, a `pgoutput` slot — created when
//! missing and checked when present. Without the rights to create them, it prints the SQL a
//! database owner runs instead.

use std::fmt::Write as _;

use sqlx::{Connection, PgConnection, Row};

use crate::catalog::Catalog;
use crate::sources::SourceConfig;

/// Why setting up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL is unusable.
    #[error(transparent)]
    Url(#[from] super::connection::UrlError),
    /// The database refused or failed.
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    /// Something only an owner of the database can fix.
    #[error("{problem}\n\nrun this as a database owner (or a superuser), then `herald source setup` again:\n\n{sql}")]
    NeedsOwner {
        /// What is missing.
        problem: String,
        /// The statements that set it up.
        sql: String,
    },
}

/// What setting up found and did, line by line.
#[derive(Debug, Default)]
pub struct SetupReport {
    /// One line per check or change.
    pub lines: Vec<String>,
}

/// A relation's name quoted for SQL (`"public"."orders"`).
fn quoted(relation: &str) -> String {
    let (schema, table) = relation.split_once('.').unwrap_or(("public", relation));
    format!("\"{schema}\".\"{table}\"")
}

/// Sets up `source`'s publication and slot for the tables of `catalog` that name it and its
/// outboxes; with `full_identity`, gives each table `REPLICA IDENTITY FULL` (pre-images,
/// filtering attributes that know what changed).
pub async fn setup(
    source: &SourceConfig,
    catalog: &Catalog,
    full_identity: bool,
) -> Result<SetupReport, SetupError> {
    let target = super::target(source)?;
    let mut db = PgConnection::connect_with(&target.ordinary()?).await?;
    let mut report = SetupReport::default();
    let (slot, publication) = (source.slot(), source.publication());
    let mut relations: Vec<String> = catalog
        .tables()
        .iter()
        .filter(|t| t.source.as_deref() == Some(source.name.as_str()))
        .map(|t| t.relation.clone())
        .collect();
    relations.extend(source.outboxes.iter().map(|o| o.relation.clone()));
    let wanted: Vec<String> = relations.iter().map(|r| quoted(r)).collect();

    let wal_level: String = sqlx::query_scalar("SHOW wal_level")
        .fetch_one(&mut db)
        .await?;
    if wal_level != "logical" {
        return Err(SetupError::NeedsOwner {
            problem: format!("wal_level is \"{wal_level}\"; logical replication needs \"logical\" (and a restart of PostgreSQL)"),
            sql: "ALTER SYSTEM SET wal_level = logical;  -- then restart PostgreSQL".into(),
        });
    }
    report.lines.push("wal_level = logical".into());

    for (relation, quoted_name) in relations.iter().zip(&wanted) {
        let identity: Option<String> = sqlx::query_scalar(
            "SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)",
        )
        .bind(quoted_name)
        .fetch_optional(&mut db)
        .await?
        .flatten();
        let Some(identity) = identity else {
            return Err(SetupError::NeedsOwner {
                problem: format!("table {relation} does not exist in {}", target.location()),
                sql: format!("CREATE TABLE {quoted_name} (...);  -- as the catalog describes it"),
            });
        };
        let is_outbox = source.outboxes.iter().any(|o| o.relation == *relation);
        if full_identity && !is_outbox && identity != "f" {
            run(
                &mut db,
                &format!("ALTER TABLE {quoted_name} REPLICA IDENTITY FULL"),
                "",
            )
            .await?;
            report
                .lines
                .push(format!("{relation}: replica identity set to FULL"));
        } else if !is_outbox {
            report.lines.push(format!(
                "{relation}: replica identity {}",
                match identity.as_str() {
                    "f" => "FULL: updates carry the row before (pre-images, filtering attributes know what changed)",
                    "d" => "DEFAULT: updates carry no row before (no pre-images; every filtering attribute counts as changed); `--full-identity` sets FULL",
                    "n" => "NOTHING: PostgreSQL refuses updates and deletes on a published table without one; `--full-identity` sets FULL",
                    _ => "INDEX: updates carry the key index's columns before only",
                }
            ));
        }
    }

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
            .bind(&publication)
            .fetch_one(&mut db)
            .await?;
    if !exists {
        let sql = format!(
            "CREATE PUBLICATION \"{publication}\" FOR TABLE {}",
            wanted.join(", ")
        );
        run(&mut db, &sql, &sql).await?;
        report.lines.push(format!(
            "publication {publication} created for {}",
            relations.join(", ")
        ));
    } else {
        let published: Vec<String> = sqlx::query(
            "SELECT schemaname || '.' || tablename AS relation FROM pg_publication_tables WHERE pubname = $1",
        )
        .bind(&publication)
        .fetch_all(&mut db)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("relation"))
        .collect::<Result<_, _>>()?;
        let missing: Vec<(&String, &String)> = relations
            .iter()
            .zip(&wanted)
            .filter(|(r, _)| !published.contains(r))
            .collect();
        if missing.is_empty() {
            report.lines.push(format!(
                "publication {publication} publishes {}",
                relations.join(", ")
            ));
        } else {
            let sql = format!(
                "ALTER PUBLICATION \"{publication}\" ADD TABLE {}",
                missing
                    .iter()
                    .map(|(_, q)| q.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            run(&mut db, &sql, &sql).await?;
            report.lines.push(format!(
                "publication {publication}: added {}",
                missing
                    .iter()
                    .map(|(r, _)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    let plugin: Option<String> =
        sqlx::query_scalar("SELECT plugin FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&slot)
            .fetch_optional(&mut db)
            .await?
            .flatten();
    match plugin.as_deref() {
        Some("pgoutput") => report.lines.push(format!("slot {slot} (pgoutput) exists")),
        Some(other) => {
            return Err(SetupError::NeedsOwner {
                problem: format!("slot {slot} exists but decodes with {other}, not pgoutput"),
                sql: format!("SELECT pg_drop_replication_slot('{slot}');"),
            })
        }
        None => {
            let sql = format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')");
            run(
                &mut db,
                &sql,
                &format!("{sql};\nALTER ROLE <herald's user> WITH REPLICATION;"),
            )
            .await?;
            report.lines.push(format!(
                "slot {slot} created (pgoutput): changes from now on are kept for Herald"
            ));
        }
    }
    db.close().await?;
    Ok(report)
}

/// Runs `sql`; a refusal for want of rights becomes the statement an owner runs.
async fn run(db: &mut PgConnection, sql: &str, for_owner: &str) -> Result<(), SetupError> {
    match sqlx::query(sql).execute(&mut *db).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            let mut text = String::new();
            let _ = writeln!(text, "{};", for_owner.trim_end_matches(';'));
            Err(SetupError::NeedsOwner {
                problem: format!("not allowed: {}", e.message()),
                sql: if for_owner.is_empty() {
                    format!("{sql};")
                } else {
                    text
                },
            })
        }
        Err(e) => Err(e.into()),
    }
}
