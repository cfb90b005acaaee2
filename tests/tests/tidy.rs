//! Architecture invariants, checked on every test run: imports flow one way (no cycle
//! between module files, no module importing one above it in the layering ARCHITECTURE.md
//! states), files and functions stay short, every file says what it owns, and the code
//! ARCHITECTURE.md names exists.

use peage_tests::tidy::{all_rust_files, imports, references, repo_root, sizes, Crate};

const MAX_FILE_LINES: usize = 500;
const MAX_FUNCTION_LINES: usize = 120;

/// The crates whose module files are checked, and the ARCHITECTURE.md heading of the layer
/// table each must follow (none: only cycles are checked).
const CRATES: [(&str, &str, Option<&str>); 4] = [
    ("peage-node", "node/src", Some("### Layers of `peage-node`")),
    ("peage-mail", "mail/src", Some("### Layers of `peage-mail`")),
    ("peage-client", "client/src", None),
    ("peage-tests", "tests/src", None),
];

fn architecture() -> String {
    std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

#[test]
fn imports_flow_one_way() {
    let (repo, doc) = (repo_root(), architecture());
    let mut problems = Vec::new();
    for (name, src, heading) in CRATES {
        let krate = Crate::load(&repo, name, src).expect("sources");
        let edges = imports::edges(&krate);
        for cycle in imports::cycles(&krate, &edges) {
            let files: Vec<String> = cycle
                .iter()
                .map(|&i| krate.files[i].path.display().to_string())
                .collect();
            let inside: Vec<String> = edges
                .iter()
                .filter(|e| cycle.contains(&e.from) && cycle.contains(&e.to))
                .map(|e| format!("{} -> `{}`", krate.files[e.from].path.display(), e.path))
                .collect();
            problems.push(format!(
                "{name}: import cycle through {}:\n    {}",
                files.join(", "),
                inside.join("\n    ")
            ));
        }
        let Some(heading) = heading else { continue };
        let layers = imports::layers(&doc, heading);
        assert!(
            !layers.is_empty(),
            "ARCHITECTURE.md has no table under {heading}"
        );
        for file in &krate.files {
            if let Some(top) = imports::top_module(file) {
                if !layers.contains_key(top) {
                    problems.push(format!(
                        "{name}: module `{top}` ({}) has no layer in ARCHITECTURE.md",
                        file.path.display()
                    ));
                }
            }
        }
        for up in imports::upward(&krate, &edges, &layers) {
            problems.push(format!("{name}: import against the layering: {up}"));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn files_and_functions_are_short_and_say_what_they_own() {
    let repo = repo_root();
    let mut problems = Vec::new();
    for path in all_rust_files(&repo) {
        let text = std::fs::read_to_string(&path).expect("source");
        let shown = path.strip_prefix(&repo).unwrap_or(&path).display();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{shown}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        for f in sizes::long_functions(&text, MAX_FUNCTION_LINES) {
            problems.push(format!(
                "{shown}:{}: fn {} is {} lines (at most {MAX_FUNCTION_LINES})",
                f.line, f.name, f.lines
            ));
        }
        if !sizes::opens_with_module_doc(&text) {
            problems.push(format!("{shown}: does not open with a `//!` line"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_code_architecture_md_names_exists() {
    let (repo, doc) = (repo_root(), architecture());
    let node = Crate::load(&repo, "peage-node", "node/src").expect("sources");
    let mail = Crate::load(&repo, "peage-mail", "mail/src").expect("sources");
    let tests = Crate::load(&repo, "peage-tests", "tests/src").expect("sources");
    let mut checked = 0;
    let mut problems = Vec::new();
    for reference in references::code_references(&doc) {
        let (krate, bare) = if let Some(rest) = reference.strip_prefix("peage_mail::") {
            (&mail, rest)
        } else if let Some(rest) = reference.strip_prefix("peage_tests::") {
            (&tests, rest)
        } else if references::names_module_of(&node, &reference) {
            (&node, reference.as_str())
        } else {
            continue;
        };
        if !references::names_module_of(krate, bare) {
            problems.push(format!("`{reference}`: no such module in {}", krate.name));
            continue;
        }
        checked += 1;
        problems.extend(references::check(krate, bare));
    }
    assert!(
        checked >= 30,
        "only {checked} code references found in ARCHITECTURE.md"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
