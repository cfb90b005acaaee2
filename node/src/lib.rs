//! Péage node: a member of the mail-filter cluster. `run` starts one node: its storage, its
//! Raft membership, the peer and admin gRPC listeners, the mail path and its background
//! tasks. ARCHITECTURE.md draws the layers these modules stand on; imports only go down.

// openraft's storage traits require its `StorageError` (over 200 bytes) as the error type,
// and storage helpers return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

// The ground floor: the vocabulary and primitives every layer shares.
pub mod allocator;
pub mod blobs;
pub mod clock;
pub mod cpu;
pub mod grpc_tls;
pub mod html;
pub mod metrics;
pub mod secret;
pub mod shutdown;
pub mod signed_links;
pub mod snapshot_file;
pub mod sqlite_file;
pub mod types;

// The replicated data model, the config, and the cluster over them.
pub mod blocklists;
pub mod cluster;
pub mod config;
pub mod state;
pub mod tracking;

// The mail path: sender authentication, judging, evidence, the leader's own proposals,
// the spool and delivery.
pub mod auth;
pub mod dkim;
pub mod evidence;
pub mod housekeeping;
pub mod judge;
pub mod logins;
pub mod ratelimit;
pub mod spool;

// What operators reach, and the node's life.
pub mod admin;
pub mod health;
pub mod portal;
mod run;
pub mod tools;

pub use run::run;
