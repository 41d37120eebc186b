//! The documentation's links: every relative link in the README and in `docs/` names a file
//! or folder of the repository that exists, so a page moved or renamed fails here.

use std::path::{Path, PathBuf};

/// The relative link targets of a Markdown text (`[text](target)`), without their anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            let external = ["http://", "https://", "mailto:", "#"]
                .iter()
                .any(|p| target.starts_with(p));
            let path = target.split('#').next().unwrap_or_default();
            if !external && !path.is_empty() {
                found.push(path.to_owned());
            }
            rest = &rest[end..];
        }
    }
    found
}

/// The Markdown pages users read: the README, `docs/`, the emulator's and the deployment's.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![
        root.join("README.md"),
        root.join("local-emulator/README.md"),
        root.join("infra/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages.retain(|p| p.exists());
    pages
}

#[test]
fn every_relative_link_of_the_documentation_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pages = pages(root);
    assert!(pages.len() >= 5, "the pages were not found: {pages:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in relative_links(&text) {
            checked += 1;
            let target = page.parent().unwrap().join(&link);
            if !target.exists() {
                broken.push(format!(
                    "{}: {link}",
                    page.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: the parser misses them"
    );
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_link_reader_finds_relative_links_and_leaves_out_the_rest() {
    let text = "See [a](docs/a.md#part), [b](https://x.test/), [c](#here) and [d](../d.md \"title\").\n```\n[e](inside/code.md)\n```\n";
    assert_eq!(relative_links(text), ["docs/a.md", "../d.md"]);
}
