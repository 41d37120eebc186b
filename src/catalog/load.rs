//! Loading a catalog folder: TOML files of solutions, categories and event definitions,
//! checked as a whole, with every problem reported by file, event and field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Catalog;
use crate::model::definition::{
    AllowedSteps, Category, EventDefinition, EventKind, ParamType, Parameter, PicklistOption,
    ResponseProperty, Solution,
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
    response_properties: Vec<ResponseProperty>,
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
struct Problems(Vec<CatalogProblem>);

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

/// Checks a catalog given as (file name, TOML text) pairs.
pub fn load_texts(files: &[(PathBuf, String)]) -> Result<Catalog, CatalogError> {
    let mut problems = Problems(Vec::new());
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

    let mut solutions: BTreeMap<String, (PathBuf, Solution)> = BTreeMap::new();
    for (path, raw) in &parsed {
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

    // Every defined name (valid or not) with its file and solution, so duplicates and
    // category assignments are judged even for definitions that have problems of their own.
    let mut defined: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut events: BTreeMap<String, EventDefinition> = BTreeMap::new();
    for (path, raw) in &parsed {
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
            if let Some(event) = check_event(path, raw_event, &solutions, &mut problems) {
                events.insert(event.unique_name.clone(), event);
            }
        }
    }

    let mut categories: Vec<Category> = Vec::new();
    let mut cataloged: HashMap<String, (PathBuf, String)> = HashMap::new();
    for (path, raw) in &parsed {
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
                match defined.get(name) {
                    None => {
                        let msg = format!("no event called \"{name}\" is defined");
                        problems.push(path, item.clone(), Some(&field), msg);
                    }
                    Some((_, solution)) if *solution != c.solution => {
                        let msg = format!(
                            "event \"{name}\" belongs to solution \"{solution}\", not \"{}\"",
                            c.solution
                        );
                        problems.push(path, item.clone(), Some(&field), msg);
                    }
                    Some(_) if events.get(name).is_some_and(|e| e.is_function) => {
                        let msg =
                            format!("\"{name}\" is a function; only actions can be cataloged");
                        problems.push(path, item.clone(), Some(&field), msg);
                    }
                    Some(_) if events.get(name).is_some_and(|e| e.is_private) => {
                        let msg = format!(
                            "\"{name}\" is a private Custom API; private APIs cannot be cataloged"
                        );
                        problems.push(path, item.clone(), Some(&field), msg);
                    }
                    Some(_) => {
                        if let Some((first_path, first)) = cataloged.get(name) {
                            let msg = format!(
                                "event \"{name}\" is cataloged twice: already in category \"{first}\" ({})",
                                first_path.display()
                            );
                            problems.push(path, item.clone(), Some(&field), msg);
                        } else {
                            if let Some(e) = events.get_mut(name) {
                                e.category = Some(c.name.clone());
                            }
                            cataloged.insert(name.clone(), (path.clone(), c.name.clone()));
                        }
                    }
                }
            }
            categories.push(c.clone());
        }
    }

    if !problems.0.is_empty() {
        return Err(CatalogError::Invalid(problems.0));
    }
    Ok(Catalog::new(
        solutions.into_values().map(|(_, s)| s).collect(),
        categories,
        events.into_values().collect(),
    ))
}

