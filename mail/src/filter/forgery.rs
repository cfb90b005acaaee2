//! Header forgery rules that need no learning: a From at a webmail provider whose mail
//! never passed through that provider, a Date set in the future of the message's own
//! reception, in a time zone no place has or in a form no mail program writes, a mail
//! program named that would have written a header the message lacks.
//! Spam tools fake the headers a real program writes, and get the ones they do not show
//! wrong. Scores are in `scoring::SCORES` and `scoring::RULES_ALONE`.

use mail_parser::Message;

use super::structure::raw_header;
use crate::smtp::trace::{DAY_NAMES, MONTH_NAMES};
use crate::trust::Authenticated;

/// Webmail domains, and what the Received headers (or the client's HELO) of mail really
/// sent through each provider name somewhere. Not the providers whose addresses people
/// commonly send through their own server (GMX: one correspondent of the corpus's ham
/// does it in nine messages).
const WEBMAIL: &[(&[&str], &[&str])] = &[
    (
        &[
            "hotmail.com",
            "hotmail.fr",
            "msn.com",
            "live.com",
            "live.fr",
            "outlook.com",
            "outlook.fr",
        ],
        &["hotmail", "msn.com", "outlook.com", "live.com"],
    ),
    (
        &[
            "yahoo.com",
            "yahoo.fr",
            "yahoo.co.uk",
            "ymail.com",
            "rocketmail.com",
        ],
        &["yahoo"],
    ),
    (&["aol.com", "aim.com"], &["aol.com", "aol.net", "yahoo"]),
    (&["netscape.net"], &["netscape", "aol"]),
    (
        &["gmail.com", "googlemail.com"],
        &["google.com", "gmail.com"],
    ),
    (&["excite.com"], &["excite"]),
    (&["juno.com"], &["juno"]),
    (&["lycos.com"], &["lycos"]),
    (&["earthlink.net"], &["earthlink"]),
    (&["mail.com"], &["mail.com"]),
    (&["orange.fr", "wanadoo.fr"], &["orange.fr", "wanadoo.fr"]),
    (&["free.fr"], &["free.fr", "proxad.net"]),
    (&["laposte.net"], &["laposte.net"]),
];

/// A Date this far after the newest Received timestamp is set ahead, not a clock off a bit.
const FUTURE_SLACK_SECS: i64 = 3 * 3600;

type Found<'f> = dyn FnMut(&'static str, String) + 'f;

/// Runs the forgery rules; `helo` is the client's, `proved` what authentication showed.
pub(super) fn check(msg: &Message<'_>, helo: &str, proved: &Authenticated, found: &mut Found<'_>) {
    if let Some(why) = forged_webmail(msg, helo, proved) {
        found("FORGED_WEBMAIL_RCVD", why);
    }
    if let Some(ahead) = date_ahead_of_reception(msg) {
        found(
            "DATE_IN_FUTURE",
            format!(
                "the Date is {} h after the message was received",
                ahead / 3600
            ),
        );
    }
    if let Some(zone) = msg.date().and_then(absurd_zone) {
        found(
            "DATE_TZ_ABSURD",
            format!("the Date's time zone {zone} does not exist"),
        );
    }
    if msg.date().is_some() && raw_header(msg, "Date").is_some_and(|d| !rfc5322_date(d)) {
        found(
            "DATE_MALFORMED",
            "the Date is not written as RFC 5322 has it (no zone, or a made-up one)".to_owned(),
        );
    }
    if raw_header(msg, "X-Mailer").is_some_and(windows_outlook)
        && raw_header(msg, "X-MimeOLE").is_none()
    {
        found(
            "FORGED_OUTLOOK",
            "claims Outlook for Windows, which always wrote an X-MimeOLE header".to_owned(),
        );
    }
}

/// Why the From's webmail domain is forged, if it is: not proved by authentication, and no
/// Received header nor the HELO names the provider.
fn forged_webmail(msg: &Message<'_>, helo: &str, proved: &Authenticated) -> Option<String> {
    let address = msg.from()?.first()?.address.as_deref()?;
    let domain = address.rsplit_once('@')?.1.to_ascii_lowercase();
    let (_, marks) = WEBMAIL.iter().find(|(d, _)| d.contains(&domain.as_str()))?;
    if proved.vouches_for(&domain) {
        return None;
    }
    let mut path = helo.to_ascii_lowercase();
    for (name, value) in msg.headers_raw().take(100) {
        if name.eq_ignore_ascii_case("received") {
            path.push(' ');
            path.push_str(&value.to_ascii_lowercase());
        }
    }
    (!marks.iter().any(|m| path.contains(m)))
        .then(|| format!("From is at {domain}, but no relay of the message is that provider's"))
}

