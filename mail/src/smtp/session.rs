//! One ESMTP session as a state machine: it takes in the client's bytes and writes the
//! replies, commands parsed by smtp-proto, every limit (line, size, recipients, errors)
//! enforced here, and the accepted message handed to the `Acceptor` that decides the final
//! reply. It does no I/O of its own (`connection` does), so it is driven the same way by
//! a socket, a TLS stream or a test's in-memory pipe.

use std::net::IpAddr;
use std::time::Duration;

use smtp_proto::request::receiver::{
    DataReceiver, DummyDataReceiver, DummyLineReceiver, RequestReceiver,
};
use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};

use super::address::{check_sender_syntax, parse_recipient, Recipient};
use super::memory::Held;
use super::protocol::{Acceptor, Envelope, Refusal, Reply, SessionConfig, Tls};
use super::sasl::Step;

mod auth;

/// What the connection does once the session has taken in what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Read more from the client.
    Read,
    /// Write what is pending and close (QUIT, too many errors).
    Close,
    /// Write what is pending (`220`), then start TLS; bytes pipelined after STARTTLS are
    /// dropped.
    StartTls,
}

enum Mode {
    Command,
    /// After a line too long: everything up to the next LF is dropped.
    SkipLine(DummyLineReceiver),
    Data(DataReceiver),
    /// The message grew past the size limit, or past the node's memory for messages: the
    /// rest is read and dropped, and this is the answer to its end.
    DataDropped(DummyDataReceiver, Reply),
    /// Inside an AUTH exchange, waiting for the client's line at this step.
    Auth(Step),
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<Recipient>,
    body: Vec<u8>,
    /// The node's memory the body holds, from DATA until the message is answered.
    held: Option<Held>,
}

pub(super) struct Session<'a, A> {
    config: &'a SessionConfig,
    acceptor: &'a A,
    client_ip: IpAddr,
    tls: Tls,
    requests: RequestReceiver,
    mode: Mode,
    helo: Option<String>,
    tx: Transaction,
    errors: u32,
    /// Who the client authenticated as, or the principal of the trusted network it came
    /// from (submission).
    login: Option<String>,
    /// `login` came from AUTH.
    authenticated: bool,
    /// The AUTH exchange's line as far as it has come.
    auth_buffer: Vec<u8>,
}

impl<'a, A: Acceptor> Session<'a, A> {
    pub(super) fn new(
        config: &'a SessionConfig,
        acceptor: &'a A,
        client_ip: IpAddr,
        tls: Tls,
    ) -> Self {
        Session {
            config,
            acceptor,
            client_ip,
            tls,
            requests: RequestReceiver::default(),
            mode: Mode::Command,
            helo: None,
            tx: Transaction::default(),
            errors: 0,
            login: config
                .submission
                .then(|| acceptor.trusted_principal(client_ip))
                .flatten(),
            authenticated: false,
            auth_buffer: Vec::new(),
        }
    }

    /// The banner, except inside TLS after STARTTLS where the session continues the plain
    /// one (with implicit TLS the banner is the first thing said inside it).
    pub(super) fn greeting(&self) -> Vec<u8> {
        if matches!(self.tls, Tls::Active { .. }) && !self.config.implicit_tls {
            return Vec::new();
        }
        format!("220 {} {}\r\n", self.config.hostname, self.config.banner).into_bytes()
    }

