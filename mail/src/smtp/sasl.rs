//! SMTP AUTH's SASL exchange (RFC 4954) for the two mechanisms a submission server offers
//! over TLS, PLAIN (RFC 4616) and LOGIN: the `334` prompts, base64 both ways, `*` to cancel,
//! and the credentials they yield. Pure: the session feeds it lines and acts on what it
//! says.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::protocol::Reply;

/// The longest line a client may send during the exchange (a base64 PLAIN response of a
/// long login and password fits many times over).
pub const MAX_LINE: usize = 4096;

/// Where an exchange stands: which line the server waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// PLAIN's whole response.
    Plain,
    /// LOGIN's user name.
    LoginUser,
    /// LOGIN's password, for this user.
    LoginPassword(String),
}

/// What the session does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Send this `334` and wait for the client's next line at `Step`.
    Ask(Step, Reply),
    /// The client gave these; check them.
    Credentials { login: String, password: String },
    /// The exchange is over without credentials: reply this.
    Refused(Reply),
}

/// Starts an exchange for `mechanism` (smtp-proto's bit) with the client's initial response
/// (empty when none; `=` is an empty one).
pub fn start(mechanism: u64, initial: &str) -> Turn {
    let initial = initial.trim();
    match mechanism {
        smtp_proto::AUTH_PLAIN if initial.is_empty() => {
            Turn::Ask(Step::Plain, Reply::new(334, String::new()))
        }
        smtp_proto::AUTH_PLAIN => next(Step::Plain, initial),
        smtp_proto::AUTH_LOGIN if initial.is_empty() => ask_user(),
        smtp_proto::AUTH_LOGIN => next(Step::LoginUser, initial),
        _ => Turn::Refused(Reply::new(
            504,
            "5.5.4 Unrecognized authentication type: PLAIN or LOGIN",
        )),
    }
}

fn ask_user() -> Turn {
    // "Username:" in base64, as clients expect.
    Turn::Ask(Step::LoginUser, Reply::new(334, "VXNlcm5hbWU6"))
}

/// The client's `line` (without its line end) at `step`.
pub fn next(step: Step, line: &str) -> Turn {
    let line = line.trim();
    if line == "*" {
        return Turn::Refused(Reply::new(501, "5.0.0 Authentication cancelled"));
    }
    let decoded = match line {
        "=" => Vec::new(),
        _ => match BASE64.decode(line) {
            Ok(d) => d,
            Err(_) => {
                return Turn::Refused(Reply::new(501, "5.5.2 Cannot decode the response (base64)"))
            }
        },
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Turn::Refused(Reply::new(501, "5.5.2 The response is not UTF-8"));
    };
    match step {
        Step::Plain => plain(&text),
        Step::LoginUser => Turn::Ask(
            Step::LoginPassword(text),
            // "Password:"
            Reply::new(334, "UGFzc3dvcmQ6"),
        ),
        Step::LoginPassword(login) => Turn::Credentials {
            login,
            password: text,
        },
    }
}

/// PLAIN: `authzid NUL authcid NUL passwd`; acting for another identity is not offered.
fn plain(text: &str) -> Turn {
    let mut parts = text.split('\0');
    let (Some(authzid), Some(login), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Turn::Refused(Reply::new(501, "5.5.2 Malformed PLAIN response"));
    };
    if !authzid.is_empty() && authzid != login {
        return Turn::Refused(Reply::new(
            535,
            "5.7.8 Authorization as another identity is not allowed",
        ));
    }
    Turn::Credentials {
        login: login.to_owned(),
        password: password.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        BASE64.encode(s)
    }

    #[test]
    fn plain_with_and_without_an_initial_response() {
        let creds = Turn::Credentials {
            login: "alice@example.test".into(),
            password: "s3cret".into(),
        };
        let response = b64("\0alice@example.test\0s3cret");
        assert_eq!(start(smtp_proto::AUTH_PLAIN, &response), creds);
        let Turn::Ask(step, reply) = start(smtp_proto::AUTH_PLAIN, "") else {
            panic!("PLAIN without a response asks for it");
        };
        assert_eq!(reply.code, 334);
        assert_eq!(next(step, &response), creds);
        let acting = b64("bob@example.test\0alice@example.test\0s3cret");
        assert!(
            matches!(start(smtp_proto::AUTH_PLAIN, &acting), Turn::Refused(r) if r.code == 535)
        );
    }

    #[test]
    fn login_asks_user_then_password() {
        let Turn::Ask(step, reply) = start(smtp_proto::AUTH_LOGIN, "") else {
            panic!("LOGIN asks for the user");
        };
        assert_eq!((reply.code, reply.text.as_str()), (334, "VXNlcm5hbWU6"));
        let Turn::Ask(step, _) = next(step, &b64("alice@example.test")) else {
            panic!("then for the password");
        };
        assert_eq!(
            next(step, &b64("pw")),
            Turn::Credentials {
                login: "alice@example.test".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn cancel_garbage_and_unknown_mechanisms_are_refused() {
        let refused = |t: Turn| match t {
            Turn::Refused(r) => r.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(next(Step::Plain, "*")), 501);
        assert_eq!(refused(next(Step::LoginUser, "not base64!")), 501);
        assert_eq!(refused(next(Step::Plain, &b64("no separators"))), 501);
        assert_eq!(
            refused(next(Step::Plain, &BASE64.encode([0xff, 0xfe]))),
            501
        );
        assert_eq!(refused(start(smtp_proto::AUTH_CRAM_MD5, "")), 504);
    }
}
