//! The code ARCHITECTURE.md names: every backticked path (`state::snapshot`,
//! `cluster::Cluster::{write_here, read_barrier}`, `peage_mail::smtp::session`) must name a
//! module that exists and items defined in it, so the map stays true as the code moves.

use super::Crate;

/// Every backticked `a::b…` path in `markdown` whose first segment is a module of one of
/// `crates` (`peage_mail::…` and the like name the crate first).
pub fn code_references(markdown: &str) -> Vec<String> {
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains("::") && !s.contains(' ') || s.contains("::{"))
        .filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// Why `reference` (its crate prefix removed) does not hold in `krate`; `None`: it does.
pub fn check(krate: &Crate, reference: &str) -> Option<String> {
    let (path, items) = match reference.split_once("::{") {
        Some((path, rest)) => {
            let items: Vec<String> = rest
                .trim_end_matches('}')
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (path, items)
        }
        None => (reference, Vec::new()),
    };
    let segments: Vec<String> = path.split("::").map(str::to_owned).collect();
    let depth = (1..=segments.len())
        .rev()
        .find(|n| krate.file_of(&segments[..*n]).is_some())?;
    let module = &segments[..depth];
    let mut names: Vec<String> = segments[depth..].to_vec();
    names.extend(items);
    let missing: Vec<String> = names
        .into_iter()
        .filter(|name| !defined_in(krate, module, name))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "`{reference}`: {} not defined in module {}",
            missing.join(", "),
            module.join("::")
        )
    })
}

/// Whether `name` is defined (as an item, a variant or a field) in `module` or below it.
fn defined_in(krate: &Crate, module: &[String], name: &str) -> bool {
    let keywords = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ];
    krate
        .files
        .iter()
        .filter(|f| f.module.starts_with(module))
        .any(|f| {
            f.text.lines().any(|line| {
                let words: Vec<&str> = line
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .collect();
                let declares = words
                    .windows(2)
                    .any(|w| keywords.contains(&w[0]) && w[1] == name);
                let t = line.trim_start();
                let member =
                    t.starts_with(name) && t[name.len()..].starts_with([' ', ',', '(', '{', ':']);
                declares || member
            })
        })
}

/// Whether the first segment of `reference` is a top-level module of `krate`.
pub fn names_module_of(krate: &Crate, reference: &str) -> bool {
    let first = reference.split("::").next().unwrap_or("");
    krate.file_of(&[first.to_owned()]).is_some()
}
