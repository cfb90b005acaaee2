//! The ESMTP front: the `listener` admits clients as `admission` allows and runs one
//! `connection` per client, whose `session` state machine speaks the protocol; `address` holds relay
//! control, `protocol` the vocabulary they share, `tls` the STARTTLS configuration, `trace`
//! the header fields the edge adds (`Received`) and removes (forged verdicts).

pub mod address;
pub mod admission;
pub mod connection;
pub mod listener;
pub mod memory;
pub mod protocol;
pub mod sasl;
mod session;
pub mod tls;
pub mod trace;

pub use admission::ConnectionLimits;
pub use listener::serve;
pub use memory::DataMemory;
pub use protocol::{
    Acceptor, Envelope, Refusal, Reply, SessionConfig, Tls, SMTP_EVICTED, SMTP_REPLIES,
    SMTP_SESSIONS,
};

#[cfg(test)]
mod tests;
