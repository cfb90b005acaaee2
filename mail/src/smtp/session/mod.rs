//! One ESMTP session as a state machine over any `AsyncRead + AsyncWrite`: commands parsed
//! by smtp-proto, every limit (line, size, recipients, time, errors) enforced here, and the
//! accepted message handed to an `Acceptor` that decides the final reply.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use smtp_proto::request::receiver::{
    DataReceiver, DummyDataReceiver, DummyLineReceiver, RequestReceiver,
};
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::address::{parse_recipient, Recipient};

/// An SMTP reply: code and text (the text carries the enhanced status code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        metrics::counter!(super::SMTP_REPLIES, "code" => self.code.to_string()).increment(1);
        out.extend_from_slice(format!("{} {}\r\n", self.code, self.text).as_bytes());
    }
}

/// The envelope of one message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub client_ip: IpAddr,
    pub helo: String,
    /// Empty for the null sender (`MAIL FROM:<>`).
    pub mail_from: String,
    pub rcpt_to: Vec<Recipient>,
}

/// What the session hands recipients and messages to: the node's filter and spool, or the
/// test sink's maildir.
pub trait Acceptor: Send + Sync + 'static {
    /// Whether this recipient may be accepted (relay control); `Err` is the reply.
    fn check_recipient(&self, rcpt: &Recipient) -> Result<(), Reply>;
    /// Takes a complete message; the reply is the answer to the final dot.
    fn accept(&self, envelope: Envelope, message: Vec<u8>) -> impl Future<Output = Reply> + Send;
}

/// Limits and identity of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Named in the banner and the EHLO reply.
    pub hostname: String,
    /// The rest of the banner, e.g. the site.
    pub banner: String,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Bad commands tolerated before the session is closed.
    pub max_errors: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            banner: "ESMTP Péage".into(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_errors: 10,
        }
    }
}

enum Mode {
    Command,
    /// After a line too long: everything up to the next LF is dropped.
    SkipLine(DummyLineReceiver),
    Data(DataReceiver),
    /// The message grew past the size limit: the rest is read and dropped.
    DataTooBig(DummyDataReceiver),
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<Recipient>,
    body: Vec<u8>,
}

/// Where a session stands on TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain text, STARTTLS not configured.
    Unavailable,
    /// Plain text, STARTTLS offered.
    Offered,
    /// Inside TLS after STARTTLS: no banner, no second STARTTLS (RFC 3207).
    Active,
}

/// How a session ended.
pub enum Ended<S> {
    Closed,
    /// The client asked for STARTTLS and got `220`: the caller wraps the stream in TLS and
    /// runs a new session with `Tls::Active`. Bytes pipelined after STARTTLS are dropped.
    StartTls(S),
}

