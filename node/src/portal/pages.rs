//! The portal's HTML, rendered on the server: it works without JavaScript, reads on a
//! phone (one column, large buttons), and everything a sender wrote is escaped — a
//! message's text is shown as text, its links printed, never followed or loaded.

use mail_parser::MessageParser;

use peage_mail::filter::points;
use peage_mail::smtp::trace::rfc2822_ms;
use peage_proto::v1::QueuedMessage;

use crate::admin::MailboxAction;
use crate::html::escape;

/// The most messages the list shows.
pub const MAX_ROWS: usize = 100;

/// The most characters of a message's text a preview shows.
const MAX_PREVIEW_CHARS: usize = 20_000;

/// One held message as the list shows it.
pub struct Held {
    pub message: QueuedMessage,
    pub subject: String,
}

/// What a preview shows of a message.
pub struct Preview {
    pub message: QueuedMessage,
    pub headers: Vec<(&'static str, String)>,
    pub text: String,
}

impl Preview {
    pub fn of(message: QueuedMessage, body: &[u8]) -> Preview {
        let parsed = MessageParser::default().parse(body);
        let header = |name: &'static str| -> (&'static str, String) {
            let value = parsed
                .as_ref()
                .and_then(|m| m.header_raw(name))
                .map(|v| v.trim().replace(['\r', '\n'], " "))
                .unwrap_or_default();
            (name, value)
        };
        let headers = vec![
            header("From"),
            header("To"),
            header("Date"),
            header("Subject"),
        ];
        let text = parsed
            .as_ref()
            .and_then(|m| m.body_text(0))
            .map(|t| t.chars().take(MAX_PREVIEW_CHARS).collect())
            .unwrap_or_else(|| "(this message has no text to show)".to_owned());
        Preview {
            message,
            headers,
            text,
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;line-height:1.4;color:#1b1b1b}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.5rem;border-bottom:1px solid #ccc;vertical-align:top}\
form{display:inline}button{font-size:1rem;padding:.5rem .8rem;margin:.2rem;border:1px solid #555;border-radius:.3rem;background:#f4f4f4;cursor:pointer}\
button.main{background:#0b5394;color:#fff}pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:1rem;border:1px solid #ddd}\
.note{background:#e6f4ea;border:1px solid #7bb67f;padding:.6rem}.refused{background:#fdecea;border:1px solid #d9534f;padding:.6rem}\
dt{font-weight:bold}dd{margin:0 0 .5rem 0;word-break:break-word}\
@media (max-width:40rem){table,thead,tbody,tr,th,td{display:block}thead{display:none}td{border:none;padding:.2rem}tr{border-bottom:1px solid #ccc;padding:.5rem 0}}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        title = escape(title)
    )
}

/// A page saying what was refused and what to do about it.
pub fn refused(why: &str) -> String {
    page(
        "Quarantine",
        &format!(
            "<h1>Quarantine</h1><p class=\"refused\" role=\"alert\">{}</p>",
            escape(why)
        ),
    )
}

/// The buttons of one message: each a POST form with the session's CSRF token.
fn actions(queue_id: &str, csrf: &str) -> String {
    let labels = [
        (MailboxAction::Release, "Release"),
        (MailboxAction::ReleaseAndLearn, "Release, not spam"),
        (MailboxAction::AllowSender, "Always allow sender"),
        (MailboxAction::BlockSender, "Block sender"),
        (MailboxAction::Delete, "Delete"),
    ];
    let mut out = String::new();
    for (action, label) in labels {
        let class = match action {
            MailboxAction::Release => " class=\"main\"",
            _ => "",
        };
        out.push_str(&format!(
            "<form method=\"post\" action=\"/message/{id}/{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\"{class}>{label}</button></form>",
            id = escape(queue_id),
            action = action.as_str(),
            csrf = escape(csrf),
        ));
    }
    out
}

fn done_note(done: Option<MailboxAction>) -> String {
    let said = match done {
        None => return String::new(),
        Some(MailboxAction::Release) => "The message was released: it is on its way to you.",
        Some(MailboxAction::ReleaseAndLearn) => {
            "The message was released, and the filter learned it was not spam."
        }
        Some(MailboxAction::Delete) => "The message was deleted.",
        Some(MailboxAction::AllowSender) => "Mail from this sender will reach you from now on.",
        Some(MailboxAction::BlockSender) => "Mail from this sender will be refused from now on.",
    };
    format!("<p class=\"note\" role=\"status\">{said}</p>")
}

/// The mailbox's held messages, with their buttons.
pub fn list(mailbox: &str, rows: &[Held], csrf: &str, done: Option<MailboxAction>) -> String {
    let mut body = format!(
        "<h1>Held mail for {}</h1>{}",
        escape(mailbox),
        done_note(done)
    );
    if rows.is_empty() {
        body.push_str("<p>Nothing is held for you.</p>");
        return page("Quarantine", &body);
    }
    body.push_str(
        "<table><thead><tr><th scope=\"col\">Date</th><th scope=\"col\">Sender</th>\
         <th scope=\"col\">Subject</th><th scope=\"col\">Score</th><th scope=\"col\">Why</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    for h in rows {
        let m = &h.message;
        let main = m.symbols.iter().max_by_key(|s| s.score_milli);
        let why = main.map_or("", |s| s.reason.as_str());
        let subject = match h.subject.as_str() {
            "" => "(no subject)",
            s => s,
        };
        body.push_str(&format!(
            "<tr><td>{date}</td><td>{sender}</td><td><a href=\"/message/{id}\">{subject}</a></td>\
             <td>{score}</td><td>{why}</td><td>{actions}</td></tr>",
            date = escape(&rfc2822_ms(m.accepted_at_ms)),
            sender = escape(sender_of(m)),
            id = escape(&m.queue_id),
            subject = escape(subject),
            score = points(m.score_milli),
            why = escape(why),
            actions = actions(&m.queue_id, csrf),
        ));
    }
    body.push_str("</tbody></table>");
    page("Quarantine", &body)
}

fn sender_of(m: &QueuedMessage) -> &str {
    match m.mail_from.as_str() {
        "" => "(delivery report)",
        s => s,
    }
}

/// One message: its main headers, why it was held, its text, and its buttons.
pub fn preview(mailbox: &str, p: &Preview, csrf: &str) -> String {
    let m = &p.message;
    let mut body = format!(
        "<p><a href=\"/\">← Held mail for {}</a></p><h1>Message {}</h1><dl>",
        escape(mailbox),
        escape(&m.queue_id)
    );
    for (name, value) in &p.headers {
        body.push_str(&format!("<dt>{name}</dt><dd>{}</dd>", escape(value)));
    }
    body.push_str(&format!(
        "<dt>Envelope sender</dt><dd>{}</dd><dt>Score</dt><dd>{}</dd><dt>Why it was held</dt><dd><ul>",
        escape(sender_of(m)),
        points(m.score_milli)
    ));
    for s in m.symbols.iter().filter(|s| s.score_milli > 0) {
        body.push_str(&format!("<li>{}</li>", escape(&s.reason)));
    }
    body.push_str(&format!(
        "</ul></dd></dl><div>{}</div><h2>Text</h2>\
         <p>Links are shown as text: copy one only if you trust the sender.</p><pre>{}</pre>",
        actions(&m.queue_id, csrf),
        escape(&p.text)
    ));
    page("Quarantine", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_sender_wrote_is_escaped_and_links_are_text() {
        let body = b"From: \"<script>alert(1)</script>\" <evil@spam.example>\r\n\
                     Subject: <b>win</b>\r\nContent-Type: text/html\r\n\r\n\
                     <p>Click <a href=\"https://evil.example/x\">here</a><img src=\"https://track.example/p.gif\"></p>";
        let message = QueuedMessage {
            queue_id: "Q1".into(),
            mail_from: "evil@spam.example".into(),
            ..Default::default()
        };
        let html = preview("bob@example.test", &Preview::of(message, body), "tok");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href=\"https://evil.example"), "{html}");
        assert!(html.contains("&lt;b&gt;win&lt;/b&gt;"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"tok\""), "{html}");
    }
}
