//! What the edge writes into, and takes out of, every accepted message's header: the
//! `Received:` trace field (RFC 5321 §4.4), and the fields nobody outside may set — our own
//! `X-Peage-*` verdict and `Authentication-Results` claiming our authserv-id (RFC 8601 §5),
//! both forgeable by a sender who wants to pre-write our verdict.

use std::borrow::Cow;

use super::Envelope;

/// The `Received:` field for a message accepted from `envelope` by `host` at `now_ms`:
/// the client's HELO and address, TLS version and cipher when used, and the recipient when
/// there is one only (listing several would tell each who else got it).
pub fn received(envelope: &Envelope, host: &str, now_ms: i64) -> String {
    let ip = match envelope.client_ip {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("IPv6:{ip}"),
    };
    let auth = if envelope.authenticated { "A" } else { "" };
    let with = match envelope.tls {
        Some((version, cipher)) => format!("ESMTPS{auth} ({version} {cipher})"),
        None => format!("ESMTP{auth}"),
    };
    let rcpt = match envelope.rcpt_to.as_slice() {
        [one] => format!("\r\n\tfor <{}>", one.address()),
        _ => String::new(),
    };
    // As Postfix writes it: the verified name, or `unknown` when there is none.
    let rdns = match envelope.rdns.as_str() {
        "" => "unknown".to_owned(),
        name => printable_helo(name),
    };
    format!(
        "Received: from {} ({rdns} [{ip}])\r\n\tby {host} (Peage) with {with}{rcpt};\r\n\t{}\r\n",
        printable_helo(&envelope.helo),
        rfc2822_ms(now_ms)
    )
}

/// The HELO name as it may appear in a header: the client chose it, so anything outside a
/// host name's or address literal's characters is replaced, and it is cut at 255.
fn printable_helo(helo: &str) -> String {
    if helo.is_empty() {
        return "unknown".into();
    }
    helo.chars()
        .take(255)
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_[]:".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The message without the header fields an outsider may not set: every `X-Peage-*` field
/// and every `Authentication-Results` naming `authserv_id` (folded lines with them). The
/// body and every other field are kept byte for byte; nothing is copied when there is
/// nothing to remove.
pub fn strip_forged_headers<'a>(message: &'a [u8], authserv_id: &str) -> Cow<'a, [u8]> {
    strip_fields(message, |line| is_forged(line, authserv_id))
}

/// The message as it reached us, without what any Péage node added: its `X-Peage-*`
/// verdict and its `Received:` field. The classifier learns and judges mail this way, so a
/// message learned from a quarantine or a mailbox has the features it had when judged.
pub fn strip_our_stamp(message: &[u8]) -> Cow<'_, [u8]> {
    strip_fields(message, |line| {
        is_our_verdict(line)
            || (starts_with_name(line, b"received:")
                && memchr::memmem::find(line, OUR_RECEIVED_MARK.as_bytes()).is_some())
    })
}

/// What our `Received:` field says right after our host name (`received` writes it on
/// the field's second line, which the folded field's first line does not hold).
const OUR_RECEIVED_MARK: &str = " (Peage) with ";

/// The header section without the fields whose lines `drop` picks (given the whole field,
/// folded lines included); the body untouched.
fn strip_fields<'a>(message: &'a [u8], drop: impl Fn(&[u8]) -> bool) -> Cow<'a, [u8]> {
    let mut kept: Option<Vec<u8>> = None;
    let mut pos = 0;
    while pos < message.len() {
        let field_end = field_end(message, pos);
        let field = &message[pos..field_end];
        if field == b"\r\n" || field == b"\n" {
            break;
        }
        match (&mut kept, drop(field)) {
            (None, true) => kept = Some(message[..pos].to_vec()),
            (Some(out), false) => out.extend_from_slice(field),
            _ => {}
        }
        pos = field_end;
    }
    match kept {
        None => Cow::Borrowed(message),
        Some(mut out) => {
            out.extend_from_slice(&message[pos..]);
            Cow::Owned(out)
        }
    }
}

/// Where the header field starting at `start` ends: after its last folded line.
fn field_end(message: &[u8], start: usize) -> usize {
    let line_end = |from: usize| {
        memchr::memchr(b'\n', &message[from..]).map_or(message.len(), |i| from + i + 1)
    };
    let mut end = line_end(start);
    let first = &message[start..end];
    if first == b"\r\n" || first == b"\n" {
        return end;
    }
    while end < message.len() && matches!(message[end], b' ' | b'\t') {
        end = line_end(end);
    }
    end
}

fn starts_with_name(field: &[u8], lower_name_colon: &[u8]) -> bool {
    field.len() >= lower_name_colon.len()
        && field[..lower_name_colon.len()].eq_ignore_ascii_case(lower_name_colon)
}

fn is_our_verdict(field: &[u8]) -> bool {
    memchr::memchr(b':', field).is_some_and(|colon| {
        let name = field[..colon].trim_ascii();
        name.len() >= 8 && name[..8].eq_ignore_ascii_case(b"x-peage-")
    })
}

