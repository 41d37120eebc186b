//! `herald plugin push|list|get|remove` over a running Herald's API (the same calls as
//! `/v1/plugins`), and `herald plugin new`, which writes a plug-in to start from: the WIT world,
//! a JavaScript or Python source and how to build it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use super::remote::{call, print_response, Remote};

/// The WIT world plug-ins implement, as the repository keeps it.
const WIT: &str = include_str!("../../wit/plugin.wit");

/// A language `herald plugin new` writes a plug-in in.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Lang {
    /// JavaScript, built with ComponentizeJS.
    Js,
    /// Python, built with componentize-py.
    Python,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Pushes a component as the next version of a plug-in.
    Push {
        #[command(flatten)]
        remote: Remote,
        /// The plug-in's name.
        #[arg(long)]
        name: String,
        /// Its solution (the events it may emit); the key's only solution when absent.
        #[arg(long)]
        solution: Option<String>,
        /// What this version does.
        #[arg(long)]
        description: Option<String>,
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Lists plug-ins with their versions, where each is used and its statistics.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows one plug-in.
    Get {
        #[command(flatten)]
        remote: Remote,
        /// Its name.
        name: String,
    },
    /// Removes a plug-in and all its versions (refused while it is used).
    Remove {
        #[command(flatten)]
        remote: Remote,
        /// Its name.
        name: String,
    },
    /// Writes a new plug-in to start from into a folder.
    New {
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The folder to create.
        dir: PathBuf,
    },
}

/// Runs a `plugin` command.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Push {
            remote,
            name,
            solution,
            description,
            file,
        } => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read the component {}", file.display()))?;
            let mut url =
                url::Url::parse(&format!("{}/v1/plugins", remote.url.trim_end_matches('/')))
                    .context("--url is not a URL")?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("name", &name);
                if let Some(s) = &solution {
                    query.append_pair("solution", s);
                }
                if let Some(d) = &description {
                    query.append_pair("description", d);
                }
            }
            let response = reqwest::Client::new()
                .post(url.clone())
                .bearer_auth(&remote.api_key)
                .header("content-type", "application/wasm")
                .body(bytes)
                .send()
                .await
                .with_context(|| format!("cannot reach Herald at {url}; is it running? (--url)"))?;
            print_response(response).await
        }
        PluginCommand::List { remote } => {
            call(&remote, reqwest::Method::GET, "/v1/plugins", None).await
        }
        PluginCommand::Get { remote, name } => {
            let path = format!("/v1/plugins/{}", encode(&name));
            call(&remote, reqwest::Method::GET, &path, None).await
        }
        PluginCommand::Remove { remote, name } => {
            let path = format!("/v1/plugins/{}", encode(&name));
            call(&remote, reqwest::Method::DELETE, &path, None).await
        }
        PluginCommand::New { lang, dir } => new(lang, &dir),
    }
}

/// `name` as one path segment.
fn encode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

/// Writes a plug-in to start from into `dir`, which must not exist yet.
fn new(lang: Lang, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        anyhow::bail!("{} exists already: name a new folder", dir.display());
    }
    std::fs::create_dir_all(dir.join("wit"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("wit/plugin.wit"), WIT)?;
    let (files, build): (&[(&str, &str)], &str) = match lang {
        Lang::Js => (
            &[
                ("plugin.js", include_str!("templates/plugin.js")),
                ("build.mjs", include_str!("templates/build.mjs")),
            ],
            "npm install @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/preview2-shim@0.17.9\nnode build.mjs plugin.js plugin.wasm",
        ),
        Lang::Python => (
            &[("app.py", include_str!("templates/app.py"))],
            "python3 -m pip install componentize-py==0.25.1\ncomponentize-py -d wit -w plugin componentize app -o plugin.wasm",
        ),
    };
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    let readme = format!(
        "# A Herald plug-in\n\nBuild it:\n\n```sh\n{build}\n```\n\nPush it:\n\n```sh\nherald plugin push --name my-plugin --solution contoso plugin.wasm\n```\n\nThe contract: docs/plugins.md in Herald's repository.\n"
    );
    std::fs::write(dir.join("README.md"), readme)?;
    println!(
        "wrote a {lang:?} plug-in to {}; build it with:\n{build}",
        dir.display()
    );
    Ok(())
}