/// Runs a session to its end: QUIT, the client closing, a timeout, too many errors,
/// STARTTLS, or `shutdown` (answered with `421 4.3.0`).
pub async fn serve<S, A>(
    mut stream: S,
    client_ip: IpAddr,
    config: &SessionConfig,
    acceptor: &A,
    tls: Tls,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<Ended<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Acceptor,
{
    let host = &config.hostname;
    let mut out = if tls == Tls::Active {
        Vec::new()
    } else {
        format!("220 {host} {}\r\n", config.banner).into_bytes()
    };
    let mut requests = RequestReceiver::default();
    let mut mode = Mode::Command;
    let mut helo: Option<String> = None;
    let mut tx = Transaction::default();
    let mut errors = 0u32;
    let mut buf = vec![0u8; 16 * 1024];

    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        let timeout = match mode {
            Mode::Data(_) | Mode::DataTooBig(_) => config.data_timeout,
            _ => config.command_timeout,
        };
        let n = tokio::select! {
            r = tokio::time::timeout(timeout, stream.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => {
                    let r = Reply::new(421, format!("4.4.2 {host} timeout, closing connection"));
                    r.write_to(&mut out);
                    stream.write_all(&out).await?;
                    return Ok(Ended::Closed);
                }
            },
            _ = stopped(&mut shutdown) => {
                Reply::new(421, format!("4.3.0 {host} shutting down, try again later")).write_to(&mut out);
                stream.write_all(&out).await?;
                return Ok(Ended::Closed);
            }
        };
        if n == 0 {
            return Ok(Ended::Closed);
        }
        let mut bytes = buf[..n].iter();
        // Every command in the buffer is answered before the replies are flushed:
        // pipelined clients get their replies in one write, in order.
        loop {
            match &mut mode {
                Mode::SkipLine(skip) => {
                    if !skip.ingest(&mut bytes) {
                        break;
                    }
                    mode = Mode::Command;
                }
                Mode::Data(data) => {
                    let done = data.ingest(&mut bytes, &mut tx.body);
                    let too_big = tx.body.len() > config.max_message_bytes;
                    if !done {
                        if too_big {
                            // Keep reading to the final dot, but store nothing more.
                            mode = Mode::DataTooBig(DummyDataReceiver::new_data(data));
                            tx.body = Vec::new();
                            continue;
                        }
                        break;
                    }
                    mode = Mode::Command;
                    let reply = if too_big {
                        tx = Transaction::default();
                        message_too_big(config)
                    } else {
                        finish_message(&mut tx, client_ip, &helo, acceptor).await
                    };
                    reply.write_to(&mut out);
                }
                Mode::DataTooBig(skip) => {
                    if !skip.ingest(&mut bytes) {
                        break;
                    }
                    mode = Mode::Command;
                    tx = Transaction::default();
                    message_too_big(config).write_to(&mut out);
                }
                Mode::Command => {
                    let request = match requests.ingest(&mut bytes) {
                        Ok(r) => r.into_owned(),
                        Err(ParseError::NeedsMoreData { .. }) => break,
                        Err(ParseError::ResponseTooLong) => {
                            errors += 1;
                            Reply::new(500, "5.5.2 Line too long").write_to(&mut out);
                            mode = Mode::SkipLine(DummyLineReceiver::default());
                            continue;
                        }
                        Err(e) => {
                            errors += 1;
                            parse_error_reply(&e).write_to(&mut out);
                            if errors >= config.max_errors {
                                Reply::new(421, format!("4.7.0 {host} too many errors"))
                                    .write_to(&mut out);
                                stream.write_all(&out).await?;
                                return Ok(Ended::Closed);
                            }
                            continue;
                        }
                    };
                    match request {
                        Request::Ehlo { host: client } => {
                            helo = Some(client.clone());
                            tx = Transaction::default();
                            let mut lines = vec![
                                format!("{host} greets {client}"),
                                "PIPELINING".into(),
                                format!("SIZE {}", config.max_message_bytes),
                                "8BITMIME".into(),
                                "ENHANCEDSTATUSCODES".into(),
                                "SMTPUTF8".into(),
                            ];
                            if tls == Tls::Offered {
                                lines.push("STARTTLS".into());
                            }
                            for (i, l) in lines.iter().enumerate() {
                                let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                                out.extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
                            }
                        }
                        Request::Helo { host: client } => {
                            helo = Some(client);
                            tx = Transaction::default();
                            Reply::new(250, host.clone()).write_to(&mut out);
                        }
                        Request::Mail { from } => {
                            let reply = if helo.is_none() {
                                Reply::new(503, "5.5.1 Say EHLO or HELO first")
                            } else if tx.mail_from.is_some() {
                                Reply::new(503, "5.5.1 Nested MAIL command")
                            } else if from.size > config.max_message_bytes {
                                Reply::new(
                                    552,
                                    format!(
                                        "5.3.4 Message size exceeds the limit of {} bytes",
                                        config.max_message_bytes
                                    ),
                                )
                            } else {
                                tx.mail_from = Some(from.address);
                                Reply::new(250, "2.1.0 Sender OK")
                            };
                            reply.write_to(&mut out);
                        }
                        Request::Rcpt { to } => {
                            let reply = if tx.mail_from.is_none() {
                                Reply::new(503, "5.5.1 Need MAIL before RCPT")
                            } else if tx.rcpt_to.len() >= config.max_recipients {
                                Reply::new(452, "4.5.3 Too many recipients")
                            } else {
                                match parse_recipient(&to.address) {
                                    Err(e) => Reply::new(550, format!("5.7.1 {e}")),
                                    Ok(rcpt) => match acceptor.check_recipient(&rcpt) {
                                        Ok(()) => {
                                            tx.rcpt_to.push(rcpt);
                                            Reply::new(250, "2.1.5 Recipient OK")
                                        }
                                        Err(reply) => reply,
                                    },
                                }
                            };
                            reply.write_to(&mut out);
                        }
                        Request::Data => {
                            if tx.mail_from.is_none() {
                                Reply::new(503, "5.5.1 Need MAIL before DATA").write_to(&mut out);
                            } else if tx.rcpt_to.is_empty() {
                                Reply::new(554, "5.5.1 No valid recipients").write_to(&mut out);
                            } else {
                                Reply::new(354, "Send the message; end with <CRLF>.<CRLF>")
                                    .write_to(&mut out);
                                tx.body.clear();
                                mode = Mode::Data(DataReceiver::new());
                            }
                        }
                        Request::Rset => {
                            tx = Transaction::default();
                            Reply::new(250, "2.0.0 Reset").write_to(&mut out);
                        }
                        Request::Noop { .. } => Reply::new(250, "2.0.0 OK").write_to(&mut out),
                        Request::Quit => {
                            Reply::new(221, format!("2.0.0 {host} closing connection"))
                                .write_to(&mut out);
                            stream.write_all(&out).await?;
                            stream.flush().await?;
                            return Ok(Ended::Closed);
                        }
                        Request::StartTls => match tls {
                            Tls::Offered => {
                                Reply::new(220, "2.0.0 Ready to start TLS").write_to(&mut out);
                                stream.write_all(&out).await?;
                                stream.flush().await?;
                                return Ok(Ended::StartTls(stream));
                            }
                            Tls::Active => {
                                Reply::new(503, "5.5.1 TLS is already active").write_to(&mut out)
                            }
                            Tls::Unavailable => {
                                Reply::new(502, "5.5.1 STARTTLS is not available here")
                                    .write_to(&mut out)
                            }
                        },
                        Request::Vrfy { .. } | Request::Expn { .. } => {
                            Reply::new(502, "5.5.1 VRFY and EXPN are disabled").write_to(&mut out)
                        }
                        other => {
                            errors += 1;
                            Reply::new(502, format!("5.5.1 {} is not implemented", other.name()))
                                .write_to(&mut out)
                        }
                    }
                }
            }
        }
    }
}

