//! Where the workspace's binaries are: next to the running test or tool executable, built
//! first by the test command (`cargo build --workspace --bins`).

use std::path::PathBuf;

/// The directory holding the workspace's binaries, next to the running test executable.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary; the test command builds them first (`cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}