fn check_event(
    path: &Path,
    raw: &RawEvent,
    solutions: &BTreeMap<String, (PathBuf, Solution)>,
    problems: &mut Problems,
) -> Option<EventDefinition> {
    let item = Some(format!("event \"{}\"", raw.unique_name));
    let before = problems.0.len();
    match solutions.get(&raw.solution) {
        None => problems.push(
            path,
            item.clone(),
            Some("solution"),
            unknown_solution(&raw.solution),
        ),
        Some((_, s)) => {
            let prefix = format!("{}_", s.publisher_prefix);
            let rest = raw.unique_name.strip_prefix(&prefix);
            if !rest.is_some_and(|r| !r.is_empty() && is_identifier(r)) {
                let msg = format!(
                    "must start with the solution prefix \"{prefix}\" followed by letters and digits, e.g. \"{prefix}OrderShipped\""
                );
                problems.push(path, item.clone(), Some("unique_name"), msg);
            }
        }
    }
    if raw.binding != "global" && !is_logical_name(&raw.binding) {
        let msg = "must be `global` or the logical name of a table (lower case), e.g. `account`";
        problems.push(path, item.clone(), Some("binding"), msg.to_owned());
    }
    if raw.external && raw.plugin_type.is_some() {
        let msg =
            "an external event already happened elsewhere, so it has no main-operation plug-in";
        problems.push(path, item.clone(), Some("plugin_type"), msg.to_owned());
    }
    match raw.kind {
        EventKind::CustomProcessAction => {
            if raw.allowed_steps != AllowedSteps::SyncAndAsync {
                let msg = "a custom process action cannot prevent synchronous steps: it must be `sync_and_async` (use a Custom API to forbid them)";
                problems.push(path, item.clone(), Some("allowed_steps"), msg.to_owned());
            }
        }
        EventKind::CustomApi => {
            if raw.enabled.is_some() {
                let msg = "only a custom process action can be enabled or disabled";
                problems.push(path, item.clone(), Some("enabled"), msg.to_owned());
            }
        }
    }
    if raw.external {
        if raw.allowed_steps != AllowedSteps::AsyncOnly {
            let msg = "an external event already happened elsewhere, so it must be `async_only`";
            problems.push(path, item.clone(), Some("allowed_steps"), msg.to_owned());
        }
        if !raw.response_properties.is_empty() {
            let msg = "an external event cannot have response properties";
            problems.push(
                path,
                item.clone(),
                Some("response_properties"),
                msg.to_owned(),
            );
        }
    }
    let mut parameters: Vec<Parameter> = Vec::new();
    for (i, p) in raw.parameters.iter().enumerate() {
        let field = |f: &str| format!("parameters[{i}].{f}");
        if parameters.iter().any(|q| q.name == p.name) {
            let msg = format!("duplicate parameter name \"{}\"", p.name);
            problems.push(path, item.clone(), Some(&field("name")), msg);
            continue;
        }
        if !is_identifier(&p.name) {
            let msg = "must be letters, digits and underscores, starting with a letter".to_owned();
            problems.push(path, item.clone(), Some(&field("name")), msg);
        }
        match param_type(p) {
            Ok(ty) => parameters.push(Parameter {
                name: p.name.clone(),
                ty,
                required: p.required,
                description: p.description.clone(),
            }),
            Err((f, msg)) => problems.push(path, item.clone(), Some(&field(f)), msg),
        }
    }
    (problems.0.len() == before).then(|| EventDefinition {
        unique_name: raw.unique_name.clone(),
        solution: raw.solution.clone(),
        display_name: raw.display_name.clone(),
        description: raw.description.clone(),
        binding: raw.binding.clone(),
        allowed_steps: raw.allowed_steps,
        external: raw.external,
        kind: raw.kind,
        parameters,
        response_properties: raw.response_properties.clone(),
        is_function: raw.is_function,
        is_private: raw.is_private,
        plugin_type: raw.plugin_type.clone(),
        enabled: raw.enabled.unwrap_or(true),
        category: None,
    })
}

/// Builds a parameter's type from its raw fields; on error, the field and the message.
fn param_type(p: &RawParameter) -> Result<ParamType, (&'static str, String)> {
    let only = |field: &'static str, present: bool, types: &str| {
        if present {
            Err((
                field,
                format!("`{field}` only applies to {types} parameters"),
            ))
        } else {
            Ok(())
        }
    };
    let ty = match p.type_name.as_str() {
        "Boolean" => ParamType::Boolean,
        "DateTime" => ParamType::DateTime,
        "Decimal" => ParamType::Decimal {
            precision: precision(p.precision, 10)?,
        },
        "Entity" => ParamType::Entity {
            entity: p.entity.clone(),
        },
        "EntityCollection" => ParamType::EntityCollection {
            entity: p.entity.clone(),
        },
        "EntityReference" => ParamType::EntityReference {
            entity: p.entity.clone(),
        },
        "Float" => ParamType::Float,
        "Integer" => ParamType::Integer,
        "Money" => ParamType::Money {
            precision: precision(p.precision, 4)?,
        },
        "Picklist" => {
            let options = p.options.clone().unwrap_or_default();
            if options.is_empty() {
                return Err(("options", "a Picklist needs at least one option".to_owned()));
            }
            for (i, o) in options.iter().enumerate() {
                if options[..i].iter().any(|q| q.value == o.value) {
                    return Err(("options", format!("option value {} appears twice", o.value)));
                }
            }
            ParamType::Picklist { options }
        }
        "String" => ParamType::String {
            max_length: p.max_length,
        },
        "StringArray" => ParamType::StringArray,
        "Guid" => ParamType::Guid,
        other => {
            let msg = format!(
                "unknown type \"{other}\"; expected one of: {}",
                ParamType::NAMES.join(", ")
            );
            return Err(("type", msg));
        }
    };
    let name = p.type_name.as_str();
    only(
        "max_length",
        p.max_length.is_some() && name != "String",
        "String",
    )?;
    only(
        "precision",
        p.precision.is_some() && !matches!(name, "Money" | "Decimal"),
        "Money and Decimal",
    )?;
    only(
        "options",
        p.options.is_some() && name != "Picklist",
        "Picklist",
    )?;
    let entity_types = ["Entity", "EntityCollection", "EntityReference"];
    only(
        "entity",
        p.entity.is_some() && !entity_types.contains(&name),
        "Entity, EntityCollection and EntityReference",
    )?;
    Ok(ty)
}

fn precision(value: Option<u8>, max: u8) -> Result<Option<u8>, (&'static str, String)> {
    match value {
        Some(v) if v > max => Err(("precision", format!("must be between 0 and {max}"))),
        v => Ok(v),
    }
}

fn unknown_solution(name: &str) -> String {
    format!("no solution called \"{name}\" is defined; add it under [[solutions]]")
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_logical_name(s: &str) -> bool {
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
