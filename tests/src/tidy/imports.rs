//! The imports between a crate's module files, read from `use` items and from paths in
//! code (`crate::…`, `super::…`, a declared child's `child::…`); the cycles among them; and
//! the imports that go up the layering ARCHITECTURE.md states.

use std::collections::{BTreeMap, BTreeSet};

use super::{Crate, SourceFile};

/// File `from` names something of file `to` (indexes into `Crate::files`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// The path as written, for the report.
    pub path: String,
}

/// Every import between two different files of the crate.
pub fn edges(krate: &Crate) -> Vec<Edge> {
    let mut out = BTreeSet::new();
    for (from, file) in krate.files.iter().enumerate() {
        let children = file.declared_modules();
        for path in paths_in(file, &children) {
            let Some(absolute) = absolute(&file.module, &path, &children) else {
                continue;
            };
            let Some(to) = resolve(krate, &absolute) else {
                continue;
            };
            if to != from {
                out.insert(Edge {
                    from,
                    to,
                    path: path.join("::"),
                });
            }
        }
    }
    out.into_iter().collect()
}

/// The paths a file's code names: `use` trees expanded, and inline paths.
fn paths_in(file: &SourceFile, children: &[String]) -> Vec<Vec<String>> {
    let code: Vec<&str> = file.code_lines().into_iter().map(|(_, l)| l).collect();
    let text = code.join("\n");
    let mut out = Vec::new();
    // `use` items, which may span lines and nest braces.
    let mut rest = text.as_str();
    while let Some(i) = find_use(rest) {
        let after = &rest[i..];
        let Some(end) = after.find(';') else { break };
        let tree = after[..end].split_once("use ").map_or("", |(_, t)| t);
        expand(tree.trim(), &mut Vec::new(), &mut out);
        rest = &after[end..];
    }
    // Inline paths: `crate::a::b`, `super::a`, `child::x`.
    for word in path_words(&text) {
        let segments: Vec<String> = word.split("::").map(str::to_owned).collect();
        let head = segments[0].as_str();
        if head == "crate" || head == "super" || children.iter().any(|c| c == head) {
            out.push(segments);
        }
    }
    out
}

/// The start of the next `use` item (`use`, `pub use`, `pub(crate) use`) at a line start.
fn find_use(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("use ") || t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let depth = prefix.len();
        prefix.extend(head);
        for part in split_top_level(inner) {
            expand(part, prefix, out);
        }
        prefix.truncate(depth);
        return;
    }
    let path = tree.split(" as ").next().unwrap_or("").trim();
    if path.is_empty() || path == "*" || path == "self" {
        if path == "self" || path == "*" {
            out.push(prefix.clone());
        }
        return;
    }
    let mut full = prefix.clone();
    full.extend(path.split("::").map(|s| s.trim().to_owned()));
    out.push(full);
}

/// Splits `a, b::{c, d}, e` at the commas outside braces.
fn split_top_level(inner: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Words of the form `a::b::c` not preceded by `::` (the start of a path).
fn path_words(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && (is_word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (is_word(bytes[i]) || text[i..].starts_with("::")) {
            i += if bytes[i] == b':' { 2 } else { 1 };
        }
        let word = text[start..i].trim_end_matches("::");
        if word.contains("::") {
            out.push(word);
        }
    }
    out
}

/// The path from the crate root that `path`, written in module `here`, names.
fn absolute(here: &[String], path: &[String], children: &[String]) -> Option<Vec<String>> {
    let mut segments = path.iter().peekable();
    let mut at: Vec<String> = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("self") => {
            segments.next();
            here.to_vec()
        }
        Some("super") => here.to_vec(),
        Some(head) if children.iter().any(|c| c == head) => here.to_vec(),
        _ => return None,
    };
    for s in segments {
        if s == "super" {
            at.pop()?;
        } else {
            at.push(s.clone());
        }
    }
    Some(at)
}

