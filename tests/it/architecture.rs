//! The layering of `src/`, checked: which top-level module may use which. `model` is the
//! ground floor; every stage uses only the modules below it, so the graph has no cycles and no
//! upward arrows. A new `use crate::…` that breaks the layering fails here, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Stands for every module listed before.
const BELOW: &str = "*";

/// Each top-level module of `src/` and the modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("telemetry", &[]),
    ("catalog", &["model"]),
    ("formats", &["model"]),
    ("auth", &["model"]),
    ("store", &["model"]),
    // What is happening: counts per minute kept in the store, and the live feed.
    ("activity", &["model", "store"]),
    ("destinations", &["model", "formats"]),
    ("registry", &["model", "catalog", "store", "destinations"]),
    (
        "dispatch",
        &[
            "model",
            "catalog",
            "store",
            "registry",
            "destinations",
            "activity",
            "telemetry",
        ],
    ),
    // Ingestion hands fresh deliveries to the dispatcher.
    (
        "ingest",
        &[
            "model",
            "catalog",
            "store",
            "registry",
            "destinations",
            "dispatch",
            "auth",
            "activity",
        ],
    ),
    ("config", &["model", "store", "registry"]),
    (
        "api",
        &[
            "model",
            "catalog",
            "store",
            "registry",
            "ingest",
            "auth",
            "destinations",
            "formats",
            "telemetry",
            "activity",
        ],
    ),
    // The assembly, the demo and the command line may use everything below them.
    ("server", &[BELOW]),
    ("demo", &[BELOW]),
    ("cli", &[BELOW]),
    // The fuzz targets' entry points run the parsers of every layer.
    ("fuzzing", &[BELOW]),
];

/// The top-level module each file of `src/` belongs to, and the `crate::` modules it names.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, _) in text.match_indices("crate::") {
            // `local_emulator::…` and the like are other crates.
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                found
                    .entry(top.clone())
                    .or_default()
                    .insert((name, relative.display().to_string()));
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, Vec<&str>> = ALLOWED
        .iter()
        .enumerate()
        .map(|(i, (module, may))| match *may {
            [BELOW] => (*module, ALLOWED[..i].iter().map(|(m, _)| *m).collect()),
            _ => (*module, may.to_vec()),
        })
        .collect();
    let mut wrong = Vec::new();
    for (module, used) in uses(&src) {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "src/{module} is not in the layering of tests/it/architecture.rs"
            ));
            continue;
        };
        for (name, file) in used {
            if !may.contains(&name.as_str()) {
                wrong.push(format!(
                    "src/{file} uses crate::{name}, which {module} may not"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_allowed_layering_has_no_cycles() {
    // Each module may use only modules listed before it.
    for (i, (module, may)) in ALLOWED.iter().enumerate() {
        let below: Vec<&str> = ALLOWED[..i].iter().map(|(m, _)| *m).collect();
        for m in may.iter().filter(|m| **m != BELOW) {
            assert!(
                below.contains(m),
                "{module} may use {m}, which is not below it"
            );
        }
    }
}
