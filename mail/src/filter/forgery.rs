//! Header forgery rules that need no learning: a From at a webmail provider whose mail
//! never passed through that provider, a Date set in the future of the message's own
//! reception or in a time zone no place has, a mail program named that would have written
//! a header the message lacks.
//! Spam tools fake the headers a real program writes, and get the ones they do not show
//! wrong. Scores are in `scoring::SCORES` and `scoring::RULES_ALONE`.

use mail_parser::Message;

use super::structure::raw_header;
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
    if raw_header(msg, "X-Mailer").is_some_and(windows_outlook_express)
        && raw_header(msg, "X-MimeOLE").is_none()
    {
        found(
            "FORGED_OUTLOOK_EXPRESS",
            "claims Outlook Express for Windows, which always wrote an X-MimeOLE header".to_owned(),
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

/// An X-Mailer naming Outlook Express for Windows (`Microsoft Outlook Express 6.00.2600.0000`);
/// the Macintosh edition (`… Macintosh Edition - 4.5`) never wrote `X-MimeOLE`.
fn windows_outlook_express(mailer: &str) -> bool {
    let lower = mailer.trim_start().to_ascii_lowercase();
    lower
        .strip_prefix("microsoft outlook express ")
        .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
}
