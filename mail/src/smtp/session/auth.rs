//! The session's side of SMTP AUTH on a submission listener: when AUTH may be asked for
//! (after TLS, once, outside a transaction), the lines of the SASL exchange (`sasl`), and
//! the acceptor's verdict on the credentials.

use smtp_proto::request::receiver::DummyLineReceiver;

use super::{Mode, Next, Session};
use crate::smtp::protocol::{Acceptor, Reply, Tls};
use crate::smtp::sasl::{self, Step, Turn};

/// A line of the exchange as far as it has come.
enum AuthLine {
    /// Not complete yet: read more.
    Partial,
    Complete(String),
    /// Longer than `sasl::MAX_LINE`: the rest of it is dropped.
    TooLong,
}

impl<A: Acceptor> Session<'_, A> {
    /// Why AUTH cannot be asked for now, if it cannot.
    fn auth_refusal(&self) -> Option<Reply> {
        if !self.config.submission {
            Some(Reply::new(
                503,
                "5.5.1 AUTH is not offered here; use the submission port",
            ))
        } else if !matches!(self.tls, Tls::Active { .. }) {
            Some(Reply::new(
                538,
                "5.7.11 Encryption required for requested authentication mechanism",
            ))
        } else if self.login.is_some() {
            Some(Reply::new(503, "5.5.1 Already authenticated"))
        } else if self.tx.mail_from.is_some() {
            Some(Reply::new(
                503,
                "5.5.1 AUTH is not allowed during a transaction",
            ))
        } else {
            None
        }
    }

    /// `AUTH mechanism [initial-response]`; whether its reply was an error.
    pub(super) async fn auth_command(
        &mut self,
        mechanism: u64,
        initial: &str,
        out: &mut Vec<u8>,
    ) -> bool {
        if let Some(reply) = self.auth_refusal() {
            reply.write_to(out);
            return true;
        }
        self.take_turn(sasl::start(mechanism, initial), out).await
    }

    /// Takes the exchange's next line at `step` from `bytes` and answers it: `Some` when the
    /// session must read more or end, `None` to go on with what `bytes` still holds.
    pub(super) async fn auth_ingest(
        &mut self,
        step: Step,
        bytes: &mut std::slice::Iter<'_, u8>,
        out: &mut Vec<u8>,
    ) -> Option<Next> {
        let line = self.auth_line(bytes);
        let partial = matches!(line, AuthLine::Partial);
        let failed = self.auth_response(step, line, out).await;
        if partial {
            return Some(Next::Read);
        }
        if failed {
            return self.count_error(out).await;
        }
        None
    }

    /// One line of the exchange, at `step`; whether its reply was an error.
    async fn auth_response(&mut self, step: Step, line: AuthLine, out: &mut Vec<u8>) -> bool {
        match line {
            AuthLine::Partial => {
                self.mode = Mode::Auth(step);
                false
            }
            AuthLine::TooLong => {
                self.mode = Mode::SkipLine(DummyLineReceiver::default());
                Reply::new(500, "5.5.2 Authentication line too long").write_to(out);
                true
            }
            AuthLine::Complete(text) => self.take_turn(sasl::next(step, &text), out).await,
        }
    }

    /// Gathers the exchange's next line from `bytes` (its CR LF taken off).
    fn auth_line(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> AuthLine {
        for &b in bytes.by_ref() {
            if b == b'\n' {
                let line = std::mem::take(&mut self.auth_buffer);
                let text = String::from_utf8_lossy(&line);
                return AuthLine::Complete(text.trim_end_matches('\r').to_owned());
            }
            if self.auth_buffer.len() >= sasl::MAX_LINE {
                self.auth_buffer.clear();
                return AuthLine::TooLong;
            }
            self.auth_buffer.push(b);
        }
        AuthLine::Partial
    }

    async fn take_turn(&mut self, turn: Turn, out: &mut Vec<u8>) -> bool {
        self.mode = Mode::Command;
        match turn {
            Turn::Ask(step, reply) => {
                reply.write_to(out);
                self.mode = Mode::Auth(step);
                false
            }
            Turn::Refused(reply) => {
                reply.write_to(out);
                true
            }
            Turn::Credentials { login, password } => {
                let verdict = self
                    .acceptor
                    .authenticate(self.client_ip, &login, &password);
                match verdict.await {
                    Ok(()) => {
                        self.login = Some(login);
                        self.authenticated = true;
                        Reply::new(235, "2.7.0 Authentication successful").write_to(out);
                        false
                    }
                    Err(reply) => {
                        reply.write_to(out);
                        true
                    }
                }
            }
        }
    }
}
