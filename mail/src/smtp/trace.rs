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
    let with = match envelope.tls {
        Some((version, cipher)) => format!("ESMTPS ({version} {cipher})"),
        None => "ESMTP".to_owned(),
    };
    let rcpt = match envelope.rcpt_to.as_slice() {
        [one] => format!("\r\n\tfor <{}>", one.address()),
        _ => String::new(),
    };
    format!(
        "Received: from {} ([{ip}])\r\n\tby {host} (Peage) with {with}{rcpt};\r\n\t{}\r\n",
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
    let mut kept: Option<Vec<u8>> = None;
    let mut dropping = false;
    let mut pos = 0;
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            dropping = is_forged(line, authserv_id);
        }
        match (&mut kept, dropping) {
            (None, true) => kept = Some(message[..pos].to_vec()),
            (Some(out), false) => out.extend_from_slice(line),
            _ => {}
        }
        pos = end;
    }
    match kept {
        None => Cow::Borrowed(message),
        Some(mut out) => {
            out.extend_from_slice(&message[pos..]);
            Cow::Owned(out)
        }
    }
}

/// Whether a header field's first line is one an outsider may not set.
fn is_forged(line: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    let name = line[..colon].trim_ascii();
    if name.len() >= 8 && name[..8].eq_ignore_ascii_case(b"x-peage-") {
        return true;
    }
    if !name.eq_ignore_ascii_case(b"authentication-results") {
        return false;
    }
    // The authserv-id is the value's first token, before `;` or a version number.
    let value = line[colon + 1..].trim_ascii_start();
    let id_len = value
        .iter()
        .position(|b| *b == b';' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    value[..id_len].eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// An RFC 5322 date for a Unix time in milliseconds (UTC).
pub fn rfc2822_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
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
            "Received: from client.example??evil???x ([192.0.2.7])\r\n\tby paris.peage (Peage) \
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
}
