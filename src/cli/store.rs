//! `herald store`: what the store holds and what pruning removed (`stats`), and converting an
//! SQLite file made by an older Herald to incremental vacuum (`compact`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::{StoreStats, StoreUrl};

/// `herald store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Prints rows and bytes by table, and what the last pruning pass removed.
    Stats {
        /// Configuration file (TOML); HERALD_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Prints JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// SQLite only, while no Herald uses the file: rewrites the database with incremental
    /// auto-vacuum (databases made before Herald set it), so pruning gives space back. It
    /// runs a full VACUUM, which needs free disk space about the size of the database.
    Compact {
        /// Configuration file (TOML); HERALD_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Runs `command`.
pub async fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Stats { config, json } => stats(config, json).await,
        StoreCommand::Compact { config } => {
            let config = Config::load(config.as_deref(), Config::env())?;
            let StoreUrl::Sqlite(path) = &config.store.url else {
                anyhow::bail!("`herald store compact` is for SQLite; PostgreSQL's autovacuum reuses the space pruning frees");
            };
            let (before, after) = crate::store::sqlite::compact(path).with_context(|| {
                format!(
                    "compacting {} (is a Herald still using it? stop it first)",
                    path.display()
                )
            })?;
            println!(
                "{}: {} before, {} after; pruning now gives freed pages back",
                path.display(),
                bytes(before),
                bytes(after)
            );
            Ok(())
        }
    }
}

async fn stats(config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref(), Config::env())?;
    let store = crate::store::open(&config.store_settings()?)
        .await
        .with_context(|| format!("opening the store {}", config.store.url))?;
    let stats = store.stats().await?;
    let state = store.records().retention_state().await?;
    if json {
        let doc = serde_json::json!({
            "stats": stats,
            "last_pass": state.last_pass,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print!("{}", table(&stats));
    match state.last_pass {
        Some(p) => println!(
            "last pruning pass: {} by {}, {} ms: removed {} deliveries, {} attempts, {} events; gave back {}",
            p.started_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            p.instance,
            p.duration_ms,
            p.removed.deliveries,
            p.removed.attempts,
            p.removed.events,
            bytes(p.reclaimed_bytes)
        ),
        None => println!("no pruning pass has run yet"),
    }
    Ok(())
}

/// Rows and bytes by table, as aligned text.
fn table(stats: &StoreStats) -> String {
    let mut out = format!("{:<16} {:>12} {:>12}\n", "table", "rows", "bytes");
    for t in &stats.tables {
        out += &format!("{:<16} {:>12} {:>12}\n", t.table, t.rows, bytes(t.bytes));
    }
    out += &format!(
        "{:<16} {:>12} {:>12}\n",
        "total",
        "",
        bytes(stats.total_bytes)
    );
    if let Some(free) = stats.free_bytes {
        out += &format!("{:<16} {:>12} {:>12}\n", "of which free", "", bytes(free));
    }
    out
}

/// `n` bytes for people: `512 B`, `3.4 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
    }
}
