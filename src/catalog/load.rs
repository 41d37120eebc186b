//! Loading a catalog folder: TOML files of solutions, categories and event definitions,
//! checked as a whole, with every problem reported by file, event and field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use check::check_event;
use tables::RawTable;

mod check;
mod tables;

use super::Catalog;
use crate::model::definition::{
    AllowedSteps, Category, EventDefinition, EventKind, PicklistOption, Solution,
};

/// One problem found in a catalog, located by file, event (if any) and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProblem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The solution, category or event it concerns, e.g. `event "contoso_CustomerPurchase"`.
    pub item: Option<String>,
    /// The field, e.g. `parameters[1].type`.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(item) = &self.item {
            write!(f, ": {item}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The folder could not be read.
    #[error("cannot read catalog folder {path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The files were read but hold problems.
    #[error("the catalog has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<CatalogProblem>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    solutions: Vec<Solution>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    events: Vec<RawEvent>,
    #[serde(default)]
    tables: Vec<RawTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    unique_name: String,
    solution: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "global")]
    binding: String,
    allowed_steps: AllowedSteps,
    #[serde(default)]
    external: bool,
    #[serde(default)]
    kind: EventKind,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    #[serde(default)]
    response_properties: Vec<RawParameter>,
    #[serde(default)]
    is_function: bool,
    #[serde(default)]
    is_private: bool,
    #[serde(default)]
    plugin_type: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn global() -> String {
    "global".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_length: Option<u32>,
    #[serde(default)]
    precision: Option<u8>,
    #[serde(default)]
    options: Option<Vec<PicklistOption>>,
    #[serde(default)]
    entity: Option<String>,
}

/// Collects problems while a catalog is checked.
pub(super) struct Problems(Vec<CatalogProblem>);

impl Problems {
    fn push(&mut self, file: &Path, item: Option<String>, field: Option<&str>, message: String) {
        self.0.push(CatalogProblem {
            file: file.to_owned(),
            item,
            field: field.map(str::to_owned),
            message,
        });
    }
}

/// Reads every `*.toml` file of `dir` (sorted by name) and checks the catalog they form.
pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
            path: path.clone(),
            source,
        })?;
        files.push((path, text));
    }
    load_texts(&files)
}

/// Every defined event name (valid or not) with its file and solution, so duplicates and
/// category assignments are judged even for definitions that have problems of their own.
type Defined = BTreeMap<String, (PathBuf, String)>;
/// Solutions by name, with the file that defines them.
type Solutions = BTreeMap<String, (PathBuf, Solution)>;

/// Herald's own operational events, part of every catalog.
const BUILT_IN: (&str, &str) = ("(built in) herald.toml", include_str!("herald.toml"));

/// Checks a catalog given as (file name, TOML text) pairs, with Herald's built-in solution
/// (`herald`, its operational events) added.
pub fn load_texts(files: &[(PathBuf, String)]) -> Result<Catalog, CatalogError> {
    let mut problems = Problems(Vec::new());
    let mut all = Vec::with_capacity(files.len() + 1);
    all.push((PathBuf::from(BUILT_IN.0), BUILT_IN.1.to_owned()));
    all.extend(files.iter().cloned());
    let parsed = parse(&all, &mut problems);
    let solutions = solutions(&parsed, &mut problems);
    let (defined, mut events) = events(&parsed, &solutions, &mut problems);
    let categories = categories(&parsed, &solutions, &defined, &mut events, &mut problems);
    let (tables, table_events) = tables::tables(
        parsed.iter().map(|(p, raw)| (p, raw.tables.as_slice())),
        &solutions,
        &categories,
        &defined,
        &mut problems,
    );
    if !problems.0.is_empty() {
        return Err(CatalogError::Invalid(problems.0));
    }
    Ok(Catalog::new(
        solutions.into_values().map(|(_, s)| s).collect(),
        categories,
        events.into_values().chain(table_events).collect(),
        tables,
    ))
}

fn parse(files: &[(PathBuf, String)], problems: &mut Problems) -> Vec<(PathBuf, RawFile)> {
    let mut parsed = Vec::new();
    for (path, text) in files {
        match toml::from_str::<RawFile>(text) {
            Ok(raw) => parsed.push((path.clone(), raw)),
            Err(e) => problems.push(
                path,
                None,
                None,
                e.message().to_owned() + &location(text, e.span()),
            ),
        }
    }
    parsed
}