/// Whether a header field is one an outsider may not set.
fn is_forged(field: &[u8], authserv_id: &str) -> bool {
    if is_our_verdict(field) {
        return true;
    }
    if !starts_with_name(field, b"authentication-results:") {
        return false;
    }
    // The authserv-id is the value's first token, before `;` or a version number.
    let value = field[b"authentication-results:".len()..].trim_ascii_start();
    let id_len = value
        .iter()
        .position(|b| *b == b';' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    value[..id_len].eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// The UTC calendar date (year, month 1–12, day 1–31) of a Unix time in milliseconds.
pub fn utc_date(ms: i64) -> (i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A Unix time in milliseconds as people read it, the same in every language:
/// `2026-12-06 23:31 UTC`.
pub fn utc_minute(ms: i64) -> String {
    let (y, m, d) = utc_date(ms);
    let minutes = ms.rem_euclid(86_400_000) / 60_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// The day names of an RFC 5322 date, Monday first.
pub const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// The month names of an RFC 5322 date.
pub const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An RFC 5322 date for a Unix time in milliseconds (UTC).
pub fn rfc2822_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = utc_date(ms);
    // 1 January 1970 was a Thursday.
    let weekday = DAY_NAMES[(days + 3).rem_euclid(7) as usize];
    let mon = MONTH_NAMES[(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {mon} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_recipient;

    fn envelope(tls: Option<(&'static str, &'static str)>, rcpts: &[&str]) -> Envelope {
        Envelope {
            client_ip: "192.0.2.7".parse().unwrap(),
            helo: "client.example (evil); x".into(),
            mail_from: "a@client.example".into(),
            rcpt_to: rcpts.iter().map(|r| parse_recipient(r).unwrap()).collect(),
            tls,
            login: None,
            authenticated: false,
            rdns: String::new(),
        }
    }

    #[test]
    fn received_names_the_client_tls_and_a_lone_recipient() {
        let r = received(
            &envelope(
                Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384")),
                &["bob@example.test"],
            ),
            "paris.peage",
            1_795_600_000_000,
        );
        assert_eq!(
            r,
            "Received: from client.example??evil???x (unknown [192.0.2.7])\r\n\tby paris.peage (Peage) \
             with ESMTPS (TLSv1_3 TLS13_AES_256_GCM_SHA384)\r\n\tfor <bob@example.test>;\r\n\t\
             Wed, 25 Nov 2026 09:46:40 +0000\r\n"
        );
        let plain = received(
            &envelope(None, &["bob@example.test", "carol@example.test"]),
            "paris.peage",
            0,
        );
        assert!(plain.contains("with ESMTP;"), "{plain}");
        assert!(!plain.contains("for <"), "{plain}");
        let named = Envelope {
            rdns: "mta.client.example".into(),
            ..envelope(None, &["bob@example.test"])
        };
        let named = received(&named, "paris.peage", 0);
        assert!(
            named.starts_with(
                "Received: from client.example??evil???x (mta.client.example [192.0.2.7])"
            ),
            "{named}"
        );
        // Logged in: RFC 3848's `A`; trusted for its network only: not.
        let logged_in = Envelope {
            login: Some("alice@shop.example".into()),
            authenticated: true,
            ..envelope(Some(("TLSv1_3", "TLS13_AES_128_GCM_SHA256")), &[])
        };
        let logged_in = received(&logged_in, "paris.peage", 0);
        assert!(logged_in.contains("with ESMTPSA (TLSv1_3"), "{logged_in}");
        assert!(
            !logged_in.contains("alice"),
            "the login stays private: {logged_in}"
        );
        let trusted = Envelope {
            login: Some("platform".into()),
            ..envelope(None, &[])
        };
        let trusted = received(&trusted, "paris.peage", 0);
        assert!(trusted.contains("with ESMTP;"), "{trusted}");
    }

    #[test]
    fn forged_verdicts_and_our_authentication_results_are_removed() {
        let message = b"X-Peage-Verdict: deliver\r\nSubject: hi\r\nx-peage-score: -20\r\n \
                        folded\r\nAuthentication-Results: paris.peage; spf=pass\r\n\
                        Authentication-Results: mx.other.example; dkim=pass\r\n\
                        X-Peager: kept\r\n\r\nX-Peage-Verdict: in the body stays\r\n";
        let out = strip_forged_headers(message, "paris.peage");
        assert_eq!(
            out.as_ref(),
            b"Subject: hi\r\nAuthentication-Results: mx.other.example; dkim=pass\r\n\
              X-Peager: kept\r\n\r\nX-Peage-Verdict: in the body stays\r\n"
        );
    }

    #[test]
    fn our_stamp_comes_off_whatever_was_added_above_it() {
        let original =
            b"Received: from relay.example ([192.0.2.1])\r\n\tby mx.other.example; x\r\n\
                         Subject: hi\r\n\r\nbody\r\n";
        let env = envelope(None, &["bob@example.test"]);
        let mut stamped = b"Received: by mailstore.example; later\r\n".to_vec();
        stamped.extend_from_slice(received(&env, "paris.peage", 0).as_bytes());
        stamped.extend_from_slice(b"X-Peage-Verdict: deliver\r\nX-Peage-Score: 0\r\n");
        stamped.extend_from_slice(original);
        let mut expected = b"Received: by mailstore.example; later\r\n".to_vec();
        expected.extend_from_slice(original);
        assert_eq!(strip_our_stamp(&stamped).as_ref(), expected.as_slice());
        assert!(matches!(strip_our_stamp(original), Cow::Borrowed(_)));
    }

    #[test]
    fn a_message_with_nothing_forged_is_not_copied() {
        let message = b"Subject: hi\r\n\r\nbody\r\n";
        assert!(matches!(
            strip_forged_headers(message, "paris.peage"),
            Cow::Borrowed(_)
        ));
        let headers_only = b"Subject: hi\r\nX-Peage-Score: 1";
        assert_eq!(
            strip_forged_headers(headers_only, "p").as_ref(),
            b"Subject: hi\r\n"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc2822_ms(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_ms(1_795_600_000_000),
            "Wed, 25 Nov 2026 09:46:40 +0000"
        );
    }

    #[test]
    fn times_are_shown_to_the_minute_in_utc() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_796_000_000_000), "2026-11-30 00:53 UTC");
    }
}
