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
    // The sandbox that runs plug-ins: bytes and JSON in, JSON out.
    ("plugins", &["model"]),
    ("destinations", &["model", "formats", "plugins"]),
    (
        "registry",
        &["model", "catalog", "store", "destinations", "plugins"],
    ),
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
            "telemetry",
            "plugins",
        ],
    ),
    // Sources submit what they read through ingestion, like the API.
    (
        "sources",
        &["model", "catalog", "store", "ingest", "auth", "telemetry"],
    ),
    (
        "config",
        &["model", "store", "registry", "plugins", "sources"],
    ),
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
            "sources",
        ],
    ),
    // The assembly, the demo and the command line may use everything below them.
    ("server", &[BELOW]),
    ("demo", &[BELOW]),
    ("cli", &[BELOW]),
    // The fuzz targets' entry points run the parsers of every layer.
    ("fuzzing", &[BELOW]),
];

/// Every `.rs` file below `src`.
fn rust_files(src: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module each file of `src/` belongs to, and the `crate::` modules it names.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for path in rust_files(src) {
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

/// A module of a crate, as the path of names from its root (`["api", "console", "pages"]`).
type ModPath = Vec<String>;

/// The module each `.rs` file below `src` is (`mod.rs` is its folder's module; `lib.rs` and
/// `main.rs` the root), with the file's text, comments left out.
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    let mut found = BTreeMap::new();
    for path in rust_files(src) {
        let mut names: ModPath = path
            .strip_prefix(src)
            .unwrap()
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_owned())
            .collect();
        if names.last().is_some_and(|n| n == "mod") {
            names.pop();
        }
        if names == ["lib"] || names == ["main"] {
            names.clear();
        }
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        found.insert(names, text);
    }
    found
}

/// The paths a `use` tree or an expression names from `text` on: `a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`.
fn paths_at(text: &str) -> Vec<ModPath> {
    let mut prefix: ModPath = Vec::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        let ident: String = trimmed
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            if let Some(group) = trimmed.strip_prefix('{') {
                // The group's items, split at the commas of its own level.
                let (mut depth, mut start, mut out) = (1, 0, Vec::new());
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' | ',' if depth == 1 => {
                            let item = group[start..i].trim();
                            if item == "self" {
                                out.push(prefix.clone());
                            } else if !item.is_empty() {
                                out.extend(
                                    paths_at(item).into_iter().map(|p| {
                                        prefix.iter().cloned().chain(p).collect::<ModPath>()
                                    }),
                                );
                            }
                            if c == '}' {
                                return out;
                            }
                            start = i + 1;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                return out;
            }
            return vec![prefix];
        }
        prefix.push(ident.clone());
        rest = &trimmed[ident.len()..];
        match rest.trim_start().strip_prefix("::") {
            Some(after) => rest = after,
            None => return vec![prefix],
        }
    }
}

/// For each module, the modules of the same crate it names (by `crate::`, `super::` or
/// `self::` paths), each as the deepest module the path reaches.
fn module_graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules = modules(src);
    let deepest = |path: &[String]| -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
            .unwrap_or_default()
    };
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, text) in &modules {
        for (i, _) in text.match_indices("::") {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |s| s + 1);
            // Only the first segment of a path: `crate`, `super` or `self`, not preceded by `::`.
            if text[..start].ends_with("::") {
                continue;
            }
            let mut base: ModPath = match &text[start..i] {
                "crate" => Vec::new(),
                "self" => module.clone(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => continue,
            };
            for mut path in paths_at(&text[i + 2..]) {
                while path.first().is_some_and(|s| s == "super") {
                    base.pop();
                    path.remove(0);
                }
                let target = deepest(&[base.clone(), path].concat());
                if &target != module {
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    graph
}

/// The circles among the children of every module: child `a` uses `b` when a file of `a`'s
/// subtree names a module of `b`'s. A module's own file (its `mod.rs`) is where its children
/// are declared and put together, so it takes part in no circle, as `lib.rs` does at the top.
fn circles(src: &Path) -> Vec<String> {
    let graph = module_graph(src);
    let mut children: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut example: BTreeMap<(ModPath, String, String), (ModPath, ModPath)> = BTreeMap::new();
    for (from, tos) in &graph {
        for to in tos {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common >= from.len() || common >= to.len() {
                continue; // a module and its own descendant or ancestor
            }
            let parent = from[..common].to_vec();
            let (a, b) = (from[common].clone(), to[common].clone());
            children
                .entry(parent.clone())
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert(b.clone());
            example
                .entry((parent, a, b))
                .or_insert((from.clone(), to.clone()));
        }
    }
    let mut found = Vec::new();
    for (parent, edges) in &children {
        // A child is in a circle when it reaches itself.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((at, trail)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        // Each circle once: from its least member.
                        if trail.iter().any(|m| m < start) {
                            continue;
                        }
                        let steps: Vec<String> = trail
                            .iter()
                            .zip(trail.iter().skip(1).chain([start]))
                            .map(|(a, b)| {
                                let (f, t) = &example[&(parent.clone(), a.clone(), b.clone())];
                                format!("{} uses {}", f.join("::"), t.join("::"))
                            })
                            .collect();
                        found.push(format!(
                            "in {}: {}",
                            if parent.is_empty() {
                                "the crate root".to_owned()
                            } else {
                                parent.join("::")
                            },
                            steps.join(", ")
                        ));
                    } else if seen.insert(next.clone()) {
                        let mut longer = trail.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_module_is_in_a_circle_at_any_depth() {
    // Herald and the emulator alike: a helper that two siblings share moves down into a module
    // of its own, so each folder reads from its leaves up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crate_src in [root.join("src"), root.join("local-emulator/src")] {
        let found = circles(&crate_src);
        assert!(
            found.is_empty(),
            "{}: modules that use each other:\n{}",
            crate_src.display(),
            found.join("\n")
        );
    }
}

#[test]
fn the_circle_check_sees_a_circle_between_two_files_of_a_folder() {
    // The check itself, on a little crate written for it: `a` and `b` use each other through
    // a group, `super::` and a path in an expression; `c` only uses them.
    let dir = std::env::temp_dir().join(format!("herald-circles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("outer")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod outer;\n").unwrap();
    std::fs::write(dir.join("outer/mod.rs"), "mod a; mod b; mod c;\n").unwrap();
    std::fs::write(
        dir.join("outer/a.rs"),
        "use crate::outer::{b::{self}, c};\n",
    )
    .unwrap();
    std::fs::write(dir.join("outer/b.rs"), "fn f() { super::a::g(); }\n").unwrap();
    std::fs::write(
        dir.join("outer/c.rs"),
        "// uses super::a, in a comment only\n",
    )
    .unwrap();
    let found = circles(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        vec!["in outer: outer::a uses outer::b, outer::b uses outer::a".to_owned()],
        "the check must name the circle and nothing else"
    );
}