/// The file of the longest prefix of `path` that is a module.
fn resolve(krate: &Crate, path: &[String]) -> Option<usize> {
    (0..=path.len())
        .rev()
        .find_map(|n| krate.file_of(&path[..n]))
}

/// The groups of files that import each other in a circle (Tarjan's strongly connected
/// components of more than one file).
pub fn cycles(krate: &Crate, edges: &[Edge]) -> Vec<Vec<usize>> {
    let n = krate.files.len();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in edges {
        next[e.from].push(e.to);
    }
    let mut t = Tarjan {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.found.into_iter().filter(|c| c.len() > 1).collect()
}

struct Tarjan {
    next: Vec<Vec<usize>>,
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
    found: Vec<Vec<usize>>,
}

impl Tarjan {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.counter);
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for w in self.next[v].clone() {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(i) if self.on_stack[w] => self.low[v] = self.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort_unstable();
            self.found.push(component);
        }
    }
}

/// The layer of each top-level module, from the table under `heading` in ARCHITECTURE.md:
/// rows `| N … | `a` `b` … | … |`.
pub fn layers(architecture: &str, heading: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Some(start) = architecture.find(heading) else {
        return out;
    };
    for line in architecture[start..].lines().skip(1) {
        if line.starts_with('#') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.split_whitespace().next()) else {
            continue;
        };
        let Ok(layer) = layer.parse::<usize>() else {
            continue;
        };
        for name in cells.get(2).unwrap_or(&"").split('`').skip(1).step_by(2) {
            out.insert(name.to_owned(), layer);
        }
    }
    out
}

/// The top-level module a file belongs to (`state` for `state/apply.rs`); `None` for the
/// crate root.
pub fn top_module(file: &SourceFile) -> Option<&str> {
    file.module.first().map(String::as_str)
}

/// Imports from a module to one on its own layer or above: `a::x -> b::y (layer 2 -> 3)`.
pub fn upward(krate: &Crate, edges: &[Edge], layers: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for e in edges {
        let (from, to) = (&krate.files[e.from], &krate.files[e.to]);
        let (Some(a), Some(b)) = (top_module(from), top_module(to)) else {
            continue;
        };
        if a == b {
            continue;
        }
        let (Some(la), Some(lb)) = (layers.get(a), layers.get(b)) else {
            continue;
        };
        if lb >= la {
            out.push(format!(
                "{} -> {} via `{}` (layer {la} -> {lb})",
                from.path.display(),
                to.path.display(),
                e.path
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_expand_into_paths() {
        let mut out = Vec::new();
        expand(
            "super::{a, b::{c, d as e}, self}",
            &mut Vec::new(),
            &mut out,
        );
        let joined: Vec<String> = out.iter().map(|p| p.join("::")).collect();
        assert_eq!(joined, ["super::a", "super::b::c", "super::b::d", "super"]);
    }

    #[test]
    fn paths_start_at_their_first_segment() {
        let words = path_words("let x = crate::a::b(y); z::w::v; std::mem::take(q)");
        assert_eq!(words, ["crate::a::b", "z::w::v", "std::mem::take"]);
        let here = vec!["state".to_owned(), "apply".to_owned()];
        let path: Vec<String> = ["super", "spool", "apply_put"].map(String::from).to_vec();
        assert_eq!(
            absolute(&here, &path, &[]).unwrap(),
            ["state", "spool", "apply_put"]
        );
    }

    #[test]
    fn the_layer_table_is_read_from_markdown() {
        let md = "## Layers of x\n| layer | modules |\n|---|---|\n| 0 ground | `a` `b` |\n| 1 | `c` |\n## Next\n| 5 | `d` |";
        let l = layers(md, "## Layers of x");
        assert_eq!(l.get("a"), Some(&0));
        assert_eq!(l.get("c"), Some(&1));
        assert_eq!(l.get("d"), None);
    }
}