/// How many seconds the Date header is ahead of the newest Received timestamp, when more
/// than the slack.
fn date_ahead_of_reception(msg: &Message<'_>) -> Option<i64> {
    let date = msg.date()?.to_timestamp();
    let received = msg
        .received_all()
        .take(20)
        .find_map(|r| r.date.as_ref().map(|d| d.to_timestamp()))?;
    let ahead = date - received;
    (ahead > FUTURE_SLACK_SECS).then_some(ahead)
}

/// The Date's zone as written when no place has it (zones run from −12:00 to +14:00): spam
/// tools that compute it wrong write `-1900`.
fn absurd_zone(date: &mail_parser::DateTime) -> Option<String> {
    (date.tz_hour > 14 || date.tz_minute >= 60).then(|| {
        let sign = if date.tz_before_gmt { '-' } else { '+' };
        format!("{sign}{:02}{:02}", date.tz_hour, date.tz_minute)
    })
}

/// An X-Mailer naming Outlook Express for Windows (`Microsoft Outlook Express 6.00.2600.0000`)
/// or Outlook 2000 to 2003 (`Microsoft Outlook IMO, Build 9.0.2416`, `Microsoft Outlook, Build
/// 10.0.2627`, `Microsoft Office Outlook, Build 11.0.5510`): all of them wrote `X-MimeOLE`.
/// Not the Macintosh edition (`… Macintosh Edition - 4.5`), which never did, nor the later
/// Outlooks (`Microsoft Outlook 16.0`), which stopped.
fn windows_outlook(mailer: &str) -> bool {
    let lower = mailer.trim_start().to_ascii_lowercase();
    if let Some(version) = lower.strip_prefix("microsoft outlook express ") {
        return version.starts_with(|c: char| c.is_ascii_digit());
    }
    let outlook =
        lower.starts_with("microsoft outlook") || lower.starts_with("microsoft office outlook");
    outlook
        && lower
            .split_once("build ")
            .is_some_and(|(_, build)| ["9.", "10.", "11."].iter().any(|v| build.starts_with(v)))
}

/// Whether a Date is written as RFC 5322 has it, obsolete forms included (two-digit years,
/// `GMT`/`EST`… and military zones, comments anywhere): `[Mon,] 7 Dec 2026 10:00[:00] +0100`.
/// Mail programs write it so; what spam tools write instead — no zone, `GMT+1`, `+-0500`,
/// `Eastern Daylight Time`, `2002/09/14 Sat 02:29:32` — mail_parser still reads by guessing.
fn rfc5322_date(value: &str) -> bool {
    let Some(text) = without_comments(value) else {
        return false;
    };
    let rest = match text.split_once(',') {
        Some((day, rest)) if named(&DAY_NAMES, day.trim()) => rest,
        Some(_) => return false,
        None => text.as_str(),
    };
    let [day, month, year, time, zone] = rest.split_ascii_whitespace().collect::<Vec<_>>()[..]
    else {
        return false;
    };
    let mut clock = time.split(':');
    let clock_ok = clock.clone().count() <= 3 && clock.all(|n| digits(n, 1, 2));
    digits(day, 1, 2)
        && named(&MONTH_NAMES, month)
        && digits(year, 2, 4)
        && time.contains(':')
        && clock_ok
        && rfc5322_zone(zone)
}

fn named(names: &[&str], word: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(word))
}

/// `+hhmm` / `-hhmm`, or an obsolete zone: `UT`, `GMT`, the North American ones, or a
/// military letter.
fn rfc5322_zone(zone: &str) -> bool {
    if let Some(offset) = zone.strip_prefix(['+', '-']) {
        return digits(offset, 4, 4);
    }
    let lower = zone.to_ascii_lowercase();
    const NAMED: &[&str] = &[
        "ut", "gmt", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt",
    ];
    NAMED.contains(&lower.as_str())
        || (lower.len() == 1 && lower.as_bytes()[0].is_ascii_lowercase() && lower != "j")
}

fn digits(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// The text with its (nested) comments replaced by spaces; `None` when they do not balance.
fn without_comments(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => {
                depth += 1;
                out.push(' ');
            }
            ')' => depth = depth.checked_sub(1)?,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    (depth == 0).then_some(out)
}
