//! The memory allocator's settings every Péage program that runs the filter or a node starts with.

/// mimalloc's settings that keep a node's memory down, which it reads from the environment
/// before `main` runs: memory freed is given back at once rather than after a delay, and its
/// arenas are committed as they are used rather than up front. With its defaults a node
/// holding a million list entries and the trained classifier used 269–276 MB, with these
/// 246–253 MB (`peage-bench memory`; the budget is 256). An operator's own values win.
pub const SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// Runs this same program again, with the same arguments and process id, with
/// `SETTINGS` in its environment, unless they are there already; if that cannot
/// be done the node runs on with the allocator's defaults.
pub fn settle() {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = SETTINGS
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return eprintln!("{}: allocator settings not applied: {e}", program()),
    };
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1));
    for (name, value) in missing {
        again.env(name, value);
    }
    let e = again.exec();
    eprintln!("{}: allocator settings not applied: {e}", program());
}

fn program() -> String {
    std::env::args()
        .next()
        .unwrap_or_else(|| "peage".to_owned())
}