fn solutions(parsed: &[(PathBuf, RawFile)], problems: &mut Problems) -> Solutions {
    let mut solutions = Solutions::new();
    for (path, raw) in parsed {
        for s in &raw.solutions {
            let item = Some(format!("solution \"{}\"", s.unique_name));
            if let Some((first, _)) = solutions.get(&s.unique_name) {
                let msg = format!(
                    "duplicate solution name; first defined in {}",
                    first.display()
                );
                problems.push(path, item, Some("unique_name"), msg);
                continue;
            }
            if !is_identifier(&s.publisher_prefix) {
                let msg = "must be letters, digits and no underscore, e.g. `contoso`".to_owned();
                problems.push(path, item.clone(), Some("publisher_prefix"), msg);
            }
            solutions.insert(s.unique_name.clone(), (path.clone(), s.clone()));
        }
    }
    solutions
}

fn events(
    parsed: &[(PathBuf, RawFile)],
    solutions: &Solutions,
    problems: &mut Problems,
) -> (Defined, BTreeMap<String, EventDefinition>) {
    let mut defined = Defined::new();
    let mut events = BTreeMap::new();
    for (path, raw) in parsed {
        for raw_event in &raw.events {
            let item = Some(format!("event \"{}\"", raw_event.unique_name));
            if let Some((first, _)) = defined.get(&raw_event.unique_name) {
                let msg = format!("duplicate event name; first defined in {}", first.display());
                problems.push(path, item, Some("unique_name"), msg);
                continue;
            }
            defined.insert(
                raw_event.unique_name.clone(),
                (path.clone(), raw_event.solution.clone()),
            );
            if let Some(event) = check_event(path, raw_event, solutions, problems) {
                events.insert(event.unique_name.to_string(), event);
            }
        }
    }
    (defined, events)
}

fn categories(
    parsed: &[(PathBuf, RawFile)],
    solutions: &Solutions,
    defined: &Defined,
    events: &mut BTreeMap<String, EventDefinition>,
    problems: &mut Problems,
) -> Vec<Category> {
    let mut categories: Vec<Category> = Vec::new();
    let mut cataloged: HashMap<String, (PathBuf, String)> = HashMap::new();
    for (path, raw) in parsed {
        for c in &raw.categories {
            let item = Some(format!("category \"{}\"", c.name));
            if !solutions.contains_key(&c.solution) {
                problems.push(
                    path,
                    item.clone(),
                    Some("solution"),
                    unknown_solution(&c.solution),
                );
            }
            if categories
                .iter()
                .any(|o| o.solution == c.solution && o.name == c.name)
            {
                let msg = format!("duplicate category name in solution \"{}\"", c.solution);
                problems.push(path, item.clone(), Some("name"), msg);
            }
            for (i, name) in c.events.iter().enumerate() {
                let field = format!("events[{i}]");
                let refused = match defined.get(name) {
                    None => Some(format!("no event called \"{name}\" is defined")),
                    Some((_, solution)) if *solution != c.solution => Some(format!(
                        "event \"{name}\" belongs to solution \"{solution}\", not \"{}\"",
                        c.solution
                    )),
                    Some(_) if events.get(name).is_some_and(|e| e.is_function) => Some(format!(
                        "\"{name}\" is a function; only actions can be cataloged"
                    )),
                    Some(_) if events.get(name).is_some_and(|e| e.is_private) => Some(format!(
                        "\"{name}\" is a private Custom API; private APIs cannot be cataloged"
                    )),
                    Some(_) => cataloged.get(name).map(|(first_path, first)| {
                        format!(
                            "event \"{name}\" is cataloged twice: already in category \"{first}\" ({})",
                            first_path.display()
                        )
                    }),
                };
                match refused {
                    Some(msg) => problems.push(path, item.clone(), Some(&field), msg),
                    None => {
                        if let Some(e) = events.get_mut(name) {
                            e.category = Some(c.name.clone());
                        }
                        cataloged.insert(name.clone(), (path.clone(), c.name.clone()));
                    }
                }
            }
            categories.push(c.clone());
        }
    }
    categories
}

pub(super) fn unknown_solution(name: &str) -> String {
    format!("no solution called \"{name}\" is defined; add it under [[solutions]]")
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn is_logical_name(s: &str) -> bool {
    is_identifier(s) && !s.chars().any(|c| c.is_ascii_uppercase())
}

/// ` (line L, column C)` for a TOML error span.
fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(" (line {line}, column {column})")
}
