//! Why a call to a peer failed: its transport (and whether the connection was refused, so
//! the call never left), a timeout, the peer's own error status, or a reply we cannot read.

use std::time::Duration;

/// A failed peer call: the transport failed, or the peer answered with an error status.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    #[error("{0}")]
    Transport(String),
    /// The peer refused the connection: the call never left this node.
    #[error("connection refused: {0}")]
    Refused(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{}", .0.message())]
    Status(tonic::Status),
    #[error("undecodable reply: {0}")]
    Decode(String),
}

pub(super) fn status_error(s: tonic::Status) -> PeerCallError {
    match s.code() {
        tonic::Code::Unavailable if connection_refused(&s) => {
            PeerCallError::Refused(s.message().to_owned())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            PeerCallError::Transport(format!("{}: {}", s.code(), s.message()))
        }
        _ => PeerCallError::Status(s),
    }
}

/// Whether the transport failed because the peer refused to connect (nothing listens there:
/// its process is gone), as the I/O error under tonic's status says.
fn connection_refused(s: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(s);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = e.source();
    }
    false
}
