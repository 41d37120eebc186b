//! `herald source …`: `setup` creates or checks what a PostgreSQL source needs on its
//! database (run with the configuration, where the source's URL is); `seal` seals a source
//! URL for the configuration file; `list` and `status` ask a running Herald what its sources
//! are doing.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::remote::{call, Remote};
use crate::config::Config;
use crate::sources::postgres::setup::{setup, SetupError};

/// `herald source …`.
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Creates (or checks) a source's publication and replication slot on its database, and
    /// reports each table's replica identity. Without the rights, prints the SQL to run.
    Setup {
        /// The source's name (`[[sources]]` in the configuration).
        name: String,
        /// Configuration file (TOML); HERALD_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Gives each cataloged table `REPLICA IDENTITY FULL`: updates then carry the row
        /// before (pre-images, filtering attributes that know what changed).
        #[arg(long)]
        full_identity: bool,
    },
    /// Seals a source URL (read from standard input) with the configuration's encryption
    /// keys, for `url` in the configuration file.
    Seal {
        /// Configuration file (TOML); HERALD_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Lists a running Herald's sources with their state.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// One source's state, position, lag and last error (all of them without a name).
    Status {
        #[command(flatten)]
        remote: Remote,
        /// The source.
        name: Option<String>,
    },
}

/// Runs `command`; `Ok(false)` when setup printed SQL for an owner to run.
pub async fn run(command: SourceCommand) -> anyhow::Result<bool> {
    match command {
        SourceCommand::Setup {
            name,
            config,
            full_identity,
        } => {
            let config = Config::load(config.as_deref(), Config::env())?;
            let catalog = crate::server::load_catalog(&config)?;
            let sources = config.sources()?;
            let source = sources.iter().find(|s| s.name == name).with_context(|| {
                format!(
                    "no source called \"{name}\" in the configuration (it has: {})",
                    sources
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            crate::sources::check(&sources, &catalog)?;
            match setup(source, &catalog, full_identity).await {
                Ok(report) => {
                    for line in report.lines {
                        println!("{line}");
                    }
                    println!("source {name} is ready: Herald reads it from its next start");
                    Ok(true)
                }
                Err(e @ SetupError::NeedsOwner { .. }) => {
                    eprintln!("{e}");
                    Ok(false)
                }
                Err(e) => Err(e).with_context(|| format!("setting up source {name}")),
            }
        }
        SourceCommand::Seal { config } => {
            let config = Config::load(config.as_deref(), Config::env())?;
            let mut url = String::new();
            std::io::stdin().read_to_string(&mut url)?;
            println!("{}", config.seal_source_url(url.trim())?);
            Ok(true)
        }
        SourceCommand::List { remote } => {
            call(&remote, reqwest::Method::GET, "/v1/sources", None).await?;
            Ok(true)
        }
        SourceCommand::Status { remote, name } => {
            let path = match name {
                Some(name) => format!("/v1/sources/{name}"),
                None => "/v1/sources".into(),
            };
            call(&remote, reqwest::Method::GET, &path, None).await?;
            Ok(true)
        }
    }
}