    /// Whether a message is coming in (between `354` and the final dot).
    pub(super) fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_) | Mode::DataDropped(..))
    }

    /// How long the client may take to send more: longer while a message is coming.
    pub(super) fn read_timeout(&self) -> Duration {
        match self.mode {
            Mode::Data(_) | Mode::DataDropped(..) => self.config.data_timeout,
            _ => self.config.command_timeout,
        }
    }

    /// Answers everything in `bytes`, in order, into `out`: pipelined clients get their
    /// replies in one write.
    pub(super) async fn ingest(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Next {
        let max_bytes = self.config.max_message_bytes;
        let mut bytes = bytes.iter();
        loop {
            match &mut self.mode {
                Mode::SkipLine(skip) => {
                    if !skip.ingest(&mut bytes) {
                        return Next::Read;
                    }
                    self.mode = Mode::Command;
                }
                Mode::Data(data) => {
                    let done = data.ingest(&mut bytes, &mut self.tx.body);
                    let len = self.tx.body.len();
                    let refusal = if len > max_bytes {
                        Some(message_too_big(self.config))
                    } else if !done && self.tx.held.as_mut().is_some_and(|h| !h.grow_to(len)) {
                        Some(no_memory_left(self.config))
                    } else {
                        None
                    };
                    if !done {
                        let Some(refusal) = refusal else {
                            return Next::Read;
                        };
                        // Keep reading to the final dot, but store nothing more.
                        self.mode = Mode::DataDropped(DummyDataReceiver::new_data(data), refusal);
                        self.tx.body = Vec::new();
                        self.tx.held = None;
                        continue;
                    }
                    self.mode = Mode::Command;
                    let reply = match refusal {
                        Some(refusal) => {
                            self.tx = Transaction::default();
                            refusal
                        }
                        None => self.finish_message().await,
                    };
                    reply.write_to(out);
                    if reply.code >= 400 {
                        if let Some(next) = self.count_error(out).await {
                            return next;
                        }
                    }
                }
                Mode::DataDropped(skip, refusal) => {
                    if !skip.ingest(&mut bytes) {
                        return Next::Read;
                    }
                    let refusal = refusal.clone();
                    self.mode = Mode::Command;
                    self.tx = Transaction::default();
                    refusal.write_to(out);
                }
                Mode::Auth(step) => {
                    let step = step.clone();
                    if let Some(next) = self.auth_ingest(step, &mut bytes, out).await {
                        return next;
                    }
                }
                Mode::Command => {
                    let request = match self.requests.ingest(&mut bytes) {
                        Ok(r) => r.into_owned(),
                        Err(ParseError::NeedsMoreData { .. }) => return Next::Read,
                        Err(e) => match self.refuse_line(&e, out).await {
                            Next::Read => continue,
                            next => return next,
                        },
                    };
                    let (next, failed) = self.command(request, out).await;
                    if let Some(next) = next {
                        return next;
                    }
                    if failed {
                        if let Some(next) = self.count_error(out).await {
                            return next;
                        }
                    }
                }
            }
        }
    }

    /// A line that is not a command; `Close` once the client made too many errors.
    async fn refuse_line(&mut self, e: &ParseError, out: &mut Vec<u8>) -> Next {
        if let ParseError::ResponseTooLong = e {
            Reply::new(500, "5.5.2 Line too long").write_to(out);
            self.mode = Mode::SkipLine(DummyLineReceiver::default());
        } else {
            parse_error_reply(e).write_to(out);
        }
        self.count_error(out).await.unwrap_or(Next::Read)
    }

    /// Counts one error reply (Postfix counts the same: every refused command and every 4xx
    /// or 5xx): past the soft limit each one waits, at the hard limit the session ends.
    async fn count_error(&mut self, out: &mut Vec<u8>) -> Option<Next> {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            let host = &self.config.hostname;
            Reply::new(421, format!("4.7.0 {host} too many errors")).write_to(out);
            return Some(Next::Close);
        }
        if self.errors > self.config.slow_errors_after {
            tokio::time::sleep(self.config.error_delay).await;
        }
        None
    }

    /// Answers one command: `Some` when the session ends or changes stream, and whether the
    /// reply was an error (4xx or 5xx).
    async fn command(
        &mut self,
        request: Request<String>,
        out: &mut Vec<u8>,
    ) -> (Option<Next>, bool) {
        let host = &self.config.hostname;
        let reply = match request {
            Request::Ehlo { host: client } => {
                self.ehlo(client, out);
                return (None, false);
            }
            Request::Helo { host: client } => {
                self.helo = Some(client);
                self.tx = Transaction::default();
                Reply::new(250, host.clone())
            }
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                let failed = self.auth_command(mechanism, &initial_response, out).await;
                return (None, failed);
            }
            Request::Data => self.data(),
            Request::Rset => {
                self.tx = Transaction::default();
                Reply::new(250, "2.0.0 Reset")
            }
            Request::Noop { .. } => Reply::new(250, "2.0.0 OK"),
            Request::Quit => {
                Reply::new(221, format!("2.0.0 {host} closing connection")).write_to(out);
                return (Some(Next::Close), false);
            }
            Request::StartTls => match self.tls {
                Tls::Offered => {
                    Reply::new(220, "2.0.0 Ready to start TLS").write_to(out);
                    return (Some(Next::StartTls), false);
                }
                Tls::Active { .. } => Reply::new(503, "5.5.1 TLS is already active"),
                Tls::Unavailable => Reply::new(502, "5.5.1 STARTTLS is not available here"),
            },
            Request::Vrfy { .. } | Request::Expn { .. } => {
                Reply::new(502, "5.5.1 VRFY and EXPN are disabled")
            }
            other => Reply::new(502, format!("5.5.1 {} is not implemented", other.name())),
        };
        reply.write_to(out);
        (None, reply.code >= 400)
    }

    fn ehlo(&mut self, client: String, out: &mut Vec<u8>) {
        let host = &self.config.hostname;
        let mut lines = vec![
            format!("{host} greets {client}"),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_bytes),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
        ];
        if self.tls == Tls::Offered {
            lines.push("STARTTLS".into());
        }
        if self.config.submission && matches!(self.tls, Tls::Active { .. }) {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
        self.helo = Some(client);
        self.tx = Transaction::default();
    }

    fn mail(&mut self, from: MailFrom<String>) -> Reply {
        if self.helo.is_none() {
            Reply::new(503, "5.5.1 Say EHLO or HELO first")
        } else if self.tx.mail_from.is_some() {
            Reply::new(503, "5.5.1 Nested MAIL command")
        } else if from.size > self.config.max_message_bytes {
            Reply::new(
                552,
                format!(
                    "5.3.4 Message size exceeds the limit of {} bytes",
                    self.config.max_message_bytes
                ),
            )
        } else if let Err(e) = check_sender_syntax(&from.address) {
            Reply::new(
                553,
                format!("5.1.7 The sender address is not accepted: {e}"),
            )
        } else if self.config.submission && self.login.is_none() {
            Reply::new(530, "5.7.0 Authentication required")
        } else if let Err(reply) =
            self.acceptor
                .check_sender(self.client_ip, &from.address, self.login.as_deref())
        {
            reply
        } else {
            self.tx.mail_from = Some(from.address);
            Reply::new(250, "2.1.0 Sender OK")
        }
    }

    async fn rcpt(&mut self, to: RcptTo<String>) -> Reply {
        if self.tx.mail_from.is_none() {
            return Reply::new(503, "5.5.1 Need MAIL before RCPT");
        }
        if self.tx.rcpt_to.len() >= self.config.max_recipients {
            return Reply::new(452, "4.5.3 Too many recipients");
        }
        let rcpt = match parse_recipient(&to.address) {
            Err(e) => {
                let (code, status) = e.reply_code();
                return Reply::new(code, format!("{status} {e}"));
            }
            Ok(rcpt) => rcpt,
        };
        match self
            .acceptor
            .check_recipient(&rcpt, self.login.as_deref())
            .await
        {
            Ok(()) => {
                self.tx.rcpt_to.push(rcpt);
                Reply::new(250, "2.1.5 Recipient OK")
            }
            Err(reply) => {
                self.acceptor.recipient_refused(Refusal {
                    client_ip: self.client_ip,
                    helo: self.helo.as_deref().unwrap_or_default(),
                    mail_from: self.tx.mail_from.as_deref().unwrap_or_default(),
                    rcpt: &to.address,
                    reply: &reply,
                });
                reply
            }
        }
    }

    fn data(&mut self) -> Reply {
        if self.tx.mail_from.is_none() {
            Reply::new(503, "5.5.1 Need MAIL before DATA")
        } else if self.tx.rcpt_to.is_empty() {
            Reply::new(554, "5.5.1 No valid recipients")
        } else {
            self.tx.body.clear();
            self.tx.held = Some(self.config.data_memory.hold());
            self.mode = Mode::Data(DataReceiver::new());
            Reply::new(354, "Send the message; end with <CRLF>.<CRLF>")
        }
    }

    /// Checks the message's bytes, then hands it over; the transaction is reset either way.
    async fn finish_message(&mut self) -> Reply {
        let t = std::mem::take(&mut self.tx);
        if let Some(why) = body_defect(&t.body) {
            return Reply::new(554, format!("5.6.0 Message refused: {why}"));
        }
        let hops = received_headers(&t.body);
        if hops > self.config.max_hops {
            return Reply::new(
                554,
                format!(
                    "5.4.6 Too many hops: {hops} Received headers, the limit is {} (a mail loop?)",
                    self.config.max_hops
                ),
            );
        }
        let envelope = Envelope {
            client_ip: self.client_ip,
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: t.mail_from.unwrap_or_default(),
            rcpt_to: t.rcpt_to,
            tls: match self.tls {
                Tls::Active { version, cipher } => Some((version, cipher)),
                _ => None,
            },
            login: self.login.clone(),
            authenticated: self.authenticated,
            rdns: String::new(),
        };
        // The body stays counted while the filter and the commit have it.
        let _held = t.held;
        self.acceptor.accept(envelope, t.body).await
    }
}

/// As Postfix answers when its queue's disk is short: the client tries again later.
fn no_memory_left(config: &SessionConfig) -> Reply {
    Reply::new(
        452,
        format!(
            "4.3.1 Insufficient system resources: this node holds {} MiB of incoming mail; try again later",
            config.data_memory.limit() >> 20
        ),
    )
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

/// The `Received` headers in the message's header section: each relay adds one, so a count
/// past any sane path is a routing loop (RFC 5321 section 6.3).
fn received_headers(message: &[u8]) -> usize {
    message
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .filter(|line| line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

/// Bare LF or CR (the stuff of SMTP smuggling: `<LF>.<LF>`, `<CR>.<CR>` end the data for
/// some servers) and NUL bytes are refused rather than passed on to servers that may read
/// them differently.
fn body_defect(body: &[u8]) -> Option<&'static str> {
    if body.contains(&0) {
        return Some("NUL bytes");
    }
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            return Some("bare LF; lines must end with CRLF");
        }
        if prev == b'\r' && b != b'\n' {
            return Some("bare CR; lines must end with CRLF");
        }
        prev = b;
    }
    None
}
