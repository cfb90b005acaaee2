//! Péage's mail front, kept free of Raft and storage so that it can be fuzzed and tested on
//! its own: the ESMTP server (`smtp`), the filter pipeline (`filter`) and what it consults
//! (`lists`, `bayes`, `evidence`, `urls`), and the offline evaluation (`eval`). The node
//! plugs its replicated state in through `smtp::Acceptor` and `filter::Knowledge`.
//!
//! It also holds the two primitives the node shares with it, at the bottom of both:
//! `shutdown` (one signal fanned out to every task) and `sync` (locks that survive a panic).

pub mod bayes;
pub mod eval;
pub mod evidence;
pub mod features;
pub mod filter;
pub mod lists;
pub mod logistic;
pub mod shutdown;
pub mod smtp;
pub mod sync;
pub mod text;
pub mod trust;
pub mod urls;
