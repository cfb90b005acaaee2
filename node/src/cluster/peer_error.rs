//! Why a call to a peer failed: its transport (and whether no connection could be made, so
//! the call never left), a timeout, the peer's own error status, or a reply we cannot read.

use std::time::Duration;

/// A failed peer call: the transport failed, or the peer answered with an error status.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    #[error("{0}")]
    Transport(String),
    /// No connection to the peer could be made (refused, timed out, its TLS handshake cut
    /// off): the call never left this node.
    #[error("cannot connect: {0}")]
    NotConnected(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{}", .0.message())]
    Status(tonic::Status),
    #[error("undecodable reply: {0}")]
    Decode(String),
}

pub(super) fn status_error(s: tonic::Status) -> PeerCallError {
    match s.code() {
        tonic::Code::Unavailable if never_connected(&s) => {
            PeerCallError::NotConnected(s.message().to_owned())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            PeerCallError::Transport(format!("{}: {}", s.code(), s.message()))
        }
        _ => PeerCallError::Status(s),
    }
}

/// Whether the transport failed before a connection was made (tonic's `ConnectError` in the
/// status's causes: the TCP connect or the TLS handshake), so that no request went out.
fn never_connected(s: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(s);
    while let Some(e) = cause {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
