//! The vocabulary of the SMTP front: replies, the envelope, what a session hands messages
//! to (`Acceptor`), a session's limits, where it stands on TLS, and the metric names.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use super::address::Recipient;
use super::memory::DataMemory;

/// Metric names (counters): connections given a session, replies by code, and idle
/// sessions closed to make room for a new client.
pub const SMTP_SESSIONS: &str = "peage_smtp_sessions_total";
pub const SMTP_REPLIES: &str = "peage_smtp_replies_total";
pub const SMTP_EVICTED: &str = "peage_smtp_sessions_evicted_total";

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

    /// The enhanced status code the text starts with (`5.1.1`), or the reply code.
    pub fn status_code(&self) -> String {
        let first = self.text.split_whitespace().next().unwrap_or("");
        let enhanced = first.split('.').count() == 3
            && first
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        match enhanced {
            true => first.to_owned(),
            false => self.code.to_string(),
        }
    }

    /// Appends the reply to what the session writes next, and counts it.
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        metrics::counter!(SMTP_REPLIES, "code" => self.code.to_string()).increment(1);
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
    /// The TLS version and cipher suite when the message came over TLS.
    pub tls: Option<(&'static str, &'static str)>,
    /// Who sends, on a submission listener: the login the client authenticated as, or the
    /// principal whose trusted network it connected from (`Acceptor::trusted_principal`);
    /// None on the MX.
    pub login: Option<String>,
    /// The client logged in with AUTH (not only trusted for its network): `Received` then
    /// says `ESMTPSA` (RFC 3848), which downstream filters read as an authenticated
    /// submission rather than a dynamic address sending mail directly.
    pub authenticated: bool,
    /// The client's forward-confirmed reverse DNS name, once the node has looked it up
    /// (the session leaves it empty; sender authentication fills it in).
    pub rdns: String,
}

/// A recipient refused at RCPT, and the transaction it was refused in.
pub struct Refusal<'a> {
    pub client_ip: IpAddr,
    pub helo: &'a str,
    pub mail_from: &'a str,
    pub rcpt: &'a str,
    pub reply: &'a Reply,
}

/// What the session hands recipients and messages to: the node's filter and spool, or the
/// test sink's maildir.
pub trait Acceptor: Send + Sync + 'static {
    /// Whether a transaction may start now, from this sender (as `login` when the client
    /// authenticated); `Err` is the reply to MAIL FROM (a node that cannot accept anything
    /// says so before the client sends the message).
    fn check_sender(
        &self,
        _client_ip: IpAddr,
        _mail_from: &str,
        _login: Option<&str>,
    ) -> Result<(), Reply> {
        Ok(())
    }
    /// Whether this recipient may be accepted (relay control, recipient verification, which
    /// may ask the downstream; anything goes for an authenticated `login`); `Err` is the
    /// reply.
    fn check_recipient(
        &self,
        rcpt: &Recipient,
        login: Option<&str>,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
    /// The principal a client of a submission listener sends as without AUTH, when it
    /// connects from one of that principal's trusted networks (the platform's own MTAs).
    fn trusted_principal(&self, _client_ip: IpAddr) -> Option<String> {
        None
    }
    /// Checks a login and password (submission, over TLS); `Err` is the reply (`535` for
    /// wrong credentials). Only called when `SessionConfig::submission` is set.
    fn authenticate(
        &self,
        _client_ip: IpAddr,
        _login: &str,
        _password: &str,
    ) -> impl Future<Output = Result<(), Reply>> + Send {
        async { Err(Reply::new(535, "5.7.8 Authentication credentials invalid")) }
    }
    /// Told of each recipient refused at RCPT (relay control, unknown mailbox, …), for the
    /// record: the sender learns of it from the reply, nobody else would otherwise.
    fn recipient_refused(&self, _refused: Refusal<'_>) {}
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
    /// The command timeout while the listener is under stress (past its high-water mark).
    pub stress_command_timeout: Duration,
    /// Under stress, how long the banner waits: a client that talks before it is a bot.
    pub stress_greet_pause: Duration,
    /// No session lasts longer, whatever it does.
    pub session_deadline: Duration,
    /// A message must come in at least this fast (bytes per second) once `data_grace` has
    /// passed, so a client cannot hold a session by trickling.
    pub min_data_rate: u64,
    pub data_grace: Duration,
    /// Errors (refused commands and replies of 4xx or 5xx) tolerated before the session is
    /// closed (Postfix's hard error limit is 20).
    pub max_errors: u32,
    /// `Received` headers a message may carry; past them it is refused as a mail loop
    /// (Postfix's `hopcount_limit`, 50).
    pub max_hops: usize,
    /// From this many errors on, each error reply waits `error_delay` (Postfix's soft limit).
    pub slow_errors_after: u32,
    pub error_delay: Duration,
    /// A submission listener (587, 465): AUTH is offered once TLS is up, and nothing is
    /// accepted from a client that has not authenticated. Port 25 leaves it off.
    pub submission: bool,
    /// TLS from the first byte (465): the handshake comes before the banner.
    pub implicit_tls: bool,
    /// The node's limit on message bytes held in memory, shared by all its listeners.
    pub data_memory: DataMemory,
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
            stress_command_timeout: Duration::from_secs(10),
            stress_greet_pause: Duration::from_secs(2),
            session_deadline: Duration::from_secs(3600),
            min_data_rate: 4096,
            data_grace: Duration::from_secs(60),
            max_errors: 20,
            max_hops: 50,
            slow_errors_after: 10,
            error_delay: Duration::from_secs(1),
            submission: false,
            implicit_tls: false,
            data_memory: DataMemory::new(1 << 30),
        }
    }
}

/// Where a session stands on TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain text, STARTTLS not configured.
    Unavailable,
    /// Plain text, STARTTLS offered.
    Offered,
    /// Inside TLS after STARTTLS: no banner, no second STARTTLS (RFC 3207). The protocol
    /// version and cipher suite are written into the `Received` header.
    Active {
        version: &'static str,
        cipher: &'static str,
    },
}
