//! Delivery status notifications (RFC 3464): the bounce a sender gets when the downstream
//! refused a recipient for good or the message outlived the retention limit.

use peage_mail::smtp::trace::rfc2822_ms;

use crate::state::spool::SpooledMessage;

/// Builds a `multipart/report; report-type=delivery-status` message from the null sender
/// to the original sender, with the original's headers attached.
pub fn build(
    reporting_mta: &str,
    original: &SpooledMessage,
    failed: &[(String, String)],
    original_body: &[u8],
    now_rfc2822: &str,
) -> Vec<u8> {
    let boundary = format!("peage-dsn-{}", original.queue_id);
    let mut human = String::new();
    for (rcpt, why) in failed {
        human.push_str(&format!("  <{rcpt}>: {}\r\n", one_line(why)));
    }
    let mut status = format!(
        "Reporting-MTA: dns; {reporting_mta}\r\nX-Peage-Queue-ID: {}\r\nArrival-Date: {}\r\n",
        original.queue_id,
        rfc2822_ms(original.accepted_at_ms)
    );
    for (rcpt, why) in failed {
        let code = status_code(why);
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {code}\r\nDiagnostic-Code: smtp; {}\r\n",
            one_line(why)
        ));
    }
    let headers_end = find_headers_end(original_body);
    let original_headers = String::from_utf8_lossy(&original_body[..headers_end]);
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {now_rfc2822}\r\n\
         Message-ID: <dsn-{id}@{reporting_mta}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Your message could not be delivered to these recipients:\r\n\
         \r\n\
         {human}\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status}\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         {original_headers}\r\n\
         --{boundary}--\r\n",
        to = original.mail_from,
        id = original.queue_id,
    )
    .into_bytes()
}

/// The enhanced status code in a reply (`550 5.1.1 ...` → `5.1.1`), else a generic one.
fn status_code(reply: &str) -> String {
    reply
        .split_whitespace()
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map_or_else(|| "5.0.0".to_owned(), str::to_owned)
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn find_headers_end(body: &[u8]) -> usize {
    body.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len().min(64 * 1024), |p| p + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_names_each_failed_recipient_with_its_status() {
        let m = SpooledMessage {
            mail_from: "alice@client.example".into(),
            rcpt_to: vec![],
            holders: vec![],
            size: 0,
            ..SpooledMessage::example("ABC", 1)
        };
        let dsn = build(
            "paris.peage",
            &m,
            &[("bob@example.test".into(), "550 5.1.1 no such user".into())],
            b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nsecret body\r\n",
            "Thu, 01 Jan 1970 00:00:00 +0000",
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains(
            "Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.1.1"
        ));
        assert!(text.contains("To: <alice@client.example>"));
        assert!(
            text.contains("Message-ID: <1@x>"),
            "original headers attached"
        );
        assert!(!text.contains("secret body"), "the body is not returned");
        assert!(mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .is_some());
    }
}
