//! The `peage` subcommands other than `run`: `cert` (the cluster CA and node
//! certificates), `dev` (the local three-site cluster), `sink`
//! (a downstream for tests), `eval` (the filter's offline evaluation) and `restore`
//! (founding a node from a snapshot file).

pub mod cert;
pub mod dev;
pub mod eval;
pub mod restore;
pub mod sink;