/// Completes once shutdown is signalled (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn message_too_big(config: &SessionConfig) -> Reply {
    Reply::new(
        552,
        format!(
            "5.3.4 Message exceeds the size limit of {} bytes",
            config.max_message_bytes
        ),
    )
}

fn parse_error_reply(e: &ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::new(500, "5.5.1 Unknown command"),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7 Invalid sender address"),
        ParseError::InvalidRecipientAddress => Reply::new(501, "5.1.3 Invalid recipient address"),
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, format!("5.5.4 Syntax error, expected: {syntax}"))
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, format!("5.5.4 Invalid parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(504, format!("5.5.4 Unsupported parameter {param}"))
        }
        _ => Reply::new(500, "5.5.2 Syntax error"),
    }
}

/// Checks the message's bytes, then hands it over; the transaction is reset either way.
async fn finish_message<A: Acceptor>(
    tx: &mut Transaction,
    client_ip: IpAddr,
    helo: &Option<String>,
    acceptor: &A,
) -> Reply {
    let t = std::mem::take(tx);
    if let Some(why) = body_defect(&t.body) {
        return Reply::new(554, format!("5.6.0 Message refused: {why}"));
    }
    let envelope = Envelope {
        client_ip,
        helo: helo.clone().unwrap_or_default(),
        mail_from: t.mail_from.unwrap_or_default(),
        rcpt_to: t.rcpt_to,
    };
    acceptor.accept(envelope, t.body).await
}

/// Bare LF (the stuff of SMTP smuggling) and NUL bytes are refused rather than passed on to
/// servers that may read them differently.
fn body_defect(body: &[u8]) -> Option<&'static str> {
    if body.contains(&0) {
        return Some("NUL bytes");
    }
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            return Some("bare LF; lines must end with CRLF");
        }
        prev = b;
    }
    None
}

#[cfg(test)]
mod tests;
