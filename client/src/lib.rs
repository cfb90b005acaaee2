//! Typed client of the Péage admin API: connecting with a bearer token, and turning gRPC
//! failures into errors that say what failed (address, auth, argument).

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use peage_proto::v1;
use peage_proto::v1::admin_client::AdminClient;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Admin = AdminClient<InterceptedService<Channel, BearerToken>>;

/// The largest reply read: a held message shown whole (`quarantine show --raw`) is up to the
/// nodes' `smtp.max_message_bytes` (25 MiB by default), past gRPC's default of 4 MiB.
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// What went wrong talking to a node, worded for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid address `{addr}`: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("invalid token: it must be printable ASCII")]
    BadToken,
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("cannot reach any of the nodes given: {tried}")]
    NoneReachable { tried: String },
    #[error("authentication failed at {addr}: {message} (set --token or PEAGE_TOKEN)")]
    Unauthenticated { addr: String, message: String },
    #[error("permission denied at {addr}: {message}")]
    PermissionDenied { addr: String, message: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the probe found failures (see the report above)")]
    ProbeFailed,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("cluster unavailable at {addr}: {message}")]
    Unavailable { addr: String, message: String },
    #[error("{addr} answered {code:?}: {message}")]
    Other {
        addr: String,
        code: tonic::Code,
        message: String,
    },
}

impl ClientError {
    pub fn from_status(addr: &str, s: tonic::Status) -> ClientError {
        let addr = addr.to_owned();
        let message = s.message().to_owned();
        match s.code() {
            tonic::Code::Unauthenticated => ClientError::Unauthenticated { addr, message },
            tonic::Code::PermissionDenied => ClientError::PermissionDenied { addr, message },
            tonic::Code::InvalidArgument => ClientError::InvalidArgument(message),
            tonic::Code::NotFound => ClientError::NotFound(message),
            // tonic's own failure to reach the node carries the transport error as its
            // source; a node's own UNAVAILABLE (no quorum, its leader unreachable) has none,
            // whatever its message says.
            tonic::Code::Unavailable if std::error::Error::source(&s).is_some() => {
                ClientError::Unreachable {
                    addr,
                    reason: message,
                }
            }
            tonic::Code::Unavailable => ClientError::Unavailable { addr, message },
            code => ClientError::Other {
                addr,
                code,
                message,
            },
        }
    }
}

/// What reaching an admin API takes besides its address: the bearer token, and for
/// `https://` the cluster CA that signed the nodes' certificates (PEM).
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub token: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
}

/// Connects to a node's admin endpoint (`http://HOST:PORT`; a bare HOST:PORT is accepted).
pub async fn connect(addr: &str, token: Option<&str>) -> Result<Admin, ClientError> {
    let access = Access {
        token: token.map(str::to_owned),
        ca_pem: None,
    };
    connect_with(addr, &access).await
}

/// The endpoints of a comma-separated list (`--addr`, `PEAGE_ADDR`).
pub fn endpoints(addrs: &str) -> impl Iterator<Item = &str> {
    addrs.split(',').map(str::trim).filter(|a| !a.is_empty())
}

/// Connects to the first of a comma-separated list of admin endpoints that answers (any
/// node serves every call, so one site down does not take the CLI with it); returns the
/// endpoint reached and its client.
pub async fn connect_any(addrs: &str, access: &Access) -> Result<(String, Admin), ClientError> {
    let mut tried = Vec::new();
    for addr in endpoints(addrs) {
        match connect_with(addr, access).await {
            Ok(admin) => return Ok((addr.to_owned(), admin)),
            Err(ClientError::Unreachable { addr, reason }) => tried.push((addr, reason)),
            Err(e) => return Err(e),
        }
    }
    match tried.len() {
        0 => Err(ClientError::BadAddress {
            addr: addrs.to_owned(),
            reason: "no address given".into(),
        }),
        1 => {
            let (addr, reason) = tried.remove(0);
            Err(ClientError::Unreachable { addr, reason })
        }
        _ => Err(ClientError::NoneReachable {
            tried: tried
                .iter()
                .map(|(addr, reason)| format!("{addr}: {reason}"))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// Connects to a node's admin endpoint: `https://HOST:PORT` verified against `access.ca_pem`,
/// `http://HOST:PORT` in clear; a bare HOST:PORT is https when a CA is given.
pub async fn connect_with(addr: &str, access: &Access) -> Result<Admin, ClientError> {
    let url = if addr.contains("://") {
        addr.to_owned()
    } else if access.ca_pem.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let bad = |reason: String| ClientError::BadAddress {
        addr: addr.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    let endpoint = match (url.starts_with("https://"), &access.ca_pem) {
        (true, Some(ca)) => endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            .map_err(|e| bad(format!("TLS: {e}")))?,
        (true, None) => return Err(bad(
            "https needs the cluster CA that signed the nodes' certificates: --ca FILE or PEAGE_CA"
                .into(),
        )),
        (false, _) => endpoint,
    };
    let token = match access.token.as_deref() {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| ClientError::BadToken)?,
        ),
        None => None,
    };
    let channel = endpoint.connect().await.map_err(|e| {
        // hyper's connector wraps an error in one that says the same ("tcp connect error:
        // tcp connect error: …"): a link of the chain repeating the one before is left out.
        let mut reason = e.to_string();
        let mut last = reason.clone();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if text != last {
                reason = format!("{reason}: {text}");
            }
            last = text;
            source = s.source();
        }
        ClientError::Unreachable {
            addr: url.clone(),
            reason,
        }
    })?;
    Ok(AdminClient::with_interceptor(channel, BearerToken(token))
        .max_decoding_message_size(MAX_REPLY_BYTES))
}

/// Parses a duration like `90`, `90s`, `15m`, `2h` or `7d` into seconds.
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 2h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h or d)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration_secs("90").unwrap(), 90);
        assert_eq!(super::parse_duration_secs("15m").unwrap(), 900);
        assert_eq!(super::parse_duration_secs("2h").unwrap(), 7200);
        assert!(super::parse_duration_secs("0").is_err());
        assert!(super::parse_duration_secs("5y").is_err());
        assert!(super::parse_duration_secs("h").is_err());
    }

    #[test]
    fn a_node_saying_its_leader_is_unreachable_is_not_a_node_out_of_reach() {
        use super::ClientError;
        let from_node = tonic::Status::unavailable(
            "the leader (node 3 at 127.0.0.3:50052) is unreachable: tcp connect error",
        );
        let e = ClientError::from_status("https://127.0.0.1:50051", from_node);
        assert!(matches!(e, ClientError::Unavailable { .. }), "{e}");
    }
}
