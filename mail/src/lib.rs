//! Péage's mail front, kept free of Raft and storage so that it can be fuzzed and tested on
//! its own: the ESMTP session and listener (`smtp`), the filter pipeline (`filter`), and the
//! block/allow list index the filter consults (`lists`). The node plugs its replicated
//! state in through `smtp::Acceptor` and `filter::Knowledge`.

pub mod bayes;
pub mod eval;
pub mod evidence;
pub mod filter;
pub mod lists;
pub mod smtp;
