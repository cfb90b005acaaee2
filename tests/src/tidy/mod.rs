//! Architecture invariants read off the source text, in the spirit of rust-analyzer's
//! `tidy` tests: the crates as trees of module files (`Crate`), the imports between them
//! (`imports`: cycles, and layering against the table ARCHITECTURE.md states), and the
//! sizes of files and functions (`sizes`). `tests/tests/tidy.rs` holds the assertions.

pub mod imports;
pub mod references;
pub mod sizes;

use std::path::{Path, PathBuf};

/// The repository root: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// One source file of a crate.
pub struct SourceFile {
    /// Relative to the repository root.
    pub path: PathBuf,
    /// Its module path in the crate: `state/apply.rs` is `["state", "apply"]`, `lib.rs` is
    /// empty.
    pub module: Vec<String>,
    pub text: String,
}

impl SourceFile {
    /// The file's lines up to its `#[cfg(test)] mod tests`, without comment lines, numbered
    /// from 1: the code whose imports count.
    pub fn code_lines(&self) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        let lines: Vec<&str> = self.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if line.trim() == "#[cfg(test)]" && next.starts_with("mod tests") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            out.push((i + 1, *line));
        }
        out
    }

    /// The modules this file declares (`mod x;`, `pub mod x;`).
    pub fn declared_modules(&self) -> Vec<String> {
        self.code_lines()
            .iter()
            .filter_map(|(_, l)| {
                let l = l.trim();
                let rest = l
                    .strip_prefix("pub mod ")
                    .or_else(|| l.strip_prefix("pub(crate) mod "))
                    .or_else(|| l.strip_prefix("mod "))?;
                rest.strip_suffix(';').map(str::to_owned)
            })
            .collect()
    }
}

/// A crate's source files, test modules left out.
pub struct Crate {
    pub name: String,
    pub files: Vec<SourceFile>,
}

impl Crate {
    /// Reads every `.rs` file under `repo/src_dir`; `tests.rs` files and `tests/`
    /// directories are test modules and are left out.
    pub fn load(repo: &Path, name: &str, src_dir: &str) -> std::io::Result<Crate> {
        let root = repo.join(src_dir);
        let mut files = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_dir() {
                    if file_name != "tests" && file_name != "bin" {
                        pending.push(path);
                    }
                    continue;
                }
                if !file_name.ends_with(".rs") || file_name == "tests.rs" {
                    continue;
                }
                let relative = path.strip_prefix(&root).expect("under the root");
                files.push(SourceFile {
                    module: module_path(relative),
                    path: path
                        .strip_prefix(repo)
                        .expect("under the repo")
                        .to_path_buf(),
                    text: std::fs::read_to_string(&path)?,
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Crate {
            name: name.to_owned(),
            files,
        })
    }

    /// The file of the module at `path`, if there is one.
    pub fn file_of(&self, path: &[String]) -> Option<usize> {
        self.files.iter().position(|f| f.module == path)
    }
}

/// `state/apply.rs` → `[state, apply]`; `state/mod.rs` → `[state]`; `lib.rs`, `main.rs`
/// → `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Every Rust file the size rules apply to, test code included.
pub fn all_rust_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = ["node", "mail", "client", "tests", "proto", "fuzz"]
        .iter()
        .map(|d| repo.join(d))
        .collect();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
